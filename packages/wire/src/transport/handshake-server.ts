/**
 * Server side of Parley's Noise Pipes handshake over any FrameLink (see handshake-client.ts for the
 * message flow). A peer that sends anything unexpected, or does not finish within the handshake
 * timeout, is dropped; failures are reported to `onHandshakeError` and never thrown to the caller.
 */
import { WireError } from "../errors.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import { DH_LEN, type NoiseCryptoSuite } from "../noise/suite.ts";
import { handshakeFrame } from "./handshake-client.ts";
import { resolveLimits } from "./limits.ts";
import type { FrameLink } from "./link.ts";
import { HandshakeFrameType, PARLEY_NOISE_CIPHER, parleyPrologue } from "./prologue.ts";
import { encodeLoginResponse } from "./record.ts";
import { type Scheduler, SecureConnection } from "./session.ts";
import { CloseCode, type HandshakePattern, type ServerOptions } from "./types.ts";

/** Thrown by `authenticate` to refuse a login; `reason` is sent to the client. */
export class LoginRejectedError extends WireError {
  readonly reason: string;

  constructor(reason: string) {
    super("AUTH_REJECTED", reason);
    this.name = "LoginRejectedError";
    this.reason = reason;
  }
}

export interface AcceptOptions {
  suite: NoiseCryptoSuite;
  scheduler?: Scheduler;
  /** Tests only: a different prologue. */
  prologue?: Uint8Array;
}

/** Most frames a client may send while its login is being checked (it should send none). */
const MAX_FRAMES_DURING_AUTH = 16;

/** Runs the server handshake on a fresh link; on success hands a Connection to `onConnection`. */
export function acceptLink<C>(link: FrameLink, server: ServerOptions<C>, accept: AcceptOptions): void {
  const limits = resolveLimits(server.limits);
  const { suite } = accept;
  const prologue = accept.prologue ?? parleyPrologue();
  let state: "first" | "finish" | "auth" | "done" = "first";
  let hs: HandshakeState | undefined;
  let pattern: HandshakePattern = "XX";
  const pending: Uint8Array[] = [];
  let session: SecureConnection | undefined;

  const timer = setTimeout(
    () => fail(new WireError("HANDSHAKE_FAILED", "handshake timed out")),
    limits.handshakeTimeoutMs,
  );

  function fail(error: WireError): void {
    if (state === "done") return;
    state = "done";
    clearTimeout(timer);
    link.destroy();
    report(error);
  }

  function report(error: WireError): void {
    try {
      server.onHandshakeError?.(error);
    } catch {
      // a logging hook must not break the server
    }
  }

  function newHandshake(name: "XX" | "IK"): HandshakeState {
    return new HandshakeState({
      suite,
      pattern: name,
      cipher: PARLEY_NOISE_CIPHER,
      initiator: false,
      prologue,
      s: server.staticKeyPair,
    });
  }

  async function authenticate(remoteKey: Uint8Array, loginPayload: Uint8Array) {
    state = "auth";
    try {
      const answer = await server.authenticate(remoteKey, loginPayload);
      return answer instanceof Uint8Array
        ? { accepted: true as const, loginResult: answer, context: undefined }
        : { accepted: true as const, loginResult: answer.loginResult, context: answer.context };
    } catch (err) {
      const reason = err instanceof LoginRejectedError ? err.reason : "internal error";
      if (!(err instanceof LoginRejectedError)) {
        report(new WireError("HANDSHAKE_FAILED", "authenticate threw", { cause: err }));
      }
      return { accepted: false as const, reason };
    }
  }

  /** The login was refused: the client got the signed refusal; close after it drains. */
  function rejected(reason: string): void {
    state = "done";
    clearTimeout(timer);
    link.end();
    setTimeout(() => link.destroy(), limits.closeTimeoutMs).unref?.();
    report(new WireError("AUTH_REJECTED", reason));
  }

  function established(
    handshake: HandshakeState,
    remoteKey: Uint8Array,
    loginPayload: Uint8Array,
    loginResult: Uint8Array,
    context: C | undefined,
    sendLoginRecord: boolean,
  ): void {
    state = "done";
    clearTimeout(timer);
    const { send, receive } = handshake.split();
    const connection = new SecureConnection({
      link,
      send,
      receive,
      remoteStaticPublicKey: remoteKey,
      pattern,
      limits,
      scheduler: accept.scheduler,
    });
    session = connection;
    if (sendLoginRecord) connection.sendLoginRecord(encodeLoginResponse({ accepted: true, loginResult }));
    try {
      server.onConnection(connection, { loginPayload, loginResult, context });
    } catch (err) {
      connection.close(CloseCode.INTERNAL_ERROR, "internal error");
      report(new WireError("HANDSHAKE_FAILED", "onConnection threw", { cause: err }));
      return;
    }
    for (const frame of pending.splice(0)) connection.frameReceived(frame);
  }

  async function onIkInit(body: Uint8Array): Promise<void> {
    const ik = newHandshake("IK");
    let loginPayload: Uint8Array;
    try {
      loginPayload = ik.readMessage(body);
    } catch {
      // Noise Pipes: the client used a static key of ours it should not have (we rotated keys):
      // become the initiator of XXfallback with the client's ephemeral as pre-message.
      if (body.length < DH_LEN) throw new WireError("HANDSHAKE_FAILED", "IK message too short");
      pattern = "XXfallback";
      hs = new HandshakeState({
        suite,
        pattern: "XXfallback",
        cipher: PARLEY_NOISE_CIPHER,
        initiator: true,
        prologue,
        s: server.staticKeyPair,
        re: body.subarray(0, DH_LEN),
      });
      link.writeFrames([handshakeFrame(link, HandshakeFrameType.FALLBACK_RESPONSE, hs.writeMessage())]);
      state = "finish";
      return;
    }
    pattern = "IK";
    const remoteKey = ik.remoteStaticPublicKey!;
    const answer = await authenticate(remoteKey, loginPayload);
    if (state === "done") return; // timed out or socket closed while authenticating
    const payload = encodeLoginResponse(answer);
    link.writeFrames([handshakeFrame(link, HandshakeFrameType.IK_RESPONSE, ik.writeMessage(payload))]);
    if (!answer.accepted) rejected(answer.reason);
    else established(ik, remoteKey, loginPayload, answer.loginResult, answer.context, false);
  }

  async function onFinish(body: Uint8Array): Promise<void> {
    const handshake = hs!;
    const loginPayload = handshake.readMessage(body);
    const remoteKey = handshake.remoteStaticPublicKey!;
    const answer = await authenticate(remoteKey, loginPayload);
    if (state === "done") return;
    if (!answer.accepted) {
      // The session keys exist: send the refusal as an authenticated LOGIN record.
      const { send, receive } = handshake.split();
      const connection = new SecureConnection({
        link,
        send,
        receive,
        remoteStaticPublicKey: remoteKey,
        pattern,
        limits,
      });
      connection.sendLoginRecord(encodeLoginResponse({ accepted: false, reason: answer.reason }));
      rejected(answer.reason);
      return;
    }
    established(handshake, remoteKey, loginPayload, answer.loginResult, answer.context, true);
  }

  async function onFrame(frame: Uint8Array): Promise<void> {
    const type = frame[0];
    const body = frame.subarray(1);
    if (state === "first") {
      state = "auth"; // no further frame is expected until we answer
      if (type === HandshakeFrameType.XX_INIT) {
        pattern = "XX";
        hs = newHandshake("XX");
        if (hs.readMessage(body).length !== 0) throw new WireError("HANDSHAKE_FAILED", "XX message 1 has a payload");
        link.writeFrames([handshakeFrame(link, HandshakeFrameType.XX_RESPONSE, hs.writeMessage())]);
        state = "finish";
      } else if (type === HandshakeFrameType.IK_INIT) {
        await onIkInit(body);
      } else {
        throw new WireError("HANDSHAKE_FAILED", `unexpected first frame type ${type}`);
      }
    } else if (state === "finish") {
      if (type !== HandshakeFrameType.CLIENT_FINISH) {
        throw new WireError("HANDSHAKE_FAILED", `expected the client's finish, got frame type ${type}`);
      }
      await onFinish(body);
    } else if (state === "auth") {
      // The client pipelined records behind its login: keep a few for the session, refuse a flood.
      if (pending.length >= MAX_FRAMES_DURING_AUTH) throw new WireError("PROTOCOL_VIOLATION", "flood during login");
      pending.push(frame.slice());
    }
  }

  link.setMaxFrameSize(limits.maxHandshakeFrameSize);
  link.setHandlers({
    frameReceived: (frame) => {
      if (session) {
        session.frameReceived(frame);
        return;
      }
      if (state === "done") return;
      onFrame(frame).catch((err: unknown) => {
        fail(
          err instanceof WireError && err.code === "HANDSHAKE_FAILED"
            ? err
            : new WireError("HANDSHAKE_FAILED", "bad handshake", { cause: err }),
        );
      });
    },
    linkFailed: fail,
    linkClosed: () => fail(new WireError("CLOSED", "connection closed during the handshake")),
    linkDrained: () => {},
  });
}
