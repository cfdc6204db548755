// Image dimensions from the first bytes of PNG, GIF and JPEG files, without decoding (no image
// library is installed; thumbnails are only made for images already small enough to inline).
export interface ImageSize {
  width: number;
  height: number;
}

/** Width and height from a file's head (the first 256 KiB suffice for almost every JPEG), or null. */
export function imageSize(head: Uint8Array): ImageSize | null {
  const view = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const has = (sig: number[], at = 0) => sig.every((b, i) => head[at + i] === b);
  if (head.length >= 24 && has([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]) && has([0x49, 0x48, 0x44, 0x52], 12)) {
    return { width: view.getUint32(16), height: view.getUint32(20) };
  }
  if (head.length >= 10 && (has([0x47, 0x49, 0x46, 0x38, 0x37, 0x61]) || has([0x47, 0x49, 0x46, 0x38, 0x39, 0x61]))) {
    return { width: view.getUint16(6, true), height: view.getUint16(8, true) };
  }
  if (head.length >= 4 && head[0] === 0xff && head[1] === 0xd8) {
    let at = 2;
    while (at + 9 <= head.length) {
      if (head[at] !== 0xff) return null;
      const marker = head[at + 1]!;
      if (marker === 0xff) {
        at++; // fill byte
        continue;
      }
      // SOF0..SOF15 carry the frame size, except DHT (C4), JPG (C8) and DAC (CC).
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { height: view.getUint16(at + 5), width: view.getUint16(at + 7) };
      }
      if (marker === 0xd9 || marker === 0xda) return null; // end or scan data before any frame header
      at += 2 + view.getUint16(at + 2);
    }
  }
  return null;
}
