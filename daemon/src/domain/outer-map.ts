// One managed outer map: its inner template and the rules the kernel applies
// on insert (bpf_map_meta_equal), checked here first so that a request the
// template forbids is refused with the field it breaks, never with a bare
// EINVAL. Builds inner maps (versions) for its slots and reads them back.
import { createHash } from 'node:crypto';
import * as path from 'node:path';
import type { InnerMapDefinition, KernelMap, KernelOuterMap, MapStore } from './ports';
import type { DumpFormat, Entry, EntryJson, EntryPage, InnerTemplateView, Labels, OuterMapView, VersionUpload } from './slots-api';
import { slotFromUrl, type EntryCodec } from './codec';
import { binaryContent, encodedContent, entriesDigest, interleave, ndjsonContent, type ChunkShape, type VersionContent } from './entry-stream';
import { fillInnerMap } from './fill';
import type { MapCodecs } from './map-codecs';
import { Slot, type Version } from './slot';
import type { VersionRecord } from './state';
import { innerMapMisfit, type ShapeDifference } from './template';
import { badInput, fromKernel, isMimdError, mimdError, NotFoundError, TemplateViolationError, templateViolation } from './errors';

const ARRAY_TYPES = new Set(['ARRAY', 'PERCPU_ARRAY']);

/** Entries per chunk of a fill: one batch update each. */
export const CHUNK_ENTRIES = 4096;

/** Entries per batch lookup of a dump. */
const DUMP_PAGE_ENTRIES = 4096;

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
  encode(body: { entries: Entry[]; labels?: Labels; maxEntries?: number }): VersionContent {
    const maxEntries = this.checkedMaxEntries(body.maxEntries);
    const { entries } = body;
    if (entries.length > maxEntries) {
      throw templateViolation('entries', `${entries.length} entries exceed maxEntries ${maxEntries} of ${this.ref}'s inner map`);
    }
    const { key: keyCodec, value: valueCodec } = this.entryCodec;
    const keys = Buffer.alloc(entries.length * keyCodec.size);
    const values = Buffer.alloc(entries.length * valueCodec.size);
    const seen = new Map<string, number>();
    entries.forEach((entry, i) => {
      const field = `entries[${i}].key`;
      keyCodec.encodeInto(entry.key, keys, i * keyCodec.size, field);
      this.checkKeyBytes(keys, i * keyCodec.size, field, maxEntries);
      const id = keys.toString('hex', i * keyCodec.size, (i + 1) * keyCodec.size);
      const first = seen.get(id);
      if (first !== undefined) throw badInput(field, `duplicate of entries[${first}].key`);
      seen.set(id, i);
      valueCodec.encodeInto(entry.value, values, i * valueCodec.size, `entries[${i}].value`);
    });
    const shape = { keySize: keyCodec.size, valueSize: valueCodec.size, chunkEntries: CHUNK_ENTRIES };
    const encoded = { keys, values, count: entries.length, digest: entriesDigest(keys, values, entries.length, shape) };
    return encodedContent(encoded, shape, maxEntries, { ...(body.labels ?? {}) });
  }

  /**
   * A streamed PUT/stage body: checked against the template entry by entry as
   * the fill reads it. Touches nothing until the fill runs.
   */
  streamContent(upload: VersionUpload): VersionContent {
    const maxEntries = this.checkedMaxEntries(upload.maxEntries);
    const shape: ChunkShape = {
      keySize: this.entryCodec.key.size,
      valueSize: this.entryCodec.value.size,
      chunkEntries: CHUNK_ENTRIES,
      maxEntries,
      requestLimit: upload.requestLimit,
      checkKey: (keys, offset, field) => this.checkKeyBytes(keys, offset, field, maxEntries),
    };
    const labels = { ...(upload.labels ?? {}) };
    return upload.format === 'ndjson' ? ndjsonContent(upload.body, this.entryCodec, shape, labels) : binaryContent(upload.body, shape, labels);
  }

  /** The inner map's size: the template's, or the one asked for where the template allows another. */
  private checkedMaxEntries(requested: number | undefined): number {
    const maxEntries = requested ?? this.template.maxEntries;
    if (requested !== undefined && requested !== this.template.maxEntries && !this.resizable) {
      throw templateViolation(
        'maxEntries',
        `the inner template of ${this.ref} is an ${this.template.type} without BPF_F_INNER_MAP: ` +
          `its maxEntries must stay ${this.template.maxEntries}, got ${requested}`,
      );
    }
    return maxEntries;
  }

  /**
   * Encodes one key; an array index past maxEntries breaks the template. An
   * LPM trie key comes back canonical (bits past the prefix zeroed), because
   * the trie treats keys that differ only there as the same entry.
   */
  encodeKey(value: EntryJson, field: string, maxEntries: number): Buffer {
    const key = this.entryCodec.key.encode(value, field);
    this.checkKeyBytes(key, 0, field, maxEntries);
    return key;
  }

  /** The template's rules for the key at keys[offset..], in place (see encodeKey). */
  checkKeyBytes(keys: Buffer, offset: number, field: string, maxEntries: number): void {
    if (this.innerIsArray) {
      const index = keys.readUInt32LE(offset);
      if (index >= maxEntries) throw templateViolation(field, `index ${index} is past the inner map's maxEntries ${maxEntries}`);
    }
    if (this.innerIsLpm) canonicalLpmKey(keys.subarray(offset, offset + this.entryCodec.key.size), field);
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
  entryCount(maxEntries: number, written: number): number {
    return this.innerIsArray ? maxEntries : written;
  }

  get arrayInner(): boolean {
    return this.innerIsArray;
  }

  /**
   * Creates, fills and pins one version. On any failure everything made so
   * far is removed again: no half-built map, no pin left behind.
   */
  async build(slot: Slot, number: number, content: VersionContent): Promise<Version> {
    let map: KernelMap;
    try {
      map = await this.kernel.createMap({
        type: this.template.type,
        keySize: this.template.keySize,
        valueSize: this.template.valueSize,
        maxEntries: content.maxEntries,
        flags: this.template.flags,
        name: `${this.name.slice(0, 9)}_v${number}`.slice(0, 15),
        innerOf: this.handle,
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
    let written: { count: number; digest: string };
    try {
      await this.checkpoint('build:created');
      written = await fillInnerMap(map, content, { keySize: this.template.keySize, array: this.innerIsArray, presence: (m) => this.presence(m) });
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
      if (isMimdError(err)) throw err;
      throw fromKernel(err, `filling version ${number} of ${this.ref} slot ${String(slot.keyJson)}`);
    }
    await this.checkpoint('build:pinned');
    return {
      number,
      map,
      mapId: map.id,
      pinPath,
      maxEntries: content.maxEntries,
      entryCount: this.entryCount(content.maxEntries, written.count),
      createdAt: new Date(),
      activatedAt: null,
      labels: content.labels,
      digest: written.digest,
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

  /**
   * An inner map's entries as NDJSON lines or binary records, a page of
   * lines per piece. A page read from the kernel (batch lookup) is encoded
   * and handed on before the next is read: memory stays at one page.
   */
  async *dumpEntries(map: KernelMap, format: DumpFormat): AsyncGenerator<Buffer> {
    const { key: keyCodec, value: valueCodec } = this.entryCodec;
    for await (const page of map.readAll(DUMP_PAGE_ENTRIES)) {
      if (format === 'binary') {
        yield interleave(page, { keySize: keyCodec.size, valueSize: map.valueSize });
        continue;
      }
      const lines: string[] = [];
      for (let i = 0; i < page.count; i++) {
        const key = keyCodec.decode(page.keys.subarray(i * keyCodec.size, (i + 1) * keyCodec.size));
        const value = valueCodec.decode(page.values.subarray(i * valueCodec.size, (i + 1) * valueCodec.size));
        lines.push(JSON.stringify({ key, value }));
      }
      yield Buffer.from(`${lines.join('\n')}\n`);
    }
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
