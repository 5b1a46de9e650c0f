import type { BtfTable } from './btf';

// What the domain needs from the kernel, in the domain's own words. The real
// implementation is daemon/src/kernel/adapter.ts; tests pass a fake. Nothing
// here spells a raw map or program type number: the kernel layer names them.

export type XdpMode = 'auto' | 'generic' | 'native' | 'offload';
export type TcDirection = 'ingress' | 'egress';

/** Where a program gets attached; interfaces are already resolved to an ifindex. */
export type AttachTarget =
  | { type: 'xdp'; ifindex: number; mode: XdpMode }
  | { type: 'tc'; ifindex: number; direction: TcDirection }
  | { type: 'tracepoint'; category: string; name: string }
  | { type: 'raw_tracepoint'; name: string };

export type AttachKind = AttachTarget['type'];

/** The definition of an inner map template, as the object declares it. */
export interface InnerMapDefinition {
  name: string;
  /** 'HASH', 'LPM_TRIE', ... */
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  /** 'NO_PREALLOC', 'INNER_MAP', ... */
  flags: string[];
  /** BTF type ids of key and value in the object's BTF (0: none) */
  btfKeyTypeId: number;
  btfValueTypeId: number;
}

export interface MapDefinition extends InnerMapDefinition {
  /** made by libbpf for global data (.rodata, .data, .bss, .kconfig), not declared as a map */
  internal: boolean;
  /** the inner template of an ARRAY_OF_MAPS / HASH_OF_MAPS map, else null */
  inner: InnerMapDefinition | null;
}

export interface ProgramDefinition {
  name: string;
  /** ELF section, e.g. 'xdp' or 'tracepoint/syscalls/sys_enter_getpid' */
  section: string;
  /** libbpf's name of the program type: 'xdp', 'sched_cls', 'tracepoint', 'raw_tracepoint', ... */
  type: string;
}

/** What the kernel says of a link. */
export interface LinkInfo {
  /** the kernel's bpf_link id */
  id: number;
  /** the kernel's id of the attached program (0 once detached) */
  programId: number;
  /** 'xdp', 'tcx', 'perf_event', 'raw_tracepoint', ... */
  type: string;
  /** xdp and tcx: the interface (0 once the interface is gone) */
  ifindex: number | null;
}

/**
 * An attachment. Closing it detaches the program unless the link is pinned:
 * a pinned link keeps the program attached after mimd is gone.
 */
export interface KernelLink {
  /** the kernel's bpf_link id */
  readonly id: number;
  /** Read from the kernel each time: an update changes the program. */
  info(): LinkInfo;
  pin(path: string): void;
  /** Idempotent. */
  close(): void;
}

export type UpdateMode = 'any' | 'noexist' | 'exist';

/** An owned handle on a kernel map (an inner map mimd built, or an outer map). */
export interface KernelMap {
  /** the kernel's map id */
  readonly id: number;
  readonly keySize: number;
  /** bytes of one value as user space reads and writes it */
  readonly valueSize: number;
  /** null when the key is absent */
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, mode?: UpdateMode): Promise<void>;
  /** false when the key was absent */
  delete(key: Buffer): Promise<boolean>;
  /** the key after `key` (the first for null); null at the end */
  nextKey(key: Buffer | null): Buffer | null;
  /** What the kernel says the map is (type, sizes, max entries, flags). */
  definition(): MapShape;
  /**
   * Writes keys and values packed back to back, in batches where the map
   * type allows. The kernel stops at the first entry it refuses; the error
   * then carries `index`, that entry's place in `keys`.
   */
  writeEntries(keys: Buffer, values: Buffer, mode?: UpdateMode): Promise<void>;
  /**
   * Reads every entry, a page at a time, by batch lookup where the map type
   * has it (key by key otherwise). Entries added or deleted while it runs
   * may or may not be seen.
   */
  readAll(pageEntries: number): AsyncIterable<EntryPageBuffers>;
  pin(path: string): void;
  /** Idempotent. */
  close(): void;
}

/** A page of entries as the kernel holds them: keys and values packed back to back. */
export interface EntryPageBuffers {
  keys: Buffer;
  values: Buffer;
  count: number;
}

/** An outer map (ARRAY_OF_MAPS / HASH_OF_MAPS): its values are inner maps. */
export interface KernelOuterMap extends KernelMap {
  /** Puts `inner` into the slot: one atomic pointer exchange, after which no program uses the old map. */
  setInner(key: Buffer, inner: KernelMap, mode?: UpdateMode): Promise<void>;
  /**
   * Puts each inner map into its slot with one BPF_MAP_UPDATE_BATCH: one
   * grace period for all of them on kernels that batch outer maps. The
   * kernel applies them in order and stops at the first failure; the error
   * then carries `processed`, how many were applied.
   */
  setInnerBatch(keys: readonly Buffer[], inners: readonly KernelMap[]): Promise<void>;
  /** The id of the inner map in the slot, or null when the slot is empty. */
  innerId(key: Buffer): number | null;
}

/** The shape of a map as the kernel compares it. */
export interface MapShape {
  type: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: string[];
}

/** What an inner map is made from: the template, with maxEntries possibly changed. */
export interface MapSpec extends MapShape {
  /** kernel object name, at most 15 characters */
  name?: string;
  /**
   * The outer map the new map is meant for: it is made to match that map's
   * inner template in everything the kernel compares, type information too.
   */
  innerOf?: KernelOuterMap;
}

/** A BPF object: opened (parsed, nothing in the kernel yet), then loaded. */
export interface KernelObject {
  maps(): MapDefinition[];
  programs(): ProgramDefinition[];
  /** the object's BTF type table, or null when it has none */
  btf(): BtfTable | null;
  /** A new owned handle on a loaded map-in-map map. */
  outerMap(name: string): KernelOuterMap;
  /** Before load: use this map (a pinned outer map) instead of creating one. */
  reuseMap(name: string, map: KernelMap): void;
  /** Before load: libbpf neither pins nor reuses by pin this map; mimd does. */
  clearPinPath(name: string): void;
  /** Creates the maps and verifies and loads the programs. */
  load(): Promise<void>;
  attach(program: string, target: AttachTarget): KernelLink;
  /** Puts the program into an existing link in one step (bpf_link_update). */
  updateLink(program: string, link: KernelLink): void;
  /** Idempotent. Unloads what no link, pin or slot still holds. */
  close(): void;
}

export interface OpenObjectOptions {
  /** mimd's name of the object (the config's objects[i].name) */
  name: string;
  /** where libbpf pins the maps the object declares with LIBBPF_PIN_BY_NAME */
  pinRoot: string;
}

/** What the host service needs: objects and interfaces. */
export interface ObjectLoader {
  /** Parses the object file; touches no kernel state. */
  openObject(path: string, options: OpenObjectOptions): KernelObject;
  /** ifindex of a network interface; throws an error naming the interface if there is none. */
  interfaceIndex(name: string): number;
  /** A pinned outer map. */
  openPinnedOuterMap(path: string): KernelOuterMap;
  /** A pinned link. */
  openPinnedLink(path: string): KernelLink;
}

/** What the slot service needs: inner maps and their pins. */
export interface MapStore {
  /** Creates a map in the kernel (off the event loop). */
  createMap(spec: MapSpec): Promise<KernelMap>;
  /** Creates a pin directory (and its parents) on bpffs, mode 0700. */
  makePinDir(path: string): void;
  /** Removes a pin; absent is fine. */
  unpin(path: string): void;
  /** Removes a pin directory if nothing is left in it; absent is fine. */
  removeEmptyPinDir(path: string): void;
  /** Removes a pin directory and everything pinned under it; absent is fine. */
  removePinTree(path: string): void;
  /** True when something is pinned (or a directory exists) at path. */
  pinExists(path: string): boolean;
  /** A pinned map (a version mimd pinned in an earlier run). */
  openPinnedMap(path: string): KernelMap;
  /** Names in a pin directory (empty when it does not exist), with whether each is a directory. */
  listPins(path: string): { name: string; directory: boolean }[];
  /** Moves a pin, replacing what is at `to` (rename(2) on bpffs). */
  renamePin(from: string, to: string): void;
}

export interface KernelPort extends ObjectLoader, MapStore {}
