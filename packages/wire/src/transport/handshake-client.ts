/**
 * Client side of Parley's Noise Pipes handshake over any FrameLink:
 *   known server key → IK:  [IK_INIT e,es,s,ss,login] → [IK_RESPONSE e,ee,se,loginResponse]
 *                        or → [FALLBACK_RESPONSE e,ee,s,se] → [CLIENT_FINISH s,es,login] → LOGIN record
 *   unknown key     → XX:  [XX_INIT e] → [XX_RESPONSE e,ee,s,es] → [CLIENT_FINISH s,se,login] → LOGIN record
 */
import { WireError } from "../errors.ts";
import { HandshakeState } from "../noise/handshake-state.ts";
import type { NoiseCryptoSuite } from "../noise/suite.ts";
import type { FrameLink } from "./link.ts";
import { HandshakeFrameType, PARLEY_NOISE_CIPHER, parleyPrologue } from "./prologue.ts";
import { decodeLoginResponse, type LoginResponse } from "./record.ts";
import { type Scheduler, SecureConnection } from "./session.ts";
import type { ConnectResult, HandshakePattern, StaticKeyPair, TransportLimits } from "./types.ts";

export interface ClientHandshakeOptions {
  link: FrameLink;
  suite: NoiseCryptoSuite;
  clientStaticKeyPair: StaticKeyPair;
  serverStaticPublicKey?: Uint8Array;
  acceptServerKey?: (serverStaticPublicKey: Uint8Array) => boolean;
  loginPayload: Uint8Array;
  limits: TransportLimits;
  handshakeTimeoutMs: number;
  scheduler?: Scheduler;
  /** Tests only: a different prologue (e.g. another protocol version). */
  prologue?: Uint8Array;
}

/** Frames a handshake message: type byte first, with the link's header room in front. */
export function handshakeFrame(link: FrameLink, type: number, message: Uint8Array): Uint8Array {
  const frame = new Uint8Array(link.frameHeaderSize + 1 + message.length);
  frame[link.frameHeaderSize] = type;
  frame.set(message, link.frameHeaderSize + 1);
  return frame;
}

export function runClientHandshake(options: ClientHandshakeOptions): Promise<ConnectResult> {
  const { link, suite, limits } = options;
  const prologue = options.prologue ?? parleyPrologue();
  return new Promise<ConnectResult>((resolve, reject) => {
    let settled = false;
    let session: SecureConnection | undefined;
    let pattern: HandshakePattern = options.serverStaticPublicKey ? "IK" : "XX";
    let hs: HandshakeState;

    const timer = setTimeout(
      () => fail(new WireError("HANDSHAKE_FAILED", "handshake timed out")),
      options.handshakeTimeoutMs,
    );

    function fail(error: WireError): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (session) session.abort();
      else link.destroy();
      reject(error);
    }

    function finish(response: LoginResponse, connection: SecureConnection, serverKey: Uint8Array): void {
      if (settled) return;
      if (!response.accepted) {
        fail(new WireError("AUTH_REJECTED", response.reason));
        return;
      }
      settled = true;
      clearTimeout(timer);
      resolve({ connection, loginResult: response.loginResult, serverStaticPublicKey: serverKey, pattern });
    }

    function checkServerKey(key: Uint8Array): void {
      if (options.acceptServerKey && !options.acceptServerKey(key)) {
        throw new WireError("HANDSHAKE_FAILED", "server static key not accepted");
      }
    }

    /** XX or XXfallback: send our static key + login, then wait for the LOGIN record. */
    function sendFinish(): void {
      const serverKey = hs.remoteStaticPublicKey!;
      checkServerKey(serverKey);
      const message = hs.writeMessage(options.loginPayload);
      link.writeFrames([handshakeFrame(link, HandshakeFrameType.CLIENT_FINISH, message)]);
      const { send, receive } = hs.split();
      const connection = new SecureConnection({
        link,
        send,
        receive,
        remoteStaticPublicKey: serverKey,
        pattern,
        limits,
        scheduler: options.scheduler,
        onLoginResponse: (response) => finish(response, connection, serverKey),
      });
      connection.onClose((_code, reason, error) => {
        fail(error ?? new WireError("HANDSHAKE_FAILED", `closed by server before login: ${reason}`));
      });
      session = connection;
    }

    function onFrame(frame: Uint8Array): void {
      if (settled) return;
      try {
        const type = frame[0];
        const body = frame.subarray(1);
        if (pattern === "IK" && type === HandshakeFrameType.IK_RESPONSE) {
          const response = decodeLoginResponse(hs.readMessage(body));
          const { send, receive } = hs.split();
          const serverKey = options.serverStaticPublicKey!.slice();
          const connection = new SecureConnection({
            link,
            send,
            receive,
            remoteStaticPublicKey: serverKey,
            pattern,
            limits,
            scheduler: options.scheduler,
          });
          session = connection;
          finish(response, connection, serverKey);
        } else if (pattern === "IK" && type === HandshakeFrameType.FALLBACK_RESPONSE) {
          // The server could not decrypt our IK message (its static key changed): continue as the
          // responder of XXfallback, reusing the ephemeral already sent.
          pattern = "XXfallback";
          hs = new HandshakeState({
            suite,
            pattern: "XXfallback",
            cipher: PARLEY_NOISE_CIPHER,
            initiator: false,
            prologue,
            s: options.clientStaticKeyPair,
            e: hs.localEphemeral,
          });
          if (hs.readMessage(body).length !== 0) throw new WireError("HANDSHAKE_FAILED", "unexpected payload");
          sendFinish();
        } else if (pattern === "XX" && type === HandshakeFrameType.XX_RESPONSE && !hs.isComplete) {
          if (hs.readMessage(body).length !== 0) throw new WireError("HANDSHAKE_FAILED", "unexpected payload");
          sendFinish();
        } else {
          throw new WireError("HANDSHAKE_FAILED", `unexpected handshake frame type ${type}`);
        }
      } catch (err) {
        fail(
          err instanceof WireError ? err : new WireError("HANDSHAKE_FAILED", "bad handshake message", { cause: err }),
        );
      }
    }

    link.setMaxFrameSize(limits.maxHandshakeFrameSize);
    link.setHandlers({
      frameReceived: onFrame,
      linkFailed: fail,
      linkClosed: () => fail(new WireError("CLOSED", "connection closed during the handshake")),
      linkDrained: () => {},
    });
    try {
      if (options.serverStaticPublicKey) {
        hs = new HandshakeState({
          suite,
          pattern: "IK",
          cipher: PARLEY_NOISE_CIPHER,
          initiator: true,
          prologue,
          s: options.clientStaticKeyPair,
          rs: options.serverStaticPublicKey,
        });
        link.writeFrames([handshakeFrame(link, HandshakeFrameType.IK_INIT, hs.writeMessage(options.loginPayload))]);
      } else {
        hs = new HandshakeState({
          suite,
          pattern: "XX",
          cipher: PARLEY_NOISE_CIPHER,
          initiator: true,
          prologue,
          s: options.clientStaticKeyPair,
        });
        link.writeFrames([handshakeFrame(link, HandshakeFrameType.XX_INIT, hs.writeMessage())]);
      }
    } catch (err) {
      fail(
        err instanceof WireError ? err : new WireError("HANDSHAKE_FAILED", "cannot start handshake", { cause: err }),
      );
    }
  });
}
