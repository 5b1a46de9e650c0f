// The domain's KernelMap / KernelOuterMap (domain/ports.ts) on a BpfMap.
import type { EntryPageBuffers, KernelMap, KernelOuterMap, MapShape, MapSpec, UpdateMode } from '../domain/ports';
import { BpfMap, type BatchLookup, type MapBtf } from './map';
import { MapFlag, MapType, mapFlagNames, mapTypeName, type MapFlagName, type MapTypeName } from './constants';

// Types whose kernel implementation has BPF_MAP_UPDATE_BATCH (generic or own);
// the others (LPM_TRIE, ...) are filled one element at a time.
const BATCH_TYPES = new Set<number>([
  MapType.HASH,
  MapType.PERCPU_HASH,
  MapType.LRU_HASH,
  MapType.LRU_PERCPU_HASH,
  MapType.ARRAY,
  MapType.PERCPU_ARRAY,
]);

/** Enough entries per syscall to amortise it, few enough to keep one batch's buffers small. */
const BATCH_ENTRIES = 4096;

export class MapAdapter implements KernelMap {
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;

  constructor(protected readonly map: BpfMap) {
    this.id = map.info().id;
    this.keySize = map.keySize;
    this.valueSize = map.userValueSize;
  }

  lookup(key: Buffer): Buffer | null {
    return this.map.lookup(key);
  }

  definition(): MapShape {
    const info = this.map.info();
    return { type: mapTypeName(info.type), keySize: info.keySize, valueSize: info.valueSize, maxEntries: info.maxEntries, flags: mapFlagNames(info.flags) };
  }

  update(key: Buffer, value: Buffer, mode: UpdateMode = 'any'): Promise<void> {
    return this.map.update(key, value, mode);
  }

  delete(key: Buffer): Promise<boolean> {
    return this.map.delete(key);
  }

  nextKey(key: Buffer | null): Buffer | null {
    return this.map.nextKey(key);
  }

  async writeEntries(keys: Buffer, values: Buffer, mode: UpdateMode = 'any'): Promise<void> {
    const count = keys.length / this.keySize;
    if (BATCH_TYPES.has(this.map.type)) {
      for (let start = 0; start < count; start += BATCH_ENTRIES) {
        const end = Math.min(count, start + BATCH_ENTRIES);
        try {
          await this.map.updateBatch(
            keys.subarray(start * this.keySize, end * this.keySize),
            values.subarray(start * this.valueSize, end * this.valueSize),
            mode,
          );
        } catch (err) {
          throw withIndex(err, start + processedOf(err));
        }
      }
      return;
    }
    for (let i = 0; i < count; i++) {
      // Element updates of an inner map run on this thread: let others in now and then.
      if (i > 0 && i % BATCH_ENTRIES === 0) await new Promise<void>((resolve) => setImmediate(resolve));
      try {
        await this.map.update(
          keys.subarray(i * this.keySize, (i + 1) * this.keySize),
          values.subarray(i * this.valueSize, (i + 1) * this.valueSize),
          mode,
        );
      } catch (err) {
        throw withIndex(err, i);
      }
    }
  }

  async *readAll(pageEntries: number): AsyncGenerator<EntryPageBuffers> {
    if (BATCH_TYPES.has(this.map.type)) {
      let cursor: Buffer | null = null;
      for (;;) {
        const page: BatchLookup = await this.map.lookupBatch(cursor, pageEntries);
        if (page.count > 0) yield { keys: page.keys, values: page.values, count: page.count };
        if (page.cursor === null) return;
        cursor = page.cursor;
      }
    }
    // Key by key: nextKey from the last key read. A key deleted meanwhile
    // makes the kernel start again from the first (its rule for hash maps).
    let key = this.map.nextKey(null);
    while (key) {
      const keys = Buffer.allocUnsafe(pageEntries * this.keySize);
      const values = Buffer.allocUnsafe(pageEntries * this.valueSize);
      let count = 0;
      while (key && count < pageEntries) {
        const value = this.map.lookup(key);
        if (value) {
          key.copy(keys, count * this.keySize);
          value.copy(values, count * this.valueSize);
          count++;
        }
        key = this.map.nextKey(key);
      }
      if (count > 0) yield { keys: keys.subarray(0, count * this.keySize), values: values.subarray(0, count * this.valueSize), count };
      // Let other requests in between pages.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  pin(path: string): void {
    this.map.pin(path);
  }

  close(): void {
    this.map.close();
  }

  /** For outer-map updates: the kernel takes the inner map by fd. */
  get fd(): number {
    return this.map.fd;
  }

  /** For the object's reuse of a pinned map. */
  get bpfMap(): BpfMap {
    return this.map;
  }
}

export class OuterMapAdapter extends MapAdapter implements KernelOuterMap {
  /**
   * The BTF types of the inner template, when the object has them: inner
   * maps are created with them, because some kernels (6.1) compare what they
   * derive from a map's BTF when a map goes into a slot, and refuse a map
   * without BTF for a template with it (a bare EINVAL).
   */
  innerBtf: MapBtf | null = null;

  async setInner(key: Buffer, inner: KernelMap, mode: UpdateMode = 'any'): Promise<void> {
    if (!(inner instanceof MapAdapter)) throw new TypeError('inner: not a map of this kernel layer');
    const value = Buffer.alloc(4);
    value.writeUInt32LE(inner.fd);
    await this.map.update(key, value, mode);
  }

  async setInnerBatch(keys: readonly Buffer[], inners: readonly KernelMap[]): Promise<void> {
    const values = Buffer.alloc(inners.length * 4);
    inners.forEach((inner, i) => {
      if (!(inner instanceof MapAdapter)) throw new TypeError('inner: not a map of this kernel layer');
      values.writeUInt32LE(inner.fd, i * 4);
    });
    await this.map.updateBatch(Buffer.concat(keys as Buffer[]), values);
  }

  innerId(key: Buffer): number | null {
    return this.map.lookup(key)?.readUInt32LE(0) ?? null;
  }
}

function processedOf(err: unknown): number {
  const processed = (err as { processed?: unknown }).processed;
  return typeof processed === 'number' ? processed : 0;
}

/** The kernel's error, with the place of the entry it refused. */
function withIndex(err: unknown, index: number): unknown {
  if (err !== null && typeof err === 'object') (err as { index?: number }).index = index;
  return err;
}

export async function createMap(spec: MapSpec): Promise<KernelMap> {
  const type = MapType[spec.type as MapTypeName];
  if (type === undefined) throw new TypeError(`type: unknown map type ${spec.type}`);
  let flags = 0;
  for (const name of spec.flags) {
    const bit = MapFlag[name as MapFlagName];
    if (bit === undefined) throw new TypeError(`flags: unknown map flag ${name}`);
    flags |= bit;
  }
  const btf = spec.innerOf instanceof OuterMapAdapter ? spec.innerOf.innerBtf : null;
  const map = await BpfMap.create({
    type,
    name: spec.name,
    keySize: spec.keySize,
    valueSize: spec.valueSize,
    maxEntries: spec.maxEntries,
    flags,
    ...(btf ? { btf } : {}),
  });
  try {
    return new MapAdapter(map);
  } catch (err) {
    map.close();
    throw err;
  }
}

/** Wraps a map this layer owns; closes it if wrapping fails. */
export function adoptMap<T extends MapAdapter>(map: BpfMap, Kind: new (map: BpfMap) => T): T {
  try {
    return new Kind(map);
  } catch (err) {
    map.close();
    throw err;
  }
}
