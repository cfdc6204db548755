/**
 * Noise HandshakeState (spec §5.3): pure and synchronous, no I/O. Drives one handshake pattern
 * message by message; after the last message `split()` yields the transport CipherStates.
 * Every failure (short message, bad tag, low-order key, misuse) is a WireError "HANDSHAKE_FAILED",
 * and the state refuses further use after one.
 */
import { WireError } from "../errors.ts";
import type { CipherState } from "./cipher-state.ts";
import { type HandshakePatternDef, PATTERNS, type PatternName, type Token } from "./patterns.ts";
import { concatBytes, DH_LEN, type KeyPair, type NoiseCipherName, type NoiseCryptoSuite, TAG_LEN } from "./suite.ts";
import { SymmetricState } from "./symmetric-state.ts";

export interface HandshakeOptions {
  suite: NoiseCryptoSuite;
  pattern: PatternName;
  cipher: NoiseCipherName;
  initiator: boolean;
  prologue: Uint8Array;
  /** Local static key pair (required when the pattern sends or pre-shares `s`). */
  s?: KeyPair;
  /** Local ephemeral: normally generated; given by test vectors and by XXfallback (the IK ephemeral). */
  e?: KeyPair;
  /** Remote static public key known in advance (IK initiator). */
  rs?: Uint8Array;
  /** Remote ephemeral known in advance (XXfallback initiator: Alice's e from the failed IK message). */
  re?: Uint8Array;
}

export interface SplitResult {
  /** CipherState for messages this side sends. */
  send: CipherState;
  /** CipherState for messages this side receives. */
  receive: CipherState;
  handshakeHash: Uint8Array;
}

export function protocolName(pattern: PatternName, cipher: NoiseCipherName): string {
  return `Noise_${pattern}_25519_${cipher}_SHA256`;
}

function fail(message: string, cause?: unknown): WireError {
  return new WireError("HANDSHAKE_FAILED", message, cause === undefined ? undefined : { cause });
}

export class HandshakeState {
  readonly initiator: boolean;
  readonly patternName: PatternName;
  private readonly suite: NoiseCryptoSuite;
  private readonly pattern: HandshakePatternDef;
  private readonly symmetric: SymmetricState;
  private s: KeyPair | undefined;
  private e: KeyPair | undefined;
  private rs: Uint8Array | undefined;
  private re: Uint8Array | undefined;
  private messageIndex = 0;
  private failed = false;

  constructor(options: HandshakeOptions) {
    this.suite = options.suite;
    this.initiator = options.initiator;
    this.patternName = options.pattern;
    this.pattern = PATTERNS[options.pattern];
    this.s = options.s;
    this.e = options.e;
    this.rs = options.rs;
    this.re = options.re;
    this.symmetric = new SymmetricState(options.suite, options.cipher, protocolName(options.pattern, options.cipher));
    this.symmetric.mixHash(options.prologue);
    // Pre-message keys are hashed initiator's first, then responder's (spec §5.3 Initialize()).
    this.hashPreMessage(this.pattern.initiatorPreMessage, this.initiator);
    this.hashPreMessage(this.pattern.responderPreMessage, !this.initiator);
  }

  private hashPreMessage(tokens: readonly ("e" | "s")[], local: boolean): void {
    for (const token of tokens) {
      const key = local ? (token === "e" ? this.e?.publicKey : this.s?.publicKey) : token === "e" ? this.re : this.rs;
      if (key === undefined || key.length !== DH_LEN) throw fail(`missing pre-message key ${token}`);
      this.symmetric.mixHash(key);
    }
  }

  /** True when it is this side's turn to write. */
  get isMyTurn(): boolean {
    return this.messageIndex % 2 === (this.initiator ? 0 : 1);
  }

  get isComplete(): boolean {
    return this.messageIndex >= this.pattern.messages.length;
  }

  get handshakeHash(): Uint8Array {
    return this.symmetric.handshakeHash;
  }

  get remoteStaticPublicKey(): Uint8Array | undefined {
    return this.rs?.slice();
  }

  get remoteEphemeralPublicKey(): Uint8Array | undefined {
    return this.re?.slice();
  }

  get localEphemeral(): KeyPair | undefined {
    return this.e;
  }

  private nextTokens(writing: boolean): readonly Token[] {
    if (this.failed) throw fail("handshake already failed");
    const tokens = this.pattern.messages[this.messageIndex];
    if (tokens === undefined) throw fail("handshake already complete");
    if (this.isMyTurn !== writing) throw fail(writing ? "not our turn to write" : "not our turn to read");
    return tokens;
  }

  private dh(local: KeyPair | undefined, remote: Uint8Array | undefined, token: Token): Uint8Array {
    if (local === undefined || remote === undefined) throw fail(`missing key for ${token}`);
    try {
      return this.suite.dh(local, remote);
    } catch (err) {
      throw fail(`DH ${token} failed`, err);
    }
  }

  private mixDh(token: "ee" | "es" | "se" | "ss"): void {
    const i = this.initiator;
    switch (token) {
      case "ee":
        this.symmetric.mixKey(this.dh(this.e, this.re, token));
        break;
      case "es":
        this.symmetric.mixKey(i ? this.dh(this.e, this.rs, token) : this.dh(this.s, this.re, token));
        break;
      case "se":
        this.symmetric.mixKey(i ? this.dh(this.s, this.re, token) : this.dh(this.e, this.rs, token));
        break;
      case "ss":
        this.symmetric.mixKey(this.dh(this.s, this.rs, token));
        break;
    }
  }

  /** WriteMessage(payload): the handshake message bytes. */
  writeMessage(payload: Uint8Array = new Uint8Array(0)): Uint8Array {
    const tokens = this.nextTokens(true);
    try {
      const parts: Uint8Array[] = [];
      for (const token of tokens) {
        if (token === "e") {
          if (this.e === undefined) this.e = this.suite.generateKeyPair();
          parts.push(this.e.publicKey);
          this.symmetric.mixHash(this.e.publicKey);
        } else if (token === "s") {
          if (this.s === undefined) throw fail("no local static key");
          parts.push(this.symmetric.encryptAndHash(this.s.publicKey));
        } else {
          this.mixDh(token);
        }
      }
      parts.push(this.symmetric.encryptAndHash(payload));
      this.messageIndex++;
      return concatBytes(...parts);
    } catch (err) {
      this.failed = true;
      throw err instanceof WireError && err.code === "HANDSHAKE_FAILED" ? err : fail("cannot write message", err);
    }
  }

  /** ReadMessage(message): the decrypted payload. */
  readMessage(message: Uint8Array): Uint8Array {
    const tokens = this.nextTokens(false);
    try {
      let offset = 0;
      const take = (length: number): Uint8Array => {
        if (message.length - offset < length) throw fail("handshake message too short");
        const part = message.subarray(offset, offset + length);
        offset += length;
        return part;
      };
      for (const token of tokens) {
        if (token === "e") {
          this.re = take(DH_LEN).slice();
          this.symmetric.mixHash(this.re);
        } else if (token === "s") {
          const sealed = take(this.symmetric.cipherState.hasKey() ? DH_LEN + TAG_LEN : DH_LEN);
          this.rs = this.symmetric.decryptAndHash(sealed).slice();
        } else {
          this.mixDh(token);
        }
      }
      const rest = message.subarray(offset);
      if (this.symmetric.cipherState.hasKey() && rest.length < TAG_LEN) throw fail("handshake payload too short");
      const payload = this.symmetric.decryptAndHash(rest);
      this.messageIndex++;
      return payload;
    } catch (err) {
      this.failed = true;
      throw err instanceof WireError && err.code === "HANDSHAKE_FAILED" ? err : fail("cannot read message", err);
    }
  }

  /** Split(): only after the last message. */
  split(): SplitResult {
    if (!this.isComplete || this.failed) throw fail("split before the handshake completed");
    const [initiatorToResponder, responderToInitiator] = this.symmetric.split();
    return this.initiator
      ? { send: initiatorToResponder, receive: responderToInitiator, handshakeHash: this.handshakeHash }
      : { send: responderToInitiator, receive: initiatorToResponder, handshakeHash: this.handshakeHash };
  }
}
