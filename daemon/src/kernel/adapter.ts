// The domain's KernelPort (domain/ports.ts) on the real kernel: BpfObject and
// BpfLink from this layer, interface names from sysfs.
import * as fs from 'node:fs';
import type { BtfTable } from '../domain/btf';
import type {
  AttachTarget,
  InnerMapDefinition,
  KernelLink,
  KernelMap,
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
import { OuterMapAdapter, createMap } from './map-adapter';
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
  constructor(
    private readonly link: BpfLink,
    readonly id: number,
    readonly programId: number,
  ) {}

  close(): void {
    this.link.close();
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

  outerMap(name: string): KernelOuterMap {
    const map = this.object.map(name);
    try {
      return new OuterMapAdapter(map);
    } catch (err) {
      map.close();
      throw err;
    }
  }

  attach(program: string, target: AttachTarget): KernelLink {
    const link = this.attachLink(program, target);
    try {
      const info = link.info();
      return new LinkAdapter(link, info.id, info.progId);
    } catch (err) {
      // The link is ours alone until returned: closing it detaches the program again.
      link.close();
      throw err;
    }
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

  createMap(spec: MapSpec): Promise<KernelMap> {
    return createMap(spec);
  }

  makePinDir(path: string): void {
    // 0700: file permissions on pins are the access control (KERNEL-NOTES).
    fs.mkdirSync(path, { recursive: true, mode: 0o700 });
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
