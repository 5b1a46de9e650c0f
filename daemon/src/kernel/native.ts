// The typed surface of the native addon (addon/*.cc). This is the only file that
// loads build/Release/mimd.node; everything else goes through ./index.ts, which
// checks arguments before they reach C++.
import * as fs from 'node:fs';
import * as path from 'node:path';
import type { BtfTable } from '../domain/btf';

/** Errors thrown or rejected by the addon. */
export interface NativeError extends Error {
  /** errno name (ENOENT, EINVAL, ENOTSUPP for 524) or libbpf's own (LIBBPF_ERRNO__VERIFY). */
  code: string;
  /** positive errno or libbpf error number */
  errno: number;
  /** the libbpf or syscall wrapper that failed, e.g. 'bpf_map_update_elem' */
  syscall: string;
  /** the verifier's log when a program failed to load */
  verifierLog?: string;
}

export interface NativeMapSpec {
  type: number;
  name?: string;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** fd of an inner map template, for ARRAY_OF_MAPS / HASH_OF_MAPS */
  innerMapFd?: number;
  /** BTF the map's key and value are described in (with both type ids) */
  btfFd?: number;
  btfKeyTypeId?: number;
  btfValueTypeId?: number;
}

/** What the kernel reports for a map fd (BPF_OBJ_GET_INFO_BY_FD). */
export interface NativeMapInfo {
  id: number;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  btfId: number;
}

/** A map's definition as declared in a BPF object (before or after load). */
export interface NativeMapDef {
  name: string;
  type: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  /** BTF type ids of the key and value in the object's BTF; 0 when the map has none */
  btfKeyTypeId: number;
  btfValueTypeId: number;
  pinPath: string | null;
  /** .rodata/.data/.bss/.kconfig: made by libbpf, not declared as maps */
  internal: boolean;
  /** the inner template of a map-in-map map, from bpf_map__inner_map() */
  inner: Omit<NativeMapDef, 'inner' | 'pinPath' | 'internal'> | null;
}

export interface NativeProgramDef {
  name: string;
  section: string;
  type: number;
  typeName: string;
  autoload: boolean;
}

export interface NativeLinkInfo {
  id: number;
  type: number;
  typeName: string;
  progId: number;
  /** for xdp and tcx links */
  ifindex: number | null;
}

export interface NativeLookupBatch {
  keys: Buffer;
  values: Buffer;
  count: number;
  /** pass back to continue; null when the map has no more entries */
  cursor: Buffer | null;
}

export interface NativeTestRunResult {
  retval: number;
  data: Buffer;
  /** average duration of one run in nanoseconds, as the kernel reports it */
  duration: number;
}

export declare class NativeMap {
  private constructor();
  static create(spec: NativeMapSpec): Promise<NativeMap>;
  /** On the calling thread: for small maps only. */
  static createSync(spec: NativeMapSpec): NativeMap;
  static openPinned(path: string): NativeMap;
  static fromId(id: number): NativeMap;
  readonly fd: number;
  readonly closed: boolean;
  info(): NativeMapInfo;
  lookup(key: Buffer): Buffer | null;
  update(key: Buffer, value: Buffer, flags: number): Promise<void>;
  /** On the calling thread: maps that are not outer maps only. */
  updateSync(key: Buffer, value: Buffer, flags: number): void;
  delete(key: Buffer): Promise<boolean>;
  nextKey(key: Buffer | null): Buffer | null;
  updateBatch(keys: Buffer, values: Buffer, count: number, flags: number): Promise<number>;
  /** On the calling thread: small batches into maps that are not outer maps only. */
  updateBatchSync(keys: Buffer, values: Buffer, count: number, flags: number): number;
  lookupBatch(cursor: Buffer | null, maxCount: number): Promise<NativeLookupBatch>;
  deleteBatch(keys: Buffer, count: number): Promise<number>;
  freeze(): void;
  pin(path: string): void;
  close(): void;
}

export declare class NativeLink {
  private constructor();
  static openPinned(path: string): NativeLink;
  readonly fd: number;
  readonly closed: boolean;
  info(): NativeLinkInfo;
  pin(path: string): void;
  detach(): void;
  close(): void;
}

/** A program loaded from raw instructions (the feature probes' throwaway programs). */
export interface NativeProgramSpec {
  /** enum bpf_prog_type */
  type: number;
  /** struct bpf_insn[], 8 bytes each; map fds already in place (BPF_PSEUDO_MAP_FD) */
  insns: Buffer;
  license: string;
  /** enum bpf_attach_type, for types that need it at load */
  expectedAttachType?: number;
}

export declare class NativeProgram {
  private constructor();
  static load(spec: NativeProgramSpec): Promise<NativeProgram>;
  readonly fd: number;
  readonly closed: boolean;
  /** BPF_PROG_TEST_RUN, off the event loop */
  testRun(data: Buffer, repeat: number): Promise<{ retval: number; duration: number }>;
  /** BPF_LINK_CREATE; target is an ifindex or an fd, as the attach type reads it */
  linkCreate(target: number, attachType: number, flags: number): NativeLink;
  /** BPF_RAW_TRACEPOINT_OPEN */
  rawTracepointOpen(name: string): NativeLink;
  close(): void;
}

export interface NativeOpenOptions {
  /** object name override (defaults to the file name) */
  name?: string;
  /** root for maps declared with LIBBPF_PIN_BY_NAME */
  pinRoot?: string;
}

export declare class NativeObject {
  private constructor();
  static open(path: string, options?: NativeOpenOptions): NativeObject;
  readonly name: string;
  readonly loaded: boolean;
  readonly closed: boolean;
  maps(): NativeMapDef[];
  programs(): NativeProgramDef[];
  /** the object's BTF, or null when it has none */
  btf(): BtfTable | null;
  /** After load: the fd of the object's BTF in the kernel (owned by the object), or -1. */
  btfFd(): number;
  reuseMapFd(mapName: string, fd: number): void;
  setInnerMapFd(mapName: string, fd: number): void;
  setPinPath(mapName: string, path: string | null): void;
  setAutoload(progName: string, autoload: boolean): void;
  load(): Promise<void>;
  /** a new owned handle (dup) on a loaded map */
  map(mapName: string): NativeMap;
  programId(progName: string): number;
  updateLink(progName: string, linkFd: number): void;
  attachXdp(progName: string, ifindex: number, mode: 'auto' | 'generic' | 'native' | 'offload'): NativeLink;
  attachTc(progName: string, ifindex: number, direction: 'ingress' | 'egress'): NativeLink;
  attachTracepoint(progName: string, category: string, name: string): NativeLink;
  attachRawTracepoint(progName: string, name: string): NativeLink;
  testRun(
    progName: string,
    input: { data: Buffer; ctx?: Buffer; repeat?: number; dataSizeOut?: number },
  ): Promise<NativeTestRunResult>;
  close(): void;
}

export type NativeLogLevel = 'warn' | 'info' | 'debug';

export interface NativeAddon {
  NativeMap: typeof NativeMap;
  NativeLink: typeof NativeLink;
  NativeObject: typeof NativeObject;
  NativeProgram: typeof NativeProgram;
  /** route libbpf's print callback; null restores the default (stderr). */
  setLogger(fn: ((level: NativeLogLevel, message: string) => void) | null): void;
  /** SO_PEERCRED of a connected unix socket */
  peerCredentials(fd: number): { pid: number; uid: number; gid: number };
  /** open(path) and flock(LOCK_EX|LOCK_NB): the fd, which holds the lock until closed or the process ends */
  lockExclusive(path: string, create: boolean): number;
  /** libbpf_num_possible_cpus() */
  possibleCpus(): number;
  libbpfVersion: string;
}

/** Finds build/Release/mimd.node from the package root, wherever this file runs from (src or dist). */
function addonPath(): string {
  if (process.env.MIMD_ADDON) return process.env.MIMD_ADDON;
  let dir = __dirname;
  for (;;) {
    const candidate = path.join(dir, 'build', 'Release', 'mimd.node');
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(candidate)) return candidate;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('mimd: native addon build/Release/mimd.node not found; run `npm run build`');
    dir = parent;
  }
}

// eslint-disable-next-line @typescript-eslint/no-require-imports
export const native: NativeAddon = require(addonPath()) as NativeAddon;
