// A minimal HTTP/1.1 GET for blob downloads that allocates nothing per received chunk: the socket
// reads into one reused buffer (net/tls `onread`) and the body is handed to the receiver straight
// from it. node:http allocates a fresh buffer for every socket read, and V8 frees them only after
// ~32 MiB have piled up: for a 1 GiB download that garbage was a third of the client's peak RSS,
// and collecting it about a tenth of its CPU time. Only what a content store's answer needs:
// Content-Length, chunked or close-delimited bodies; no keep-alive, no redirects.
import { isIP, connect as netConnect, type OnReadOpts, type Socket } from "node:net";
import { type ConnectionOptions, connect as tlsConnect } from "node:tls";
import { MediaError } from "./errors.ts";
import { RetryableError } from "./http.node.ts";

/** Size of the socket read buffer: large reads, few callbacks. */
const SOCKET_READ_BYTES = 256 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;
/** Error answers are small JSON; keep at most this much of one. */
const MAX_ERROR_TEXT = 4096;

export interface GetHead {
  status: number;
  /** Lower-case names; a repeated header keeps its last value. */
  headers: Record<string, string>;
}

export interface GetReceiver {
  /** A 2xx answer's head, before its body; throw to refuse the body (the request ends). */
  onHead(head: GetHead): void;
  /**
   * Body bytes of a 2xx answer. `chunk` is only valid during the call (the buffer is reused):
   * copy what must outlive it. Return false to stop reading until `resume()`.
   */
  onBody(chunk: Buffer): boolean;
}

export interface GetResult extends GetHead {
  /** For answers other than 2xx: the start of their body (the error message). */
  text: string;
}

type BodyState =
  | { kind: "length"; left: number }
  | { kind: "close" }
  | { kind: "chunked"; step: "size" | "data" | "data-end" | "trailer"; left: number; line: string };

/**
 * One GET. `done` resolves once the whole answer was read (a 2xx body went to the receiver), and
 * rejects with RetryableError("NETWORK") when the connection fails or ends early, or with what
 * the receiver threw.
 */
export class StreamingGet {
  readonly done: Promise<GetResult>;
  private socket: Socket | undefined;
  private head = Buffer.alloc(0);
  private result: GetResult | undefined;
  private body: BodyState | undefined;
  private errorText = "";
  private finished = false;
  private resolve!: (r: GetResult) => void;
  private reject!: (err: unknown) => void;

  constructor(
    url: string,
    headers: Record<string, string>,
    private readonly receiver: GetReceiver,
    private readonly signal?: AbortSignal,
  ) {
    this.done = new Promise<GetResult>((resolve, reject) => {
      this.resolve = resolve;
      this.reject = reject;
    });
    const u = new URL(url);
    const https = u.protocol === "https:";
    if (!https && u.protocol !== "http:") {
      this.fail(new MediaError("BAD_DESCRIPTOR", `unsupported URL scheme ${u.protocol}`));
      return;
    }
    if (signal?.aborted) {
      this.fail(new MediaError("ABORTED", "aborted"));
      return;
    }
    const host = u.hostname.startsWith("[") ? u.hostname.slice(1, -1) : u.hostname;
    const port = Number(u.port || (https ? 443 : 80));
    const onread: OnReadOpts = {
      buffer: Buffer.allocUnsafeSlow(SOCKET_READ_BYTES),
      callback: (n, b) => this.onRead(n, b),
    };
    // tls.connect takes `onread` like net.connect (Node >= 14), but @types/node leaves it out.
    const tlsOptions: ConnectionOptions & { onread: OnReadOpts } = {
      host,
      port,
      // SNI names a host, never an address.
      ...(isIP(host) === 0 ? { servername: host } : {}),
      ALPNProtocols: ["http/1.1"],
      onread,
    };
    const socket = https ? tlsConnect(tlsOptions) : netConnect({ host, port, onread });
    this.socket = socket;
    const lines = [`GET ${u.pathname}${u.search} HTTP/1.1`, `Host: ${u.host}`, "Connection: close"];
    for (const [name, value] of Object.entries(headers)) lines.push(`${name}: ${value}`);
    socket.once(https ? "secureConnect" : "connect", () => socket.write(`${lines.join("\r\n")}\r\n\r\n`));
    socket.on("error", (err) =>
      this.fail(new RetryableError("NETWORK", `network failure: ${err.message}`, { cause: err })),
    );
    socket.once("close", () => this.onClose());
    signal?.addEventListener("abort", this.onAbort, { once: true });
  }

  /** Reading goes on after onBody returned false. */
  resume(): void {
    if (!this.finished) this.socket?.resume();
  }

  /** Ends the request; `done` rejects with `err`. */
  destroy(err: unknown): void {
    this.fail(err);
  }

  private readonly onAbort = () => this.fail(new MediaError("ABORTED", "aborted"));

  private onRead(n: number, buffer: Uint8Array): boolean {
    if (this.finished) return false;
    const bytes = Buffer.from(buffer.buffer, buffer.byteOffset, n);
    try {
      if (this.body) return this.onBodyBytes(bytes);
      this.head = this.head.length === 0 ? Buffer.from(bytes) : Buffer.concat([this.head, bytes]);
      const end = this.head.indexOf("\r\n\r\n");
      if (end < 0) {
        if (this.head.length > MAX_HEAD_BYTES)
          throw new MediaError("NETWORK", "answer head from the content store too large");
        return true;
      }
      const rest = this.head.subarray(end + 4);
      this.parseHead(this.head.subarray(0, end).toString("latin1"));
      this.head = Buffer.alloc(0);
      return rest.length > 0 ? this.onBodyBytes(rest) : this.checkEnd(true);
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private parseHead(text: string): void {
    const [statusLine = "", ...lines] = text.split("\r\n");
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new RetryableError("NETWORK", "not an HTTP/1.1 answer from the content store");
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(":");
      if (colon > 0) headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    const status = Number(m[1]);
    this.result = { status, headers, text: "" };
    const te = headers["transfer-encoding"];
    if (te !== undefined && te.toLowerCase() !== "identity") {
      if (!/(^|,)\s*chunked\s*$/i.test(te)) throw new MediaError("NETWORK", `unsupported transfer-encoding ${te}`);
      this.body = { kind: "chunked", step: "size", left: 0, line: "" };
    } else if (headers["content-length"] !== undefined) {
      if (!/^\d{1,16}$/.test(headers["content-length"])) throw new MediaError("NETWORK", "bad Content-Length");
      this.body = { kind: "length", left: Number(headers["content-length"]) };
    } else {
      this.body = { kind: "close" };
    }
    if (status === 204 || status === 304) this.body = { kind: "length", left: 0 };
    if (status >= 200 && status < 300) this.receiver.onHead(this.result);
  }

  /** Routes body bytes (framing removed) to the receiver, or to the error text. */
  private deliver(bytes: Buffer): boolean {
    if (bytes.length === 0) return true;
    const status = this.result!.status;
    if (status >= 200 && status < 300) return this.receiver.onBody(bytes);
    if (this.errorText.length < MAX_ERROR_TEXT) {
      this.errorText += bytes.subarray(0, MAX_ERROR_TEXT - this.errorText.length).toString("utf8");
    }
    return true;
  }

  private onBodyBytes(bytes: Buffer): boolean {
    const body = this.body!;
    if (body.kind === "close") return this.deliver(bytes);
    if (body.kind === "length") {
      const take = Math.min(body.left, bytes.length);
      body.left -= take;
      const more = this.deliver(bytes.subarray(0, take));
      return this.checkEnd(more);
    }
    let more = true;
    let at = 0;
    while (at < bytes.length && !this.finished) {
      if (body.step === "data") {
        const take = Math.min(body.left, bytes.length - at);
        body.left -= take;
        more = this.deliver(bytes.subarray(at, at + take)) && more;
        at += take;
        if (body.left === 0) body.step = "data-end";
        continue;
      }
      // Line-oriented parts: the chunk size, the CRLF after the data, trailers.
      const nl = bytes.indexOf(10, at);
      const end = nl < 0 ? bytes.length : nl + 1;
      body.line += bytes.subarray(at, end).toString("latin1");
      at = end;
      if (body.line.length > 1024) throw new MediaError("NETWORK", "malformed chunked body");
      if (nl < 0) break;
      const line = body.line.trim();
      body.line = "";
      if (body.step === "size") {
        const size = /^([0-9a-fA-F]{1,12})(;.*)?$/.exec(line);
        if (!size) throw new MediaError("NETWORK", "malformed chunked body");
        body.left = Number.parseInt(size[1]!, 16);
        body.step = body.left === 0 ? "trailer" : "data";
      } else if (body.step === "data-end") {
        if (line !== "") throw new MediaError("NETWORK", "malformed chunked body");
        body.step = "size";
      } else if (line === "") {
        this.finish();
      }
    }
    return more;
  }

  private checkEnd(more: boolean): boolean {
    const body = this.body;
    if (body?.kind === "length" && body.left === 0) this.finish();
    return more;
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.socket?.destroy();
    this.resolve({ ...this.result!, text: this.errorText });
  }

  private onClose(): void {
    if (this.finished) return;
    if (this.body?.kind === "close") this.finish();
    else this.fail(new RetryableError("NETWORK", "the connection closed before the answer ended"));
  }

  private fail(err: unknown): void {
    if (this.finished) return;
    this.finished = true;
    this.signal?.removeEventListener("abort", this.onAbort);
    this.socket?.destroy();
    this.reject(err);
  }
}
