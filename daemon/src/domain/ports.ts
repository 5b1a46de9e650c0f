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

/** An attachment. Closing it detaches the program (links are not pinned yet). */
export interface KernelLink {
  /** the kernel's bpf_link id */
  readonly id: number;
  /** the kernel's id of the attached program */
  readonly programId: number;
  /** Idempotent. */
  close(): void;
}

/** A BPF object: opened (parsed, nothing in the kernel yet), then loaded. */
export interface KernelObject {
  maps(): MapDefinition[];
  programs(): ProgramDefinition[];
  /** Creates the maps and verifies and loads the programs. */
  load(): Promise<void>;
  attach(program: string, target: AttachTarget): KernelLink;
  /** Idempotent. Unloads what no link, pin or slot still holds. */
  close(): void;
}

export interface OpenObjectOptions {
  /** mimd's name of the object (the config's objects[i].name) */
  name: string;
  /** where libbpf pins the maps the object declares with LIBBPF_PIN_BY_NAME */
  pinRoot: string;
}

export interface KernelPort {
  /** Parses the object file; touches no kernel state. */
  openObject(path: string, options: OpenObjectOptions): KernelObject;
  /** ifindex of a network interface; throws an error naming the interface if there is none. */
  interfaceIndex(name: string): number;
}
