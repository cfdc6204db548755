// Minimal HTTP(S) requests for the content store on node:http: streaming bodies without the
// overhead of WHATWG streams, an early error answer ends the upload at once, and every failure
// becomes a MediaError (network failures as "NETWORK" with `retryable` set).
import { type ClientRequest, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { MediaError, type MediaErrorCode } from "./errors.ts";

export interface HttpAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  /** The body, read whole: only for the small JSON answers of the store. */
  text: string;
}

const MAX_ANSWER_BYTES = 64 * 1024;

/** A failure worth retrying: the connection broke, or the server had a transient problem. */
export class RetryableError extends MediaError {
  readonly retryable = true;
}

function send(url: string, method: string, headers: Record<string, string>, signal?: AbortSignal): ClientRequest {
  const u = new URL(url);
  const make = u.protocol === "https:" ? httpsRequest : httpRequest;
  return make(u, { method, headers, ...(signal ? { signal } : {}) });
}

function networkError(err: unknown, signal?: AbortSignal): MediaError {
  if (err instanceof MediaError) return err;
  if (signal?.aborted) return new MediaError("ABORTED", "aborted", { cause: err });
  return new RetryableError("NETWORK", `network failure: ${(err as Error)?.message ?? String(err)}`, { cause: err });
}

async function readSmall(res: IncomingMessage): Promise<string> {
  const parts: Buffer[] = [];
  let n = 0;
  for await (const chunk of res as AsyncIterable<Buffer>) {
    n += chunk.length;
    if (n > MAX_ANSWER_BYTES) throw new MediaError("NETWORK", "answer from the content store too large");
    parts.push(chunk);
  }
  return Buffer.concat(parts).toString("utf8");
}

/** Maps an HTTP error answer to the error the caller sees. */
export function answerError(status: number, text: string, what: string): MediaError {
  let message = text;
  try {
    message = (JSON.parse(text) as { message?: string }).message ?? text;
  } catch {
    // not JSON: keep the text
  }
  const code: MediaErrorCode =
    status === 401 ? "UNAUTHORIZED" : status === 413 ? "TOO_LARGE" : status === 404 ? "NOT_FOUND" : "NETWORK";
  const detail = `${what}: HTTP ${status}${message ? ` (${message.trim()})` : ""}`;
  return status >= 500 || status === 409 ? new RetryableError(code, detail) : new MediaError(code, detail);
}

/** Sends a request with an optional streamed body and reads the (small) answer. */
export async function httpCall(
  url: string,
  method: string,
  headers: Record<string, string>,
  body?: Readable,
  signal?: AbortSignal,
): Promise<HttpAnswer> {
  const req = send(url, method, headers, signal);
  const answered = new Promise<IncomingMessage>((resolve, reject) => {
    req.once("response", resolve);
    req.once("error", reject);
  });
  try {
    if (body) {
      // An early answer (401, 409, 413) while the body is still going out ends the upload.
      const early = answered.then((res) => {
        if (res.statusCode !== undefined && res.statusCode >= 300) body.destroy();
      });
      early.catch(() => undefined);
      await pipeline(body, req).catch(async (err) => {
        const res = await Promise.race([answered, new Promise<null>((r) => setTimeout(() => r(null), 50))]).catch(
          () => null,
        );
        if (!res) throw err;
      });
    } else {
      req.end();
    }
    const res = await answered;
    return { status: res.statusCode ?? 0, headers: res.headers, text: await readSmall(res) };
  } catch (err) {
    req.destroy();
    throw networkError(err, signal);
  }
}

/** Starts a GET and resolves with the response stream (caller consumes it). */
export async function httpGet(
  url: string,
  headers: Record<string, string>,
  signal?: AbortSignal,
): Promise<IncomingMessage> {
  const req = send(url, "GET", headers, signal);
  try {
    return await new Promise<IncomingMessage>((resolve, reject) => {
      req.once("response", resolve);
      req.once("error", reject);
      req.end();
    });
  } catch (err) {
    req.destroy();
    throw networkError(err, signal);
  }
}

export { networkError };
