// Filling a new inner map from a version's content, a chunk at a time. While
// the kernel writes one chunk (a batch update, off the event loop), the next
// one is read and encoded: the upload and the kernel work side by side.
import type { KernelMap } from './ports';
import type { EntryChunk, VersionContent } from './entry-stream';
import { FingerprintSet } from './key-set';
import { badInput, fromKernel, isMimdError } from './errors';

export interface FillShape {
  keySize: number;
  /** ARRAY inner maps: a key is an index, duplicates are found by a bitmap */
  array: boolean;
  /** Exact presence of a key in the map (not a covering prefix for an LPM trie). */
  presence: (map: KernelMap) => (key: Buffer) => boolean;
}

/** Writes every entry of `content` into `map`; resolves how many and their digest. */
export async function fillInnerMap(map: KernelMap, content: VersionContent, shape: FillShape): Promise<{ count: number; digest: string }> {
  const duplicates = content.duplicatesChecked ? null : new DuplicateCheck(shape, content.maxEntries);
  let inflight: { done: Promise<void>; chunk: EntryChunk } | null = null;
  try {
    for await (const chunk of content.chunks) {
      if (duplicates) await duplicates.check(chunk, inflight, map);
      // The builder reuses this chunk's buffers for the one after next: the
      // previous write must be done before this one starts.
      if (inflight) await inflight.done;
      const done = map.writeEntries(chunk.keys, chunk.values).catch((err: unknown) => {
        throw refused(err, chunk);
      });
      done.catch(() => undefined); // awaited in the next round; not unhandled meanwhile
      inflight = { done, chunk };
    }
    if (inflight) await inflight.done;
  } catch (err) {
    // Let a write in flight finish before the caller closes the map.
    if (inflight) await inflight.done.catch(() => undefined);
    throw err;
  }
  return content.summary();
}

function refused(err: unknown, chunk: EntryChunk): unknown {
  if (isMimdError(err)) return err;
  const index = (err as { index?: unknown }).index;
  const at = typeof index === 'number' ? ` at entries[${chunk.first + index}]` : '';
  return fromKernel(err, `filling the inner map${at}`);
}

/** Refuses a key sent twice in one upload, naming both entries where they are still at hand. */
class DuplicateCheck {
  private readonly bitmap: Uint8Array | null;
  private readonly fingerprints: FingerprintSet | null;

  constructor(private readonly shape: FillShape, maxEntries: number) {
    this.bitmap = shape.array ? new Uint8Array(Math.ceil(maxEntries / 8)) : null;
    this.fingerprints = shape.array ? null : new FingerprintSet(Math.min(maxEntries, 1 << 16));
  }

  async check(chunk: EntryChunk, inflight: { done: Promise<void>; chunk: EntryChunk } | null, map: KernelMap): Promise<void> {
    const { keySize } = this.shape;
    for (let i = 0; i < chunk.count; i++) {
      const offset = i * keySize;
      if (!this.seen(chunk.keys, offset)) continue;
      const key = chunk.keys.subarray(offset, offset + keySize);
      const earlier = findKey(chunk, key, i) ?? (inflight ? findKey(inflight.chunk, key, inflight.chunk.count) : null);
      if (earlier !== null) throw badInput(`entries[${chunk.first + i}].key`, `duplicate of entries[${earlier}].key`);
      if (inflight) await inflight.done;
      // An index is exact; a fingerprint only suspects: ask the kernel.
      if (this.bitmap || this.shape.presence(map)(Buffer.from(key))) {
        throw badInput(`entries[${chunk.first + i}].key`, 'duplicate of an earlier entry');
      }
    }
  }

  private seen(keys: Buffer, offset: number): boolean {
    if (this.bitmap) {
      const index = keys.readUInt32LE(offset);
      const byte = index >>> 3;
      const bit = 1 << (index & 7);
      const seen = (this.bitmap[byte]! & bit) !== 0;
      this.bitmap[byte] = this.bitmap[byte]! | bit;
      return seen;
    }
    return this.fingerprints!.add(keys, offset, this.shape.keySize);
  }
}

/** The request index of `key` among the first `before` entries of `chunk`, or null. */
function findKey(chunk: EntryChunk, key: Buffer, before: number): number | null {
  const size = key.length;
  for (let j = 0; j < before; j++) {
    if (chunk.keys.compare(key, 0, size, j * size, (j + 1) * size) === 0) return chunk.first + j;
  }
  return null;
}
