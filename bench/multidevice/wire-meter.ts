// Counts the stanza bytes a client gives to and gets from its connection, per message id.
// The client's ConnectFn is wrapped: each connection's send/onStanza are intercepted and every
// stanza is decoded a second time with a mirror WireContext per direction. The mirror sees the
// same stanzas in the same order as the peer's decoder, so its name-interning table stays in step
// and the sizes are those of the real encoded stanzas (after interning), not of a re-encoding.

import { performance } from "node:perf_hooks";
import type { ConnectFn } from "@parley/client";
import { type Connection, decodeStanza, type Stanza, WireContext } from "@parley/wire";

/** One `message` stanza as it left the sender. */
export interface SentMessageStanza {
  stanzaBytes: number;
  ciphertexts: number;
  ciphertextBytes: number;
  /** Ciphertexts that were PreKeySignalMessages (session setup). */
  preKeyMessages: number;
}

const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");

export class WireMeter {
  /** Message stanzas sent, by message id (the last send wins: a retry replaces the entry). */
  readonly sent = new Map<string, SentMessageStanza>();
  /** Bytes of `delivery` stanzas received by all metered clients, by message id. */
  readonly delivered = new Map<string, { stanzas: number; bytes: number }>();
  /** When the server's ack (✓) of a message reached the sender's connection, by message id (first one). */
  readonly ackedAt = new Map<string, { at: number; error?: string }>();
  undecodable = 0;

  /** A ConnectFn that meters every connection `connect` opens. */
  wrap(connect: ConnectFn): ConnectFn {
    return async (options) => {
      const result = await connect(options);
      this.instrument(result.connection);
      return result;
    };
  }

  private instrument(connection: Connection): void {
    const outMirror = new WireContext();
    const inMirror = new WireContext();
    const send = connection.send.bind(connection);
    const onStanza = connection.onStanza.bind(connection);
    connection.send = (bytes: Uint8Array) => {
      send(bytes); // first: a stanza that is refused never reaches the server, so the mirror must skip it
      const stanza = this.decode(bytes, outMirror);
      if (stanza?.kind === "message") {
        this.sent.set(hex(stanza.id), {
          stanzaBytes: bytes.length,
          ciphertexts: stanza.enc.length,
          ciphertextBytes: stanza.enc.reduce((n, c) => n + c.body.length, 0),
          preKeyMessages: stanza.enc.filter((c) => c.type === "pkmsg").length,
        });
      }
    };
    connection.onStanza = (handler: (bytes: Uint8Array) => void) =>
      onStanza((bytes) => {
        const stanza = this.decode(bytes, inMirror);
        if (stanza?.kind === "ack") {
          const id = hex(stanza.id);
          if (!this.ackedAt.has(id)) {
            this.ackedAt.set(id, { at: performance.now(), ...(stanza.error ? { error: stanza.error.code } : {}) });
          }
        } else if (stanza?.kind === "delivery") {
          const id = hex(stanza.id);
          const seen = this.delivered.get(id) ?? { stanzas: 0, bytes: 0 };
          seen.stanzas++;
          seen.bytes += bytes.length;
          this.delivered.set(id, seen);
        }
        handler(bytes);
      });
  }

  private decode(bytes: Uint8Array, mirror: WireContext): Stanza | undefined {
    try {
      return decodeStanza(bytes, undefined, mirror);
    } catch {
      this.undecodable++;
      return undefined;
    }
  }
}
