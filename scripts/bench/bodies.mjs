// Request bodies of n entries for bpf/bench.bpf.c's inner maps (u32 key ->
// u64 value; entry i is key i, value i + 1), in the three formats mimd takes.
// Built before the clock starts, so only mimd's side is timed.

export const KEY_SIZE = 4;
export const VALUE_SIZE = 8;
const CHUNK_ENTRIES = 32768;

/** `{"entries":[...],"maxEntries":n}` as one Buffer. */
export function jsonBody(n, maxEntries) {
  const parts = [];
  for (let i = 0; i < n; i++) parts.push(`{"key":${i},"value":${i + 1}}`);
  const tail = maxEntries === undefined ? '' : `,"maxEntries":${maxEntries}`;
  return Buffer.from(`{"entries":[${parts.join(',')}]${tail}}`);
}

/** One `{"key":K,"value":V}` per line, in chunks of CHUNK_ENTRIES lines. */
export function ndjsonBody(n) {
  const chunks = [];
  for (let start = 0; start < n; start += CHUNK_ENTRIES) {
    let text = '';
    for (let i = start; i < Math.min(n, start + CHUNK_ENTRIES); i++) text += `{"key":${i},"value":${i + 1}}\n`;
    chunks.push(Buffer.from(text));
  }
  return chunks;
}

/** Packed records: key bytes then value bytes, little-endian, in chunks. */
export function binaryBody(n) {
  const chunks = [];
  const record = KEY_SIZE + VALUE_SIZE;
  for (let start = 0; start < n; start += CHUNK_ENTRIES) {
    const count = Math.min(n, start + CHUNK_ENTRIES) - start;
    const buf = Buffer.alloc(count * record);
    for (let j = 0; j < count; j++) {
      buf.writeUInt32LE(start + j, j * record);
      buf.writeBigUInt64LE(BigInt(start + j + 1), j * record + KEY_SIZE);
    }
    chunks.push(buf);
  }
  return chunks;
}

/** A small entry list (for swaps): `[{key, value}]` of n entries, value offset by `salt`. */
export function entries(n, salt = 0) {
  return Array.from({ length: n }, (_, i) => ({ key: i, value: i + 1 + salt }));
}
