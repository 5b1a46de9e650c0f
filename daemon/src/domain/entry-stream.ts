// Entries on their way into an inner map, a chunk at a time: from a JSON body
// already in memory, from NDJSON lines, or from packed binary records. The
// codec writes each key and value straight into the chunk's contiguous key and
// value buffers, which go to the kernel as one batch update. Whatever the size
// of an upload, only two chunks, one partial line or record, and the piece of
// the body being read are held at a time.
//
// The digest of a version is the sha256 of its entries in binary form (each
// key's bytes, then its value's bytes, in the order given): the same bytes an
// application/octet-stream upload sends, so `sha256sum` of such a body is its
// digest.
import { createHash, type Hash } from 'node:crypto';
import { StringDecoder } from 'node:string_decoder';
import type { EntryCodec } from './codec';
import { badInput, isMimdError, mimdError, templateViolation, TooManyEntriesError } from './errors';

/** Encoded entries, packed back to back, ready for one batch update. */
export interface EntryChunk {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** index in the request of the chunk's first entry: errors name entries[first + i] */
  first: number;
}

/** What a version is built from: its entries a chunk at a time, and what is known of them once read. */
export interface VersionContent {
  maxEntries: number;
  labels: Record<string, string>;
  chunks: AsyncIterable<EntryChunk>;
  /** After `chunks` is exhausted: how many entries, and their digest. */
  summary(): { count: number; digest: string };
  /** Duplicate keys were refused before any chunk was made (JSON bodies); otherwise the fill must refuse them. */
  duplicatesChecked: boolean;
}

/** How entries become chunks for one inner map. */
export interface ChunkShape {
  keySize: number;
  valueSize: number;
  /** entries per chunk (and per batch update) */
  chunkEntries: number;
  /** the inner map's maxEntries: more entries break the template (422) */
  maxEntries: number;
  /** the most entries one request may carry (api.maxEntries): more is 413 */
  requestLimit: number;
  /** Checks the key at keys[offset..] against the template, canonicalising it in place; throws naming `field`. */
  checkKey(keys: Buffer, offset: number, field: string): void;
}

/** Longest NDJSON line accepted: far above any real entry, low enough that a body without newlines cannot grow memory. */
export const MAX_LINE_BYTES = 1 << 20;

/**
 * Two pairs of chunk buffers used in turn: one may be in the kernel's hands
 * (a batch update in flight) while the other is filled. The consumer must
 * be done with chunk n before it asks for chunk n + 2, which a loop that
 * awaits the previous write before starting the next one guarantees.
 */
class ChunkBuilder {
  private readonly pairs: { keys: Buffer; values: Buffer }[];
  private readonly records: Buffer;
  private readonly hash: Hash = createHash('sha256');
  private turn = 0;
  /** entries in the chunk being built */
  count = 0;
  /** entries before it */
  first = 0;

  constructor(readonly shape: ChunkShape) {
    const { keySize, valueSize, chunkEntries } = shape;
    this.pairs = [0, 1].map(() => ({ keys: Buffer.allocUnsafe(keySize * chunkEntries), values: Buffer.allocUnsafe(valueSize * chunkEntries) }));
    this.records = Buffer.allocUnsafe((keySize + valueSize) * chunkEntries);
  }

  get keys(): Buffer {
    return this.pairs[this.turn]!.keys;
  }

  get values(): Buffer {
    return this.pairs[this.turn]!.values;
  }

  get full(): boolean {
    return this.count === this.shape.chunkEntries;
  }

  /** The index the next entry will have, after checking that one more is allowed. */
  next(): number {
    const index = this.first + this.count;
    if (index >= this.shape.requestLimit) {
      throw mimdError(TooManyEntriesError, `entries: more than ${this.shape.requestLimit} entries in one request (api.maxEntries)`, { field: 'entries' });
    }
    if (index >= this.shape.maxEntries) {
      throw templateViolation('entries', `more than the inner map's maxEntries ${this.shape.maxEntries} entries`);
    }
    return index;
  }

  /** Hands out the chunk built so far and starts the next one in the other buffers. */
  take(hashRecords: boolean): EntryChunk {
    const { keys, values } = this.pairs[this.turn]!;
    const chunk = { keys: keys.subarray(0, this.count * this.shape.keySize), values: values.subarray(0, this.count * this.shape.valueSize), count: this.count, first: this.first };
    if (hashRecords) this.hash.update(interleave(chunk, this.shape, this.records));
    this.first += this.count;
    this.count = 0;
    this.turn ^= 1;
    return chunk;
  }

  /** For bodies already in binary record form: their bytes are the digest's input as they are. */
  hashRaw(bytes: Buffer): void {
    this.hash.update(bytes);
  }

  summary(): { count: number; digest: string } {
    return { count: this.first + this.count, digest: this.hash.copy().digest('hex') };
  }
}

/**
 * Packed keys and values as binary records (key then value per entry), in
 * `scratch` (a new buffer when not given): the form digests are taken over,
 * and the form of binary uploads and dumps.
 */
export function interleave(
  chunk: { keys: Buffer; values: Buffer; count: number },
  shape: { keySize: number; valueSize: number },
  scratch: Buffer = Buffer.allocUnsafe(chunk.count * (shape.keySize + shape.valueSize)),
): Buffer {
  const { keySize, valueSize } = shape;
  const record = keySize + valueSize;
  for (let i = 0; i < chunk.count; i++) {
    chunk.keys.copy(scratch, i * record, i * keySize, (i + 1) * keySize);
    chunk.values.copy(scratch, i * record + keySize, i * valueSize, (i + 1) * valueSize);
  }
  return scratch.subarray(0, chunk.count * record);
}

/** sha256 of entries in binary record form (see the top of this file). */
export function entriesDigest(keys: Buffer, values: Buffer, count: number, shape: { keySize: number; valueSize: number }): string {
  return createHash('sha256').update(interleave({ keys, values, count }, shape)).digest('hex');
}

/** Chunks of entries already encoded in memory (a JSON body, checked whole before the kernel is touched). */
export function encodedContent(
  encoded: { keys: Buffer; values: Buffer; count: number; digest: string },
  shape: { keySize: number; valueSize: number; chunkEntries: number },
  maxEntries: number,
  labels: Record<string, string>,
): VersionContent {
  return {
    maxEntries,
    labels,
    duplicatesChecked: true,
    summary: () => ({ count: encoded.count, digest: encoded.digest }),
    chunks: (async function* () {
      for (let first = 0; first < encoded.count; first += shape.chunkEntries) {
        const end = Math.min(encoded.count, first + shape.chunkEntries);
        yield {
          keys: encoded.keys.subarray(first * shape.keySize, end * shape.keySize),
          values: encoded.values.subarray(first * shape.valueSize, end * shape.valueSize),
          count: end - first,
          first,
        };
      }
    })(),
  };
}

/**
 * NDJSON: one `{"key": ..., "value": ...}` per line; blank lines are skipped.
 * Errors name the entry (entries[i], counting entries, not lines) and the line.
 */
export function ndjsonContent(body: AsyncIterable<Buffer | string>, codec: EntryCodec, shape: ChunkShape, labels: Record<string, string>): VersionContent {
  const builder = new ChunkBuilder(shape);
  async function* chunks(): AsyncGenerator<EntryChunk> {
    const decoder = new StringDecoder('utf8');
    let rest = '';
    let line = 0;
    const entry = (text: string): void => {
      line++;
      if (text.trim() === '') return;
      const index = builder.next();
      try {
        addJsonEntry(builder, codec, text, index);
      } catch (err) {
        if (isMimdError(err)) err.message += ` (NDJSON line ${line})`;
        throw err;
      }
    };
    for await (const piece of body) {
      const text = rest + (typeof piece === 'string' ? piece : decoder.write(piece));
      let start = 0;
      for (let newline = text.indexOf('\n'); newline >= 0; newline = text.indexOf('\n', start)) {
        entry(text.slice(start, newline));
        start = newline + 1;
        if (builder.full) yield builder.take(true);
      }
      rest = text.slice(start);
      if (rest.length > MAX_LINE_BYTES) {
        throw badInput(`entries[${builder.first + builder.count}]`, `NDJSON line ${line + 1} is longer than ${MAX_LINE_BYTES} bytes`);
      }
    }
    rest += decoder.end();
    if (rest !== '') entry(rest);
    if (builder.count > 0) yield builder.take(true);
  }
  return { maxEntries: shape.maxEntries, labels, duplicatesChecked: false, chunks: chunks(), summary: () => builder.summary() };
}

function addJsonEntry(builder: ChunkBuilder, codec: EntryCodec, text: string, index: number): void {
  const field = `entries[${index}]`;
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw badInput(field, `not JSON: ${(err as Error).message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw badInput(field, 'expected an object {"key": ..., "value": ...}');
  }
  const object = parsed as Record<string, unknown>;
  for (const name of Object.keys(object)) {
    if (name !== 'key' && name !== 'value') throw badInput(`${field}.${name}`, 'unknown property (an entry has key and value)');
  }
  if (!('key' in object)) throw badInput(`${field}.key`, 'missing');
  if (!('value' in object)) throw badInput(`${field}.value`, 'missing');
  const { keySize, valueSize } = builder.shape;
  const at = builder.count;
  codec.key.encodeInto(object.key as never, builder.keys, at * keySize, `${field}.key`);
  builder.shape.checkKey(builder.keys, at * keySize, `${field}.key`);
  codec.value.encodeInto(object.value as never, builder.values, at * valueSize, `${field}.value`);
  builder.count++;
}

/**
 * application/octet-stream: per entry, the key's bytes then the value's
 * bytes, of the template's sizes, in the map's own memory layout.
 */
export function binaryContent(body: AsyncIterable<Buffer | string>, shape: ChunkShape, labels: Record<string, string>): VersionContent {
  const builder = new ChunkBuilder(shape);
  const { keySize, valueSize } = shape;
  const record = keySize + valueSize;
  const add = (from: Buffer, at: number): void => {
    const index = builder.next();
    const slot = builder.count;
    from.copy(builder.keys, slot * keySize, at, at + keySize);
    from.copy(builder.values, slot * valueSize, at + keySize, at + record);
    builder.shape.checkKey(builder.keys, slot * keySize, `entries[${index}].key`);
    builder.count++;
  };
  async function* chunks(): AsyncGenerator<EntryChunk> {
    const carry = Buffer.allocUnsafe(record);
    let carried = 0;
    for await (const raw of body) {
      const piece = typeof raw === 'string' ? Buffer.from(raw, 'latin1') : raw;
      let at = 0;
      if (carried > 0) {
        const n = Math.min(record - carried, piece.length);
        piece.copy(carry, carried, 0, n);
        carried += n;
        at = n;
        if (carried < record) continue;
        add(carry, 0);
        builder.hashRaw(carry);
        carried = 0;
        if (builder.full) yield builder.take(false);
      }
      const whole = at + Math.floor((piece.length - at) / record) * record;
      // Hashed before its entries are checked: a bad one fails the upload, digest and all.
      builder.hashRaw(piece.subarray(at, whole));
      for (; at < whole; at += record) {
        add(piece, at);
        if (builder.full) yield builder.take(false);
      }
      carried = piece.length - whole;
      piece.copy(carry, 0, whole);
    }
    if (carried > 0) {
      throw badInput('body', `${carried} bytes after the last whole entry: expected records of ${keySize} key bytes and ${valueSize} value bytes (${record} bytes each)`);
    }
    if (builder.count > 0) yield builder.take(false);
  }
  return { maxEntries: shape.maxEntries, labels, duplicatesChecked: false, chunks: chunks(), summary: () => builder.summary() };
}
