/** Every refusal of the content store is a MediaStoreError; `status` is the HTTP answer. */
export type MediaStoreErrorCode =
  | "BAD_MEDIA_ID"
  | "BAD_REQUEST"
  | "UNAUTHORIZED"
  | "NOT_FOUND"
  | "OFFSET_MISMATCH"
  | "UPLOAD_BUSY"
  | "TOO_LARGE"
  | "RANGE_NOT_SATISFIABLE"
  | "METHOD_NOT_ALLOWED"
  | "INTERNAL";

const STATUS: Record<MediaStoreErrorCode, number> = {
  BAD_MEDIA_ID: 400,
  BAD_REQUEST: 400,
  UNAUTHORIZED: 401,
  NOT_FOUND: 404,
  OFFSET_MISMATCH: 409,
  UPLOAD_BUSY: 409,
  TOO_LARGE: 413,
  RANGE_NOT_SATISFIABLE: 416,
  METHOD_NOT_ALLOWED: 405,
  INTERNAL: 500,
};

export class MediaStoreError extends Error {
  override readonly name = "MediaStoreError";
  readonly status: number;

  constructor(
    readonly code: MediaStoreErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.status = STATUS[code];
  }
}
