// BpfObject: a BPF ELF object opened with libbpf, configured before load (reuse
// pinned maps, inner map templates, pin paths) and then loaded into the kernel.
import { native, type NativeMapDef, type NativeObject, type NativeProgramDef, type NativeTestRunResult } from './native';
import type { BtfTable } from '../domain/btf';
import { BpfMap } from './map';
import { BpfLink } from './link';
import { assertNonEmptyString, assertOneOf, assertUint } from './check';
import { mapFlagNames, mapTypeName } from './constants';

export type XdpMode = 'auto' | 'generic' | 'native' | 'offload';
export const XDP_MODES: readonly XdpMode[] = ['auto', 'generic', 'native', 'offload'];
export type TcDirection = 'ingress' | 'egress';
export const TC_DIRECTIONS: readonly TcDirection[] = ['ingress', 'egress'];

export interface MapDef extends NativeMapDef {
  typeName: string;
  flagNames: string[];
}

export interface OpenOptions {
  name?: string;
  pinRoot?: string;
}

export class BpfObject {
  private constructor(private readonly handle: NativeObject) {}

  /** Opens (parses) an object file; nothing reaches the kernel until load(). */
  static open(path: string, options: OpenOptions = {}): BpfObject {
    assertNonEmptyString('path', path);
    if (options.name !== undefined) assertNonEmptyString('name', options.name);
    if (options.pinRoot !== undefined) assertNonEmptyString('pinRoot', options.pinRoot);
    return new BpfObject(native.NativeObject.open(path, options));
  }

  get name(): string {
    return this.handle.name;
  }

  get loaded(): boolean {
    return this.handle.loaded;
  }

  get closed(): boolean {
    return this.handle.closed;
  }

  maps(): MapDef[] {
    return this.handle.maps().map((def) => ({
      ...def,
      typeName: mapTypeName(def.type),
      flagNames: mapFlagNames(def.flags),
    }));
  }

  mapDef(mapName: string): MapDef {
    const def = this.maps().find((m) => m.name === mapName);
    if (!def) throw new TypeError(`map: no map named ${JSON.stringify(mapName)} in object ${this.name}`);
    return def;
  }

  programs(): NativeProgramDef[] {
    return this.handle.programs();
  }

  /** The object's BTF type table (index = type id), or null when the object has no BTF. */
  btf(): BtfTable | null {
    return this.handle.btf();
  }

  /** After load: the fd of the object's BTF in the kernel, valid until close(); -1 without BTF. */
  btfFd(): number {
    return this.handle.btfFd();
  }

  /** Before load: use an existing map (e.g. a pinned outer map) instead of creating one. */
  reuseMap(mapName: string, map: BpfMap): void {
    assertNonEmptyString('mapName', mapName);
    this.handle.reuseMapFd(mapName, map.fd);
  }

  /** Before load: the inner template the kernel gets for a map-in-map map. */
  setInnerMap(mapName: string, inner: BpfMap): void {
    assertNonEmptyString('mapName', mapName);
    this.handle.setInnerMapFd(mapName, inner.fd);
  }

  /** Before load: libbpf pins the map there on load (or reuses what is pinned there). */
  setPinPath(mapName: string, path: string | null): void {
    assertNonEmptyString('mapName', mapName);
    if (path !== null) assertNonEmptyString('path', path);
    this.handle.setPinPath(mapName, path);
  }

  setAutoload(progName: string, autoload: boolean): void {
    assertNonEmptyString('progName', progName);
    this.handle.setAutoload(progName, autoload);
  }

  /** Loads maps and programs into the kernel (verification runs off the event loop). */
  async load(): Promise<void> {
    await this.handle.load();
  }

  /** A new owned handle on a loaded map; closing it does not affect the object. */
  map(mapName: string): BpfMap {
    assertNonEmptyString('mapName', mapName);
    return BpfMap.adopt(this.handle.map(mapName));
  }

  programId(progName: string): number {
    assertNonEmptyString('progName', progName);
    return this.handle.programId(progName);
  }

  /** Replaces the program of an existing link (bpf_link_update): the hook is never left empty. */
  updateLink(progName: string, link: BpfLink): void {
    assertNonEmptyString('progName', progName);
    this.handle.updateLink(progName, link.fd);
  }

  attachXdp(progName: string, ifindex: number, mode: XdpMode = 'auto'): BpfLink {
    assertNonEmptyString('progName', progName);
    assertUint('ifindex', ifindex);
    assertOneOf('mode', mode, XDP_MODES);
    return BpfLink.adopt(this.handle.attachXdp(progName, ifindex, mode));
  }

  attachTc(progName: string, ifindex: number, direction: TcDirection): BpfLink {
    assertNonEmptyString('progName', progName);
    assertUint('ifindex', ifindex);
    assertOneOf('direction', direction, TC_DIRECTIONS);
    return BpfLink.adopt(this.handle.attachTc(progName, ifindex, direction));
  }

  attachTracepoint(progName: string, category: string, name: string): BpfLink {
    assertNonEmptyString('progName', progName);
    assertNonEmptyString('category', category);
    assertNonEmptyString('name', name);
    return BpfLink.adopt(this.handle.attachTracepoint(progName, category, name));
  }

  attachRawTracepoint(progName: string, name: string): BpfLink {
    assertNonEmptyString('progName', progName);
    assertNonEmptyString('name', name);
    return BpfLink.adopt(this.handle.attachRawTracepoint(progName, name));
  }

  /**
   * BPF_PROG_TEST_RUN: runs the program on `data` in the kernel, without
   * attaching it. For XDP, `ingressIfindex` sets xdp_md.ingress_ifindex (the
   * interface must exist; the kernel uses lo when none is given).
   */
  async testRun(progName: string, data: Buffer, options: { repeat?: number; ingressIfindex?: number } = {}): Promise<NativeTestRunResult> {
    assertNonEmptyString('progName', progName);
    if (!Buffer.isBuffer(data)) throw new TypeError('data: expected a Buffer');
    const repeat = options.repeat ?? 1;
    assertUint('repeat', repeat);
    let ctx: Buffer | undefined;
    if (options.ingressIfindex !== undefined) {
      assertUint('ingressIfindex', options.ingressIfindex);
      ctx = xdpContext(data.length, options.ingressIfindex);
    }
    return this.handle.testRun(progName, { data, ctx, repeat });
  }

  /** Idempotent. Maps and links handed out stay valid: they own their own fds. */
  close(): void {
    this.handle.close();
  }
}

/** struct xdp_md as BPF_PROG_TEST_RUN takes it: data_end is the packet length, the rest zero. */
function xdpContext(length: number, ingressIfindex: number): Buffer {
  const ctx = Buffer.alloc(24); // data, data_end, data_meta, ingress_ifindex, rx_queue_index, egress_ifindex
  ctx.writeUInt32LE(length, 4);
  ctx.writeUInt32LE(ingressIfindex, 12);
  return ctx;
}
