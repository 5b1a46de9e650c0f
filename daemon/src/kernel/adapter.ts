// The domain's KernelPort (domain/ports.ts) on the real kernel: BpfObject and
// BpfLink from this layer, interface names from sysfs.
import * as fs from 'node:fs';
import type { BtfTable } from '../domain/btf';
import type {
  AttachTarget,
  InnerMapDefinition,
  KernelLink,
  KernelMap,
  LinkInfo,
  KernelObject,
  KernelOuterMap,
  KernelPort,
  MapDefinition,
  MapSpec,
  OpenObjectOptions,
  ProgramDefinition,
} from '../domain/ports';
import { BpfObject, type MapDef } from './object';
import { BpfLink } from './link';
import { mapFlagNames, mapTypeName } from './constants';
import { interfaceIndex } from './netdev';
import { MapAdapter, OuterMapAdapter, adoptMap, createMap } from './map-adapter';
import { BpfMap } from './map';
import { isMapInMap } from './constants';
import type { NativeMapDef, NativeProgramDef } from './native';

// enum bpf_prog_type values the domain's attach rules are written against,
// named as libbpf_bpf_prog_type_str() names them. Numbers rather than the
// addon's string, so the rule does not hang on how the addon spells a type.
const PROGRAM_TYPE_NAMES: Readonly<Record<number, string>> = {
  1: 'socket_filter',
  2: 'kprobe',
  3: 'sched_cls',
  4: 'sched_act',
  5: 'tracepoint',
  6: 'xdp',
  7: 'perf_event',
  17: 'raw_tracepoint',
  24: 'raw_tracepoint_writable',
  26: 'tracing',
  28: 'ext',
  29: 'lsm',
};

function programType(def: NativeProgramDef): string {
  return PROGRAM_TYPE_NAMES[def.type] ?? def.typeName.toLowerCase().replace(/^bpf_prog_type_/, '');
}

function innerDefinition(def: Omit<NativeMapDef, 'inner' | 'pinPath' | 'internal'>): InnerMapDefinition {
  return {
    name: def.name,
    type: mapTypeName(def.type),
    keySize: def.keySize,
    valueSize: def.valueSize,
    maxEntries: def.maxEntries,
    flags: mapFlagNames(def.flags),
    btfKeyTypeId: def.btfKeyTypeId,
    btfValueTypeId: def.btfValueTypeId,
  };
}

function mapDefinition(def: MapDef): MapDefinition {
  return { ...innerDefinition(def), internal: def.internal, inner: def.inner ? innerDefinition(def.inner) : null };
}

class LinkAdapter implements KernelLink {
  readonly id: number;

  constructor(readonly link: BpfLink) {
    this.id = link.info().id;
  }

  info(): LinkInfo {
    const info = this.link.info();
    return { id: info.id, programId: info.progId, type: info.typeName, ifindex: info.ifindex };
  }

  pin(path: string): void {
    this.link.pin(path);
  }

  close(): void {
    this.link.close();
  }
}

function adoptLink(link: BpfLink): LinkAdapter {
  try {
    return new LinkAdapter(link);
  } catch (err) {
    // The link is ours alone until returned: closing an unpinned one detaches the program again.
    link.close();
    throw err;
  }
}

class ObjectAdapter implements KernelObject {
  constructor(private readonly object: BpfObject) {}

  maps(): MapDefinition[] {
    return this.object.maps().map(mapDefinition);
  }

  programs(): ProgramDefinition[] {
    return this.object.programs().map((p) => ({ name: p.name, section: p.section, type: programType(p) }));
  }

  btf(): BtfTable | null {
    return this.object.btf();
  }

  async load(): Promise<void> {
    await this.object.load();
  }

  reuseMap(name: string, map: KernelMap): void {
    if (!(map instanceof MapAdapter)) throw new TypeError('map: not a map of this kernel layer');
    this.object.reuseMap(name, map.bpfMap);
  }

  clearPinPath(name: string): void {
    this.object.setPinPath(name, null);
  }

  updateLink(program: string, link: KernelLink): void {
    if (!(link instanceof LinkAdapter)) throw new TypeError('link: not a link of this kernel layer');
    this.object.updateLink(program, link.link);
  }

  outerMap(name: string): KernelOuterMap {
    const outer = adoptMap(this.object.map(name), OuterMapAdapter);
    const inner = this.object.maps().find((m) => m.name === name)?.inner;
    const fd = this.object.btfFd();
    if (inner && fd >= 0 && (inner.btfKeyTypeId !== 0 || inner.btfValueTypeId !== 0)) {
      outer.innerBtf = { fd, keyTypeId: inner.btfKeyTypeId, valueTypeId: inner.btfValueTypeId };
    }
    return outer;
  }

  attach(program: string, target: AttachTarget): KernelLink {
    return adoptLink(this.attachLink(program, target));
  }

  private attachLink(program: string, target: AttachTarget): BpfLink {
    switch (target.type) {
      case 'xdp':
        return this.object.attachXdp(program, target.ifindex, target.mode);
      case 'tc':
        return this.object.attachTc(program, target.ifindex, target.direction);
      case 'tracepoint':
        return this.object.attachTracepoint(program, target.category, target.name);
      case 'raw_tracepoint':
        return this.object.attachRawTracepoint(program, target.name);
    }
  }

  close(): void {
    this.object.close();
  }
}

export class KernelAdapter implements KernelPort {
  openObject(path: string, options: OpenObjectOptions): KernelObject {
    return new ObjectAdapter(BpfObject.open(path, { name: options.name, pinRoot: options.pinRoot }));
  }

  interfaceIndex(name: string): number {
    return interfaceIndex(name);
  }

  openPinnedOuterMap(path: string): KernelOuterMap {
    const map = BpfMap.openPinned(path);
    if (!isMapInMap(map.type)) {
      map.close();
      throw Object.assign(new Error(`${path} is not an outer map (it is a ${mapTypeName(map.type)} map)`), { code: 'EINVAL' });
    }
    return adoptMap(map, OuterMapAdapter);
  }

  openPinnedLink(path: string): KernelLink {
    return adoptLink(BpfLink.openPinned(path));
  }

  openPinnedMap(path: string): KernelMap {
    return adoptMap(BpfMap.openPinned(path), MapAdapter);
  }

  listPins(path: string): { name: string; directory: boolean }[] {
    let entries: fs.Dirent[];
    try {
      entries = fs.readdirSync(path, { withFileTypes: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    return entries.map((e) => ({ name: e.name, directory: e.isDirectory() })).sort((a, b) => a.name.localeCompare(b.name));
  }

  renamePin(from: string, to: string): void {
    fs.renameSync(from, to);
  }

  createMap(spec: MapSpec): Promise<KernelMap> {
    return createMap(spec);
  }

  makePinDir(path: string): void {
    // 0700: since 5.19 only map creation and program load check capabilities,
    // so file permissions on pins are the access control.
    fs.mkdirSync(path, { recursive: true, mode: 0o700 });
    // An existing directory keeps its mode through mkdir: narrow it.
    fs.chmodSync(path, 0o700);
  }

  unpin(path: string): void {
    fs.rmSync(path, { force: true });
  }

  removeEmptyPinDir(path: string): void {
    try {
      fs.rmdirSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTEMPTY') throw err;
    }
  }

  removePinTree(path: string): void {
    fs.rmSync(path, { recursive: true, force: true });
  }

  pinExists(path: string): boolean {
    return fs.existsSync(path);
  }
}
