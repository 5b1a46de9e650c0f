// What the slot service offers the HTTP layer: the shapes of its answers and
// the one interface routes call. Keys and values cross this boundary as JSON
// values encoded by the outer map's codec (domain/codec.ts); slots arrive as
// the URL's string and are parsed by the same codec.

/** A key or value as JSON: a number, a decimal string above 2^53, a hex string "0x..." */
export type EntryJson = unknown;

export interface Entry {
  key: EntryJson;
  value: EntryJson;
}

export type Labels = Record<string, string>;

export interface InnerTemplateView {
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: string[];
  /** whether PUT/stage may ask for another maxEntries than the template's */
  resizable: boolean;
}

export interface OuterMapView {
  object: string;
  name: string;
  type: string;
  maxEntries: number;
  keySize: number;
  innerTemplate: InnerTemplateView;
  /** slots that hold an inner map in the kernel now */
  slotsInUse: number;
  /** the kernel's id of the outer map */
  mapId: number;
  /** where the outer map is pinned, or null while it is not */
  pinPath: string | null;
}

export interface SlotSummary {
  slot: EntryJson;
  /** null when mimd has not installed anything, or the slot was emptied */
  activeVersion: number | null;
  /** the inner map id the kernel holds in the slot now (null: empty) */
  mapId: number | null;
  entryCount: number | null;
  createdAt: string | null;
  labels: Labels;
  /** the kernel's slot does not hold what mimd installed */
  drift: boolean;
}

export interface OuterMapDetail extends OuterMapView {
  slots: SlotSummary[];
  /** JSON Schemas (from BTF and the configured formats) of slots and of entries' keys and values */
  schema: { slot: unknown; key: unknown; value: unknown };
}

export type VersionState = 'active' | 'staged' | 'retained';

export interface VersionView {
  version: number;
  state: VersionState;
  mapId: number;
  entryCount: number;
  maxEntries: number;
  createdAt: string;
  /** when it was last made active, if ever */
  activatedAt: string | null;
  labels: Labels;
  pinPath: string;
  /** sha256 of the content as built: every key then every value, as the kernel holds them, in request order (null: built before mimd recorded digests) */
  digest: string | null;
}

export interface SlotDetail {
  slot: EntryJson;
  activeVersion: number | null;
  /** the inner map id the kernel holds in the slot now */
  kernelMapId: number | null;
  /** the inner map id of what mimd last installed (null after DELETE) */
  installedMapId: number | null;
  drift: boolean;
  versions: VersionView[];
}

export interface VersionBody {
  entries: Entry[];
  labels?: Labels;
  maxEntries?: number;
}

export interface SwapResult {
  slot: EntryJson;
  version: number;
  previousVersion: number | null;
  mapId: number;
  /** the inner map that was in the slot before (null: empty) */
  previousMapId: number | null;
  entryCount: number;
  /** the version's content digest (see VersionView.digest) */
  digest: string | null;
  /** time spent in the outer-map update syscall(s), milliseconds */
  swapMs: number;
  /** true when the slot held nothing before (PUT answers 201) */
  created: boolean;
}

export interface EntryPage {
  entries: Entry[];
  /** pass as `cursor` for the next page; null on the last one */
  nextCursor: string | null;
}

export interface PatchBody {
  upsert?: Entry[];
  delete?: EntryJson[];
}

export interface PatchResult {
  slot: EntryJson;
  version: number;
  upserted: number;
  deleted: number;
  entryCount: number;
  /** sha256 of the change: upserted keys and values, then deleted keys, as the kernel takes them */
  digest: string;
}

export interface ClearResult {
  slot: EntryJson;
  previousVersion: number | null;
  /** the inner map that was in the slot (null: it was already empty) */
  previousMapId: number | null;
}

/**
 * A streamed body for a new version (PUT or stage): NDJSON lines or packed
 * binary records, read while the inner map fills, so memory does not grow
 * with the upload.
 */
export interface VersionUpload {
  format: 'ndjson' | 'binary';
  body: AsyncIterable<Buffer | string>;
  /** only where the kernel allows an inner map of another size than the template */
  maxEntries?: number;
  labels?: Labels;
  /** the most entries this request may carry (api.maxEntries): 413 above */
  requestLimit: number;
}

/** What a new version is built from: a JSON body in memory, or a stream. */
export type VersionInput = VersionBody | VersionUpload;

export function isUpload(input: VersionInput): input is VersionUpload {
  return 'format' in input;
}

/** How a whole inner map is read back in one stream. */
export type DumpFormat = 'ndjson' | 'binary';

/** Optimistic concurrency: the active version the caller believes in (If-Match), or undefined. */
export type Expectation = number | null | undefined;

export interface SlotsApi {
  /** objects loaded and programs attached */
  ready(): boolean;
  listMaps(): OuterMapView[];
  getMap(object: string, map: string): OuterMapDetail;
  listSlots(object: string, map: string): SlotSummary[];
  getSlot(object: string, map: string, slot: string): SlotDetail;
  putSlot(object: string, map: string, slot: string, body: VersionInput, expect?: Expectation): Promise<SwapResult>;
  stageVersion(object: string, map: string, slot: string, body: VersionInput): Promise<VersionView>;
  listVersions(object: string, map: string, slot: string): VersionView[];
  activate(object: string, map: string, slot: string, version: number, expect?: Expectation): Promise<SwapResult>;
  rollback(object: string, map: string, slot: string, version?: number, expect?: Expectation): Promise<SwapResult>;
  readEntries(object: string, map: string, slot: string, page: { limit: number; cursor?: string; version?: number }): EntryPage;
  /**
   * Every entry of the active (or a given) version, as NDJSON lines or packed
   * records, read from the kernel by batch lookup while the answer is sent.
   * Throws (before the first byte) for an unknown map, slot or version.
   */
  dumpEntries(object: string, map: string, slot: string, format: DumpFormat, version?: number): AsyncIterable<Buffer>;
  patchEntries(object: string, map: string, slot: string, body: PatchBody, expect?: Expectation): Promise<PatchResult>;
  clearSlot(object: string, map: string, slot: string, expect?: Expectation): Promise<ClearResult>;
}
