// BpfMap: an owned fd on a kernel map. Checks every argument against the map's
// own sizes before it reaches C++, so a wrong-sized buffer is a clear TypeError
// here and never a read past a buffer in the addon.
import { native, type NativeMap, type NativeMapInfo } from './native';
import { isMapInMap, isPerCpu, mapTypeName, updateModeFlag, type UpdateMode } from './constants';
import { assertBuffer, assertCount, assertName, assertNonEmptyString, assertUint } from './check';

/** Maps and batches up to this many entries are handled on the calling thread (well under a millisecond). */
const INLINE_ENTRIES = 1024;

export interface MapSpec {
  type: number;
  /** kernel object name, at most 15 characters */
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** required for map-in-map types: a map of the inner template's shape */
  innerMap?: BpfMap;
  /** the BTF key and value types of the map (those of an inner template, for an inner map) */
  btf?: MapBtf;
}

/** Where a map's key and value types are described: a loaded BTF object and two type ids in it. */
export interface MapBtf {
  fd: number;
  keyTypeId: number;
  valueTypeId: number;
}

export interface MapInfo extends NativeMapInfo {
  typeName: string;
}

export interface BatchLookup {
  keys: Buffer;
  values: Buffer;
  count: number;
  cursor: Buffer | null;
}

export class BpfMap {
  readonly keySize: number;
  readonly valueSize: number;
  readonly type: number;
  /** bytes of one value as user space sees it (per-CPU maps: one slot per possible CPU) */
  readonly userValueSize: number;

  private constructor(private readonly handle: NativeMap) {
    const info = handle.info();
    this.keySize = info.keySize;
    this.valueSize = info.valueSize;
    this.type = info.type;
    this.userValueSize = isPerCpu(info.type)
      ? Math.ceil(info.valueSize / 8) * 8 * native.possibleCpus()
      : info.valueSize;
  }

  /** Wraps a native handle this object now owns. */
  static adopt(handle: NativeMap): BpfMap {
    return new BpfMap(handle);
  }

  /** Creates a map in the kernel. Runs off the event loop (map creation can block on memory). */
  static async create(spec: MapSpec): Promise<BpfMap> {
    assertUint('type', spec.type);
    assertUint('keySize', spec.keySize);
    assertUint('valueSize', spec.valueSize);
    assertUint('maxEntries', spec.maxEntries);
    if (spec.flags !== undefined) assertUint('flags', spec.flags);
    if (spec.name !== undefined) assertName('name', spec.name);
    if (isMapInMap(spec.type) && !spec.innerMap) {
      throw new TypeError(`innerMap: required for ${mapTypeName(spec.type)}`);
    }
    const nativeSpec = {
      type: spec.type,
      name: spec.name,
      keySize: spec.keySize,
      valueSize: spec.valueSize,
      maxEntries: spec.maxEntries,
      flags: spec.flags ?? 0,
      innerMapFd: spec.innerMap?.fd,
      ...(spec.btf ? { btfFd: spec.btf.fd, btfKeyTypeId: spec.btf.keyTypeId, btfValueTypeId: spec.btf.valueTypeId } : {}),
    };
    // A small map is made in microseconds: a trip through the worker pool
    // (and, on a busy machine, the wait for its thread) costs more.
    const handle = spec.maxEntries <= INLINE_ENTRIES && !isMapInMap(spec.type) ? native.NativeMap.createSync(nativeSpec) : await native.NativeMap.create(nativeSpec);
    return new BpfMap(handle);
  }

  static openPinned(path: string): BpfMap {
    assertNonEmptyString('path', path);
    return new BpfMap(native.NativeMap.openPinned(path));
  }

  /** Needs CAP_SYS_ADMIN (BPF_MAP_GET_FD_BY_ID). */
  static fromId(id: number): BpfMap {
    assertUint('id', id);
    return new BpfMap(native.NativeMap.fromId(id));
  }

  get fd(): number {
    return this.handle.fd;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  info(): MapInfo {
    const info = this.handle.info();
    return { ...info, typeName: mapTypeName(info.type) };
  }

  /** null when the key is absent. For map-in-map maps the value is the inner map's id (u32). */
  lookup(key: Buffer): Buffer | null {
    this.checkKey('key', key);
    return this.handle.lookup(key);
  }

  /** Async: an update of an outer map waits one RCU grace period in the kernel. */
  async update(key: Buffer, value: Buffer, mode: UpdateMode = 'any'): Promise<void> {
    this.checkKey('key', key);
    this.checkValue('value', value);
    // Only an outer-map update waits (a grace period); others take microseconds.
    if (!isMapInMap(this.type)) return this.handle.updateSync(key, value, updateFlag(mode));
    await this.handle.update(key, value, updateFlag(mode));
  }

  /** Resolves false when the key was absent. */
  async delete(key: Buffer): Promise<boolean> {
    this.checkKey('key', key);
    return this.handle.delete(key);
  }

  /** The key after `key`, or the first key for null; null at the end. */
  nextKey(key: Buffer | null): Buffer | null {
    if (key !== null) this.checkKey('key', key);
    return this.handle.nextKey(key);
  }

  /** Yields every key. A concurrent delete may restart iteration at the first key (kernel rule). */
  *keys(): Generator<Buffer> {
    let key = this.nextKey(null);
    while (key) {
      yield key;
      key = this.nextKey(key);
    }
  }

  /** keys and values packed back to back; resolves how many were written. */
  async updateBatch(keys: Buffer, values: Buffer, mode: UpdateMode = 'any'): Promise<number> {
    const count = this.packedCount(keys, values);
    if (count === 0) return 0;
    // Outer-map updates wait a grace period: always off the event loop. A
    // small batch into any other map is quicker done here than handed over.
    if (count <= INLINE_ENTRIES && !isMapInMap(this.type)) return this.handle.updateBatchSync(keys, values, count, updateFlag(mode));
    return this.handle.updateBatch(keys, values, count, updateFlag(mode));
  }

  /** Reads up to maxCount entries starting at cursor (null: from the start). */
  async lookupBatch(cursor: Buffer | null, maxCount: number): Promise<BatchLookup> {
    assertCount('maxCount', maxCount);
    if (cursor !== null) assertBuffer('cursor', cursor);
    return this.handle.lookupBatch(cursor, maxCount);
  }

  async deleteBatch(keys: Buffer): Promise<number> {
    assertBuffer('keys', keys);
    if (keys.length % this.keySize !== 0) {
      throw new TypeError(`keys: expected a multiple of the key size ${this.keySize} bytes, got ${keys.length}`);
    }
    const count = keys.length / this.keySize;
    if (count === 0) return 0;
    return this.handle.deleteBatch(keys, count);
  }

  /** After freeze, user space can no longer write the map (programs still can). */
  freeze(): void {
    this.handle.freeze();
  }

  pin(path: string): void {
    assertNonEmptyString('path', path);
    this.handle.pin(path);
  }

  /** Idempotent. The map lives on while a pin, a slot or a program refers to it. */
  close(): void {
    this.handle.close();
  }

  private checkKey(field: string, key: Buffer): void {
    assertBuffer(field, key);
    if (key.length !== this.keySize) {
      throw new TypeError(`${field}: expected ${this.keySize} bytes, got ${key.length}`);
    }
  }

  private checkValue(field: string, value: Buffer): void {
    assertBuffer(field, value);
    if (value.length !== this.userValueSize) {
      throw new TypeError(`${field}: expected ${this.userValueSize} bytes, got ${value.length}`);
    }
  }

  private packedCount(keys: Buffer, values: Buffer): number {
    assertBuffer('keys', keys);
    assertBuffer('values', values);
    if (keys.length % this.keySize !== 0) {
      throw new TypeError(`keys: expected a multiple of the key size ${this.keySize} bytes, got ${keys.length}`);
    }
    const count = keys.length / this.keySize;
    if (values.length !== count * this.userValueSize) {
      throw new TypeError(
        `values: expected ${count} values of ${this.userValueSize} bytes (${count * this.userValueSize}), got ${values.length}`,
      );
    }
    return count;
  }
}

function updateFlag(mode: UpdateMode): number {
  const flag = updateModeFlag[mode];
  if (flag === undefined) throw new TypeError(`mode: expected one of any, noexist, exist, got ${String(mode)}`);
  return flag;
}
