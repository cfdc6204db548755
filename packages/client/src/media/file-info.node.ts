// What the sender learns about a file before uploading it, cheaply: MIME type from the name,
// image dimensions from the header, an inline thumbnail only when the image is already tiny
// (no image library to scale one down), and for WAV voice notes the waveform and duration.
import { createReadStream } from "node:fs";
import { open, readFile } from "node:fs/promises";
import { basename, extname } from "node:path";
import { MAX_THUMBNAIL_BYTES } from "./descriptor.ts";
import { type ImageSize, imageSize } from "./image-info.ts";
import { type AudioInfo, WavWaveform } from "./waveform.ts";

const MIME_BY_EXTENSION: Record<string, string> = {
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".png": "image/png",
  ".gif": "image/gif",
  ".webp": "image/webp",
  ".heic": "image/heic",
  ".mp4": "video/mp4",
  ".mov": "video/quicktime",
  ".webm": "video/webm",
  ".wav": "audio/wav",
  ".ogg": "audio/ogg",
  ".opus": "audio/ogg",
  ".mp3": "audio/mpeg",
  ".m4a": "audio/mp4",
  ".pdf": "application/pdf",
  ".txt": "text/plain",
  ".zip": "application/zip",
};

export function guessMime(path: string): string {
  return MIME_BY_EXTENSION[extname(path).toLowerCase()] ?? "application/octet-stream";
}

export interface FileFacts {
  mime: string;
  fileName: string;
  image: ImageSize | null;
  thumbnail: Uint8Array | null;
  audio: AudioInfo | null;
}

const IMAGE_HEAD_BYTES = 256 * 1024;
/** Waveforms are computed for WAV files up to this size (a voice note is far smaller). */
const MAX_WAV_BYTES = 512 * 1024 * 1024;

async function head(path: string, n: number): Promise<Uint8Array> {
  const fh = await open(path, "r");
  try {
    const buf = Buffer.alloc(n);
    const { bytesRead } = await fh.read(buf, 0, n, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

export async function wavInfo(path: string): Promise<AudioInfo | null> {
  const wav = new WavWaveform();
  for await (const chunk of createReadStream(path, { highWaterMark: 256 * 1024 })) wav.push(chunk as Buffer);
  return wav.finish();
}

export async function inspectFile(path: string, size: number, mimeOverride?: string): Promise<FileFacts> {
  const mime = mimeOverride ?? guessMime(path);
  const facts: FileFacts = { mime, fileName: basename(path), image: null, thumbnail: null, audio: null };
  if (mime.startsWith("image/") && size > 0) {
    facts.image = imageSize(await head(path, IMAGE_HEAD_BYTES));
    if (size <= MAX_THUMBNAIL_BYTES && (mime === "image/jpeg" || mime === "image/png")) {
      facts.thumbnail = new Uint8Array(await readFile(path));
    }
  }
  if (mime.startsWith("audio/") && size > 12 && size <= MAX_WAV_BYTES) {
    const h = await head(path, 12);
    if (
      Buffer.from(h.subarray(0, 4)).toString("latin1") === "RIFF" &&
      Buffer.from(h.subarray(8, 12)).toString("latin1") === "WAVE"
    ) {
      facts.audio = await wavInfo(path);
    }
  }
  return facts;
}
