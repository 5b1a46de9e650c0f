// One managed outer map: its inner template and the rules the kernel applies
// on insert (bpf_map_meta_equal), checked here first so that a request the
// template forbids is refused with the field it breaks, never with a bare
// EINVAL. Builds inner maps (versions) for its slots and reads them back.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { InnerMapDefinition, KernelMap, KernelOuterMap, MapStore } from './ports';
import type { Entry, EntryJson, EntryPage, InnerTemplateView, Labels, OuterMapView } from './slots-api';
import { slotFromUrl, type EntryCodec } from './codec';
import type { MapCodecs } from './map-codecs';
import { Slot, type Version } from './slot';
import type { VersionRecord } from './state';
import { innerMapMisfit, type ShapeDifference } from './template';
import { badInput, fromKernel, mimdError, NotFoundError, TemplateViolationError, templateViolation } from './errors';

const ARRAY_TYPES = new Set(['ARRAY', 'PERCPU_ARRAY']);

/** Entries encoded for the kernel: keys and values packed back to back. */
export interface EncodedContent {
  keys: Buffer;
  values: Buffer;
  count: number;
  maxEntries: number;
  labels: Labels;
  /** sha256 of keys then values */
  digest: string;
}

export interface OuterMapOptions {
  object: string;
  name: string;
  type: string;
  keySize: number;
  maxEntries: number;
  template: InnerMapDefinition;
  handle: KernelOuterMap;
  kernel: MapStore;
  /** where this map's versions are pinned: <pinRoot>/<object>/slots/<map> */
  pinDir: string;
  /** how slots and entries cross the API */
  codecs: MapCodecs;
  /** where the outer map itself is pinned */
  pinPath: string | null;
  /** test seam: waits at a named point of a change (see SlotsServiceOptions.pauseAt) */
  checkpoint: (point: string) => Promise<void>;
}

export class OuterMap {
  readonly object: string;
  readonly name: string;
  readonly type: string;
  readonly keySize: number;
  readonly maxEntries: number;
  readonly template: InnerMapDefinition;
  readonly handle: KernelOuterMap;
  readonly pinDir: string;
  readonly pinPath: string | null;
  /** how slots (outer keys) cross the API */
  readonly slotCodec: EntryCodec['key'];
  /** how the inner maps' entries cross the API */
  readonly entryCodec: EntryCodec;
  private readonly kernel: MapStore;
  private readonly slots = new Map<string, Slot>();
  private readonly checkpoint: (point: string) => Promise<void>;

  constructor(options: OuterMapOptions) {
    this.object = options.object;
    this.name = options.name;
    this.type = options.type;
    this.keySize = options.keySize;
    this.maxEntries = options.maxEntries;
    this.template = options.template;
    this.handle = options.handle;
    this.kernel = options.kernel;
    this.pinDir = options.pinDir;
    this.pinPath = options.pinPath;
    this.checkpoint = options.checkpoint;
    this.slotCodec = options.codecs.slot;
    this.entryCodec = options.codecs.entry;
  }

  get ref(): string {
    return `${this.object}/${this.name}`;
  }

  /** An ARRAY template with BPF_F_INNER_MAP, or any non-array template: max_entries is not compared. */
  get resizable(): boolean {
    return !this.innerIsArray || this.template.flags.includes('INNER_MAP');
  }

  private get innerIsArray(): boolean {
    return ARRAY_TYPES.has(this.template.type);
  }

  // ---- slots ---------------------------------------------------------------

  /** Parses a slot from the URL; an array index past the end is an unknown slot. */
  slotKey(slot: string): Buffer {
    const key = slotFromUrl(this.slotCodec, slot);
    if (this.type === 'ARRAY_OF_MAPS') {
      const index = key.readUInt32LE(0);
      if (index >= this.maxEntries) {
        throw mimdError(NotFoundError, `slot: ${this.ref} has slots 0 to ${this.maxEntries - 1}, got ${slot}`, { field: 'slot' });
      }
    }
    return key;
  }

  /** The slot's record, made on first use. */
  slot(key: Buffer): Slot {
    const id = key.toString('hex');
    let slot = this.slots.get(id);
    if (!slot) {
      slot = new Slot(key, this.slotCodec.decode(key));
      this.slots.set(id, slot);
    }
    return slot;
  }

  knownSlot(key: Buffer): Slot | undefined {
    return this.slots.get(key.toString('hex'));
  }

  knownSlots(): Slot[] {
    return [...this.slots.values()];
  }

  /** Keys of the slots that hold an inner map in the kernel now (of `map`: an outer map being replaced). */
  occupiedKeys(map: KernelOuterMap = this.handle): Buffer[] {
    const keys: Buffer[] = [];
    if (this.type === 'ARRAY_OF_MAPS') {
      for (let index = 0; index < this.maxEntries; index++) {
        const key = Buffer.alloc(4);
        key.writeUInt32LE(index);
        if (map.innerId(key) !== null) keys.push(key);
      }
      return keys;
    }
    for (let key = map.nextKey(null); key; key = map.nextKey(key)) keys.push(key);
    return keys;
  }

  // ---- content -------------------------------------------------------------

  templateView(): InnerTemplateView {
    const { type, keySize, valueSize, maxEntries, flags } = this.template;
    return { type, keySize, valueSize, maxEntries, flags: [...flags], resizable: this.resizable };
  }

  view(): OuterMapView {
    return {
      object: this.object,
      name: this.name,
      type: this.type,
      maxEntries: this.maxEntries,
      keySize: this.keySize,
      innerTemplate: this.templateView(),
      slotsInUse: this.occupiedKeys().length,
      mapId: this.handle.id,
      pinPath: this.pinPath,
    };
  }

  /** Checks a PUT/stage body against the template and encodes it; touches nothing. */
  encode(body: { entries: Entry[]; labels?: Labels; maxEntries?: number }): EncodedContent {
    const maxEntries = body.maxEntries ?? this.template.maxEntries;
    if (body.maxEntries !== undefined && body.maxEntries !== this.template.maxEntries && !this.resizable) {
      throw templateViolation(
        'maxEntries',
        `the inner template of ${this.ref} is an ${this.template.type} without BPF_F_INNER_MAP: ` +
          `its maxEntries must stay ${this.template.maxEntries}, got ${body.maxEntries}`,
      );
    }
    const { entries } = body;
    if (entries.length > maxEntries) {
      throw templateViolation('entries', `${entries.length} entries exceed maxEntries ${maxEntries} of ${this.ref}'s inner map`);
    }
    const { key: keyCodec, value: valueCodec } = this.entryCodec;
    const keys = Buffer.alloc(entries.length * keyCodec.size);
    const values = Buffer.alloc(entries.length * valueCodec.size);
    const seen = new Map<string, number>();
    entries.forEach((entry, i) => {
      const key = this.encodeKey(entry.key, `entries[${i}].key`, maxEntries);
      const id = key.toString('hex');
      const first = seen.get(id);
      if (first !== undefined) throw badInput(`entries[${i}].key`, `duplicate of entries[${first}].key`);
      seen.set(id, i);
      key.copy(keys, i * keyCodec.size);
      valueCodec.encode(entry.value, `entries[${i}].value`).copy(values, i * valueCodec.size);
    });
    return { keys, values, count: entries.length, maxEntries, labels: { ...(body.labels ?? {}) }, digest: digest(keys, values) };
  }

  /**
   * Encodes one key; an array index past maxEntries breaks the template. An
   * LPM trie key comes back canonical (bits past the prefix zeroed), because
   * the trie treats keys that differ only there as the same entry.
   */
  encodeKey(value: EntryJson, field: string, maxEntries: number): Buffer {
    const key = this.entryCodec.key.encode(value, field);
    if (this.innerIsArray && key.readUInt32LE(0) >= maxEntries) {
      throw templateViolation(field, `index ${key.readUInt32LE(0)} is past the inner map's maxEntries ${maxEntries}`);
    }
    if (this.innerIsLpm) canonicalLpmKey(key, field);
    return key;
  }

  private get innerIsLpm(): boolean {
    return this.template.type === 'LPM_TRIE';
  }

  /**
   * Whether `key` is an entry of `map` exactly. A lookup cannot tell for an
   * LPM trie: it answers with the longest prefix that covers the key.
   */
  presence(map: KernelMap): (key: Buffer) => boolean {
    if (!this.innerIsLpm) return (key) => map.lookup(key) !== null;
    const keys = new Set<string>();
    for (let key = map.nextKey(null); key; key = map.nextKey(key)) keys.add(key.toString('hex'));
    return (key) => keys.has(key.toString('hex'));
  }

  /** Entries an inner map holds: an array has every index, a hash what was written. */
  entryCount(content: EncodedContent): number {
    return this.innerIsArray ? content.maxEntries : content.count;
  }

  get arrayInner(): boolean {
    return this.innerIsArray;
  }

  /**
   * Creates, fills and pins one version. On any failure everything made so
   * far is removed again: no half-built map, no pin left behind.
   */
  async build(slot: Slot, number: number, content: EncodedContent): Promise<Version> {
    let map: KernelMap;
    try {
      map = await this.kernel.createMap({
        type: this.template.type,
        keySize: this.template.keySize,
        valueSize: this.template.valueSize,
        maxEntries: content.maxEntries,
        flags: this.template.flags,
        name: `${this.name.slice(0, 9)}_v${number}`.slice(0, 15),
      });
    } catch (err) {
      // Sizes were checked against the template; what is left is the kernel's own limit.
      if ((err as { code?: unknown }).code === 'E2BIG') {
        throw mimdError(
          TemplateViolationError,
          `maxEntries: the kernel refuses an inner ${this.template.type} of ${content.maxEntries} entries (E2BIG)`,
          { field: 'maxEntries', errno: 'E2BIG' },
          err,
        );
      }
      throw fromKernel(err, `creating an inner map for ${this.ref} slot ${String(slot.keyJson)}`);
    }
    const dir = this.slotPinDir(slot);
    const pinPath = this.versionPinPath(slot, number);
    let pinned = false;
    try {
      await this.checkpoint('build:created');
      if (content.count > 0) await map.writeEntries(content.keys, content.values);
      await this.checkpoint('build:filled');
      this.kernel.makePinDir(dir);
      // A pin a crash left at this number was never reported to anyone: the
      // restart removes those, but be sure not to fail on one.
      this.kernel.unpin(pinPath);
      map.pin(pinPath);
      pinned = true;
    } catch (err) {
      if (pinned) this.kernel.unpin(pinPath);
      this.kernel.removeEmptyPinDir(dir);
      map.close();
      throw fromKernel(err, `filling version ${number} of ${this.ref} slot ${String(slot.keyJson)}`);
    }
    await this.checkpoint('build:pinned');
    return {
      number,
      map,
      mapId: map.id,
      pinPath,
      maxEntries: content.maxEntries,
      entryCount: this.entryCount(content),
      createdAt: new Date(),
      activatedAt: null,
      labels: content.labels,
      digest: content.digest,
    };
  }

  /** Unpins and closes a version: the kernel frees it once no slot holds it. */
  discard(version: Version): void {
    this.kernel.unpin(version.pinPath);
    this.kernel.removeEmptyPinDir(path.posix.dirname(version.pinPath));
    version.map.close();
  }

  slotPinDir(slot: Slot): string {
    return path.posix.join(this.pinDir, slot.key.toString('hex'));
  }

  versionPinPath(slot: Slot, number: number): string {
    return path.posix.join(this.slotPinDir(slot), String(number));
  }

  /** A version an earlier run built, from its pin and its record. */
  adopt(slot: Slot, record: VersionRecord, map: KernelMap, pinPath: string): Version {
    return {
      number: record.number,
      map,
      mapId: map.id,
      pinPath,
      maxEntries: record.maxEntries,
      entryCount: record.entryCount,
      createdAt: new Date(record.createdAt),
      activatedAt: record.activatedAt === null ? null : new Date(record.activatedAt),
      labels: { ...record.labels },
      digest: record.digest ?? null,
    };
  }

  /** The first way `map` would not fit this map's slots, or null. */
  misfit(map: KernelMap): ShapeDifference | null {
    return innerMapMisfit(map.definition(), this.template);
  }

  /** Entries in an inner map, counted from the kernel (after an interrupted patch). */
  countEntries(version: Version): number {
    if (this.innerIsArray) return version.maxEntries;
    let count = 0;
    for (let key = version.map.nextKey(null); key; key = version.map.nextKey(key)) count++;
    return count;
  }

  /** A page of an inner map's entries, read from the kernel. */
  readEntries(map: KernelMap, limit: number, cursor: string | undefined): EntryPage {
    let after: Buffer | null = null;
    if (cursor !== undefined) {
      if (!/^[0-9a-f]*$/.test(cursor) || cursor.length !== map.keySize * 2) {
        throw badInput('cursor', 'expected the nextCursor of a previous page');
      }
      after = Buffer.from(cursor, 'hex');
    }
    const entries: Entry[] = [];
    let key = map.nextKey(after);
    let last: Buffer | null = null;
    while (key && entries.length < limit) {
      const value = map.lookup(key);
      // A key deleted between nextKey and lookup is simply not listed.
      if (value) entries.push({ key: this.entryCodec.key.decode(key), value: this.entryCodec.value.decode(value) });
      last = key;
      key = map.nextKey(key);
    }
    return { entries, nextCursor: key && last ? last.toString('hex') : null };
  }

  close(): void {
    for (const slot of this.slots.values()) {
      for (const version of slot.versions.values()) version.map.close();
    }
    this.handle.close();
  }
}

/**
 * struct bpf_lpm_trie_key: a host-order u32 prefix length, then the data.
 * Checks the length and zeroes the bits past it, in place.
 */
function canonicalLpmKey(key: Buffer, field: string): void {
  const prefixlen = key.readUInt32LE(0);
  const dataBits = (key.length - 4) * 8;
  if (prefixlen > dataBits) throw badInput(field, `prefix length ${prefixlen} is over the ${dataBits} bits of the key's data`);
  for (let bit = prefixlen; bit < dataBits; bit++) {
    const byte = 4 + (bit >> 3);
    key[byte] = (key[byte] ?? 0) & ~(0x80 >> (bit & 7));
  }
}

/** sha256 over buffers in order, hex: the digest audit records and versions carry. */
export function digest(...parts: Buffer[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}
