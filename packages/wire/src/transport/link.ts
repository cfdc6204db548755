/**
 * A FrameLink is one socket seen as a sequence of frames (TCP with length prefixes, or one WebSocket
 * message per frame). Handshake and session code only talk to this interface, so they run unchanged
 * over node:net, `ws` and the browser's WebSocket.
 */
import type { WireError } from "../errors.ts";

/**
 * What a link reports. The encrypted session implements this itself (a link holds the session, not
 * four closures and an object: ~300 bytes per idle connection).
 */
export interface FrameLinkHandlers {
  frameReceived(frame: Uint8Array): void;
  /** The link broke its own framing rules (oversized or empty frame) or carried a text message. */
  linkFailed(error: WireError): void;
  /** The socket is gone (after end/destroy or a remote close/reset). Called once. */
  linkClosed(): void;
  /** The socket's write buffer drained. */
  linkDrained(): void;
}

export interface FrameLink {
  /** Bytes to leave free at the start of each outgoing frame for the link's header (2 for TCP, 0 for WebSocket). */
  readonly frameHeaderSize: number;
  /** Bytes accepted by `writeFrames` and not yet handed to the OS. */
  readonly bufferedAmount: number;
  /** Changes the largest incoming frame accepted (handshake frames are held to a smaller limit). */
  setMaxFrameSize(bytes: number): void;
  setHandlers(handlers: FrameLinkHandlers): void;
  /** Writes frames (each with `frameHeaderSize` free bytes in front) with as few socket writes as possible. */
  writeFrames(frames: readonly Uint8Array[]): void;
  /** Ends after pending writes. */
  end(): void;
  /** Drops the socket now. */
  destroy(): void;
}
