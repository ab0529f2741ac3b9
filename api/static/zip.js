// Thumbnails for the images inside a .zip the user uploads, read in the browser: the server
// keeps no copy to show.

const IMAGE_NAME = /\.(jpe?g|png|webp|gif|bmp)$/i; // what the browser itself can show
const MAX_ZIP_PREVIEW_BYTES = 64 * 1024 * 1024;
const MAX_ZIP_PREVIEWS = 2000;

// Thumbnails for the images in a .zip, read in the browser (the server keeps no copy to show):
// the central directory lists the members; stored ones are sliced out, deflated ones go
// through DecompressionStream. Anything unusual (zip64, encryption) just gets no preview.
export async function zipThumbnails(file) {
  const urls = new Map();
  if (file.size > MAX_ZIP_PREVIEW_BYTES || typeof DecompressionStream === "undefined") return urls;
  const bytes = new Uint8Array(await file.arrayBuffer());
  const view = new DataView(bytes.buffer);
  let end = -1;
  for (let i = bytes.length - 22; i >= Math.max(0, bytes.length - 65557); i--) {
    if (view.getUint32(i, true) === 0x06054b50) { end = i; break; }
  }
  if (end < 0) return urls;
  const names = new TextDecoder();
  let entry = view.getUint32(end + 16, true);
  const count = view.getUint16(end + 10, true);
  for (let n = 0; n < count && urls.size < MAX_ZIP_PREVIEWS; n++) {
    if (entry + 46 > bytes.length || view.getUint32(entry, true) !== 0x02014b50) break;
    const flags = view.getUint16(entry + 8, true);
    const method = view.getUint16(entry + 10, true);
    const size = view.getUint32(entry + 20, true);
    const nameLength = view.getUint16(entry + 28, true);
    const skip = nameLength + view.getUint16(entry + 30, true) + view.getUint16(entry + 32, true);
    const local = view.getUint32(entry + 42, true);
    const name = names.decode(bytes.subarray(entry + 46, entry + 46 + nameLength));
    entry += 46 + skip;
    if (!IMAGE_NAME.test(name) || (flags & 1) || local + 30 > bytes.length) continue;
    const start = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const data = new Blob([bytes.subarray(start, start + size)]);
    try {
      const image = method === 0 ? data : method === 8
        ? await new Response(data.stream().pipeThrough(new DecompressionStream("deflate-raw"))).blob()
        : null;
      if (image) urls.set(name, URL.createObjectURL(image));
    } catch (_) {
      // a damaged member: the server reports it as an error item, no preview here
    }
  }
  return urls;
}
