// HostService against a fake kernel: the order of start and stop, all-or-nothing
// start, errors that name the config key they are about, and what survives a
// restart: pinned outer maps (checked against their recorded inner template)
// and pinned links (updated in place).
import t from 'tap';
import pino from 'pino';
import { HostService, isHostError, purgeOwned, type HostError } from '../../daemon/src/domain/host';
import type {
  AttachTarget,
  KernelLink,
  KernelMap,
  KernelObject,
  KernelOuterMap,
  KernelPort,
  LinkInfo,
  MapDefinition,
  MapShape,
  MapSpec,
  OpenObjectOptions,
  ProgramDefinition,
} from '../../daemon/src/domain/ports';
import type { OuterMapRecord, SlotRecord, StateStore } from '../../daemon/src/domain/state';
import type { ManagedMapSource } from '../../daemon/src/domain/slots-service';
import type { ObjectConfig } from '../../daemon/src/config/schema';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const PIN_ROOT = '/sys/fs/bpf/mimd-test';
const FW = `${PIN_ROOT}/firewall`;
const TOOLS = `${PIN_ROOT}/tools`;
const XDP_PIN = `${FW}/links/xdp-generic-lo`;
const TC_PIN = `${TOOLS}/links/tc-egress-eth0`;
const TP_PIN = `${TOOLS}/links/tracepoint-syscalls-sys_enter_getpid`;

const BLOCKLIST: MapDefinition = {
  name: 'blocklist',
  type: 'ARRAY_OF_MAPS',
  keySize: 4,
  valueSize: 4,
  maxEntries: 4,
  flags: [],
  btfKeyTypeId: 0,
  btfValueTypeId: 0,
  internal: false,
  inner: { name: 'blocklist.inner', type: 'HASH', keySize: 4, valueSize: 1, maxEntries: 65536, flags: [], btfKeyTypeId: 0, btfValueTypeId: 0 },
};
const COUNTERS: MapDefinition = { ...BLOCKLIST, name: 'counters', type: 'PERCPU_ARRAY', valueSize: 8, inner: null };
const POLICY: MapDefinition = {
  ...BLOCKLIST,
  name: 'policy',
  type: 'HASH_OF_MAPS',
  maxEntries: 64,
  inner: { name: 'policy.inner', type: 'LPM_TRIE', keySize: 8, valueSize: 1, maxEntries: 1024, flags: ['NO_PREALLOC'], btfKeyTypeId: 0, btfValueTypeId: 0 },
};

const XDP: ProgramDefinition = { name: 'xdp_firewall', section: 'xdp', type: 'xdp' };
const TC: ProgramDefinition = { name: 'tc_count', section: 'tc', type: 'sched_cls' };
const TP: ProgramDefinition = { name: 'on_getpid', section: 'tracepoint/syscalls/sys_enter_getpid', type: 'tracepoint' };

interface FakeFile {
  programs: ProgramDefinition[];
  maps: MapDefinition[];
}

const MAP_IN_MAP = new Set(['ARRAY_OF_MAPS', 'HASH_OF_MAPS']);

interface MapState {
  id: number;
  shape: MapShape;
}

interface LinkState {
  id: number;
  programId: number;
  type: string;
  ifindex: number | null;
  /** open handles plus pins: the program stays attached while there is one */
  refs: number;
}

type Pin = { kind: 'dir' } | { kind: 'map'; map: MapState } | { kind: 'link'; link: LinkState };

function errnoError(code: string, what: string): Error {
  return Object.assign(new Error(`${what}: ${code}`), { code });
}

function shapeOf(def: MapShape): MapShape {
  return { type: def.type, keySize: def.keySize, valueSize: def.valueSize, maxEntries: def.maxEntries, flags: [...def.flags] };
}

function dirname(p: string): string {
  return p.slice(0, p.lastIndexOf('/')) || '/';
}

/**
 * The kernel as the host service sees it: objects, links that stay attached
 * while a handle or a pin holds them, and a bpffs of pins in memory with the
 * rules of the real one (a pin needs its directory and an empty path).
 * Records every call as one line; fails the calls named in `fail`.
 */
class FakeKernel implements KernelPort {
  readonly calls: string[] = [];
  readonly fail = new Set<string>();
  readonly pendingLoads = new Map<string, () => void>();
  /** loads of these objects wait until the test calls pendingLoads.get(name)() */
  readonly holdLoad = new Set<string>();
  readonly pins = new Map<string, Pin>([
    ['/', { kind: 'dir' }],
    ['/sys', { kind: 'dir' }],
    ['/sys/fs', { kind: 'dir' }],
    ['/sys/fs/bpf', { kind: 'dir' }],
  ]);
  readonly links = new Map<number, LinkState>();
  readonly mapStates = new Map<number, MapState>();
  /** open handles, one line each: 'link 100', 'map 3' */
  readonly handles: string[] = [];
  readonly state = new FakeState(this);
  private nextLinkId = 100;
  private nextMapId = 1;
  private nextProgramId = 7;

  constructor(
    readonly files: Record<string, FakeFile>,
    readonly interfaces: Record<string, number> = { lo: 1, eth0: 2 },
  ) {}

  record(call: string): void {
    this.calls.push(call);
    if (this.fail.has(call)) throw Object.assign(new Error(`${call}: Device or resource busy`), { code: 'EBUSY', errno: 16, syscall: 'fake' });
  }

  /** The calls that start with one of the words. */
  only(...words: string[]): string[] {
    return this.calls.filter((c) => words.some((w) => c === w || c.startsWith(`${w} `)));
  }

  /** Object and link lifecycle: what the old tests of start and stop are about. */
  lifecycle(): string[] {
    return this.only('open', 'load', 'attach', 'update', 'close');
  }

  /** Every pin under the pin root: path -> what it holds. */
  snapshot(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const [p, pin] of [...this.pins].sort(([a], [b]) => a.localeCompare(b))) {
      if (p !== PIN_ROOT && !p.startsWith(`${PIN_ROOT}/`)) continue;
      out[p] = pin.kind === 'dir' ? 'dir' : pin.kind === 'map' ? `map ${pin.map.id}` : `link ${pin.link.id}`;
    }
    return out;
  }

  /** Ids of the links that still attach their program. */
  attached(): number[] {
    return [...this.links.values()].filter((l) => l.refs > 0).map((l) => l.id);
  }

  pinnedMapId(p: string): number | null {
    const pin = this.pins.get(p);
    return pin?.kind === 'map' ? pin.map.id : null;
  }

  newMapState(shape: MapShape): MapState {
    const state = { id: this.nextMapId++, shape: shapeOf(shape) };
    this.mapStates.set(state.id, state);
    return state;
  }

  newLink(programId: number, target: AttachTarget): LinkState {
    const type = { xdp: 'xdp', tc: 'tcx', tracepoint: 'perf_event', raw_tracepoint: 'raw_tracepoint' }[target.type];
    const link = { id: this.nextLinkId++, programId, type, ifindex: 'ifindex' in target ? target.ifindex : null, refs: 0 };
    this.links.set(link.id, link);
    return link;
  }

  programId(): number {
    return this.nextProgramId++;
  }

  private dropHandle(line: string): void {
    const i = this.handles.indexOf(line);
    if (i >= 0) this.handles.splice(i, 1);
  }

  private drop(pin: Pin | undefined): void {
    if (pin?.kind === 'link') pin.link.refs -= 1;
  }

  addPin(p: string, pin: Pin): void {
    if (this.pins.get(dirname(p))?.kind !== 'dir') throw errnoError('ENOENT', `pin ${p}`);
    if (this.pins.has(p)) throw errnoError('EEXIST', `pin ${p}`);
    this.pins.set(p, pin);
    if (pin.kind === 'link') pin.link.refs += 1;
  }

  linkHandle(link: LinkState): KernelLink {
    link.refs += 1;
    this.handles.push(`link ${link.id}`);
    let closed = false;
    const kernel = this;
    return {
      id: link.id,
      info(): LinkInfo {
        if (closed) throw new Error('link used after close');
        return { id: link.id, programId: link.programId, type: link.type, ifindex: link.ifindex };
      },
      pin(p: string) {
        if (closed) throw new Error('link used after close');
        kernel.record(`pin link ${link.id} ${p}`);
        kernel.addPin(p, { kind: 'link', link });
      },
      close() {
        if (closed) return;
        closed = true;
        kernel.record(`close link ${link.id}`);
        kernel.dropHandle(`link ${link.id}`);
        link.refs -= 1;
      },
    };
  }

  mapHandle(map: MapState): KernelOuterMap {
    this.handles.push(`map ${map.id}`);
    let closed = false;
    const kernel = this;
    const notUsed = (): never => {
      throw new Error('the host service does not read or write outer maps');
    };
    return {
      id: map.id,
      keySize: map.shape.keySize,
      valueSize: map.shape.valueSize,
      definition: () => shapeOf(map.shape),
      pin(p: string) {
        if (closed) throw new Error('map used after close');
        kernel.record(`pin map ${map.id} ${p}`);
        kernel.addPin(p, { kind: 'map', map });
      },
      close() {
        if (closed) return;
        closed = true;
        kernel.dropHandle(`map ${map.id}`);
      },
      lookup: notUsed,
      update: notUsed,
      delete: notUsed,
      nextKey: notUsed,
      writeEntries: notUsed,
      readAll: notUsed,
      setInner: notUsed,
      setInnerBatch: notUsed,
      innerId: notUsed,
    };
  }

  // ---- ObjectLoader

  openObject(path: string, options: OpenObjectOptions): KernelObject {
    this.record(`open ${options.name}`);
    const file = this.files[path];
    if (!file) throw new Error(`no file ${path}`);
    return new FakeObject(this, options.name, file);
  }

  interfaceIndex(name: string): number {
    const ifindex = this.interfaces[name];
    if (ifindex === undefined) throw new Error(`interface ${JSON.stringify(name)} not found`);
    return ifindex;
  }

  openPinnedOuterMap(p: string): KernelOuterMap {
    const pin = this.pins.get(p);
    if (!pin) throw errnoError('ENOENT', `open ${p}`);
    if (pin.kind !== 'map' || !MAP_IN_MAP.has(pin.map.shape.type)) throw errnoError('EINVAL', `${p} is not an outer map`);
    return this.mapHandle(pin.map);
  }

  openPinnedLink(p: string): KernelLink {
    const pin = this.pins.get(p);
    if (!pin) throw errnoError('ENOENT', `open ${p}`);
    if (pin.kind !== 'link') throw errnoError('EINVAL', `${p} is not a link`);
    return this.linkHandle(pin.link);
  }

  // ---- MapStore

  createMap(_spec: MapSpec): Promise<KernelMap> {
    throw new Error('the host service makes no inner maps');
  }

  openPinnedMap(p: string): KernelMap {
    const pin = this.pins.get(p);
    if (pin?.kind !== 'map') throw errnoError('ENOENT', `open ${p}`);
    return this.mapHandle(pin.map);
  }

  makePinDir(p: string): void {
    const parts = p.split('/').filter(Boolean);
    for (let i = 1; i <= parts.length; i++) {
      const dir = `/${parts.slice(0, i).join('/')}`;
      const pin = this.pins.get(dir);
      if (!pin) this.pins.set(dir, { kind: 'dir' });
      else if (pin.kind !== 'dir') throw errnoError('ENOTDIR', `mkdir ${dir}`);
    }
  }

  unpin(p: string): void {
    this.record(`unpin ${p}`);
    const pin = this.pins.get(p);
    if (!pin) return;
    if (pin.kind === 'dir') throw errnoError('EISDIR', `unpin ${p}`);
    this.pins.delete(p);
    this.drop(pin);
  }

  removeEmptyPinDir(p: string): void {
    if (this.pins.get(p)?.kind !== 'dir') return;
    if (this.listPins(p).length === 0) this.pins.delete(p);
  }

  removePinTree(p: string): void {
    this.record(`rmtree ${p}`);
    for (const [q, pin] of [...this.pins]) {
      if (q !== p && !q.startsWith(`${p}/`)) continue;
      this.pins.delete(q);
      this.drop(pin);
    }
  }

  pinExists(p: string): boolean {
    return this.pins.has(p);
  }

  listPins(p: string): { name: string; directory: boolean }[] {
    if (this.pins.get(p)?.kind !== 'dir') return [];
    return [...this.pins]
      .filter(([q]) => q !== p && dirname(q) === p)
      .map(([q, pin]) => ({ name: q.slice(p.length + 1), directory: pin.kind === 'dir' }))
      .sort((a, b) => a.name.localeCompare(b.name));
  }

  renamePin(from: string, to: string): void {
    this.record(`rename ${from} ${to}`);
    const pin = this.pins.get(from);
    if (!pin) throw errnoError('ENOENT', `rename ${from}`);
    if (this.pins.get(dirname(to))?.kind !== 'dir') throw errnoError('ENOENT', `rename to ${to}`);
    const replaced = this.pins.get(to);
    if (replaced?.kind === 'dir') throw errnoError('EISDIR', `rename to ${to}`);
    this.pins.delete(from);
    this.pins.set(to, pin);
    this.drop(replaced);
  }
}

function targetText(target: AttachTarget): string {
  switch (target.type) {
    case 'xdp':
      return `xdp ${target.ifindex} ${target.mode}`;
    case 'tc':
      return `tc ${target.ifindex} ${target.direction}`;
    case 'tracepoint':
      return `tracepoint ${target.category}:${target.name}`;
    case 'raw_tracepoint':
      return `raw_tracepoint ${target.name}`;
  }
}

class FakeObject implements KernelObject {
  closed = false;
  private loaded = false;
  private readonly reused = new Map<string, MapState>();
  private readonly loadedMaps = new Map<string, MapState>();
  private readonly programIds = new Map<string, number>();

  constructor(
    private readonly kernel: FakeKernel,
    private readonly name: string,
    private readonly file: FakeFile,
  ) {
    // The object's definitions as they were when it was opened: a test may
    // change the file (a new build) for the next start.
    this.file = structuredClone(file);
  }
  maps(): MapDefinition[] {
    return structuredClone(this.file.maps);
  }
  btf(): null {
    return null;
  }
  programs(): ProgramDefinition[] {
    return structuredClone(this.file.programs);
  }
  outerMap(name: string): KernelOuterMap {
    const map = this.loadedMaps.get(name);
    if (!map || !MAP_IN_MAP.has(map.shape.type)) throw new Error(`no loaded map-in-map map ${name}`);
    return this.kernel.mapHandle(map);
  }
  reuseMap(name: string, map: KernelMap): void {
    this.kernel.record(`reuse ${this.name}/${name} map ${map.id}`);
    if (this.loaded) throw new Error('reuseMap after load');
    const state = this.kernel.mapStates.get(map.id);
    if (!state) throw new Error(`no map ${map.id}`);
    this.reused.set(name, state);
  }
  clearPinPath(name: string): void {
    this.kernel.record(`clearPinPath ${this.name}/${name}`);
    if (this.loaded) throw new Error('clearPinPath after load');
  }
  async load(): Promise<void> {
    this.kernel.record(`load ${this.name}`);
    if (this.kernel.holdLoad.has(this.name)) {
      await new Promise<void>((resolve) => this.kernel.pendingLoads.set(this.name, resolve));
    }
    for (const def of this.file.maps) {
      const reused = this.reused.get(def.name);
      // libbpf's own reuse check compares the outer definition (not the inner template).
      if (reused && JSON.stringify(reused.shape) !== JSON.stringify(shapeOf(def))) throw errnoError('EINVAL', `reuse ${def.name}: incompatible`);
      this.loadedMaps.set(def.name, reused ?? this.kernel.newMapState(def));
    }
    for (const program of this.file.programs) this.programIds.set(program.name, this.kernel.programId());
    this.loaded = true;
  }
  attach(program: string, target: AttachTarget): KernelLink {
    this.kernel.record(`attach ${this.name}/${program} ${targetText(target)}`);
    const programId = this.programIds.get(program);
    if (programId === undefined) throw new Error(`attach ${program}: not loaded`);
    return this.kernel.linkHandle(this.kernel.newLink(programId, target));
  }
  updateLink(program: string, link: KernelLink): void {
    this.kernel.record(`update link ${link.id} ${this.name}/${program}`);
    const programId = this.programIds.get(program);
    const state = this.kernel.links.get(link.id);
    if (programId === undefined || !state) throw new Error(`update ${program}: not loaded`);
    state.programId = programId;
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kernel.record(`close ${this.name}`);
  }
}

/** Records in memory; writes and removals are calls in the kernel's log, so their order with pins shows. */
class FakeState implements StateStore {
  readonly outer = new Map<string, OuterMapRecord>();
  readonly slots = new Map<string, SlotRecord[]>();
  constructor(private readonly kernel: FakeKernel) {}
  readOuter(object: string, map: string): OuterMapRecord | null {
    return structuredClone(this.outer.get(`${object}/${map}`) ?? null);
  }
  writeOuter(object: string, map: string, record: OuterMapRecord): void {
    this.kernel.record(`writeOuter ${object}/${map}`);
    this.outer.set(`${object}/${map}`, structuredClone(record));
  }
  readSlots(object: string, map: string): SlotRecord[] {
    return structuredClone(this.slots.get(`${object}/${map}`) ?? []);
  }
  async writeSlot(object: string, map: string, record: SlotRecord): Promise<void> {
    const list = (this.slots.get(`${object}/${map}`) ?? []).filter((r) => r.key !== record.key);
    this.slots.set(`${object}/${map}`, [...list, structuredClone(record)]);
  }
  async removeSlot(object: string, map: string, key: string): Promise<void> {
    this.slots.set(`${object}/${map}`, (this.slots.get(`${object}/${map}`) ?? []).filter((r) => r.key !== key));
  }
  removeMap(object: string, map: string): void {
    this.kernel.record(`removeMap ${object}/${map}`);
    this.outer.delete(`${object}/${map}`);
    this.slots.delete(`${object}/${map}`);
  }
  removeObject(object: string): void {
    this.kernel.record(`removeObject ${object}`);
    for (const key of [...this.outer.keys(), ...this.slots.keys()]) {
      if (key.startsWith(`${object}/`)) {
        this.outer.delete(key);
        this.slots.delete(key);
      }
    }
  }
  keys(): string[] {
    return [...this.outer.keys()].sort();
  }
}

function files(): Record<string, FakeFile> {
  return {
    '/o/firewall.bpf.o': { programs: [XDP], maps: [BLOCKLIST, COUNTERS, POLICY] },
    '/o/tools.bpf.o': { programs: [TC, TP], maps: [COUNTERS] },
  };
}

function objects(): ObjectConfig[] {
  return [
    {
      name: 'firewall',
      path: '/o/firewall.bpf.o',
      attach: [{ program: 'xdp_firewall', type: 'xdp', interface: 'lo', mode: 'generic' }],
      maps: {},
      onIncompatiblePin: 'refuse',
    },
    {
      name: 'tools',
      path: '/o/tools.bpf.o',
      attach: [
        { program: 'tc_count', type: 'tc', interface: 'eth0', direction: 'egress' },
        { program: 'on_getpid', type: 'tracepoint', tracepoint: 'syscalls/sys_enter_getpid' },
      ],
      maps: {},
      onIncompatiblePin: 'refuse',
    },
  ];
}

function setup(t: Test, config = objects(), kernel = new FakeKernel(files())) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const host = new HostService({ objects: config, pinRoot: PIN_ROOT, kernel, state: kernel.state, logger });
  t.teardown(() => host.close());
  return { host, kernel, lines };
}

/** An earlier run that started and stopped with `keep`: its pins and records stay. The log starts empty after it. */
async function earlierRun(t: Test, kernel: FakeKernel, config = objects()): Promise<void> {
  const { host } = setup(t, config, kernel);
  await host.start();
  await host.close('keep');
  kernel.calls.length = 0;
}

async function startError(host: HostService, beforeAttach?: () => Promise<void>): Promise<HostError> {
  try {
    await host.start(beforeAttach);
  } catch (err) {
    if (isHostError(err)) return err;
    throw err;
  }
  throw new Error('expected start() to fail');
}

/** A new build of the firewall whose blocklist inner maps have 4-byte values. */
function widerBlocklistValues(kernel: FakeKernel): void {
  const file = kernel.files['/o/firewall.bpf.o']!;
  file.maps = file.maps.map((m) => (m.name === 'blocklist' ? { ...m, inner: { ...m.inner!, valueSize: 4 } } : m));
}

// ---------------------------------------------------------------------------
// Start and stop

t.test('start opens and checks everything, then loads, then attaches in config order', async (t) => {
  const { host, kernel } = setup(t);
  await host.start();
  t.same(kernel.lifecycle(), [
    'open firewall',
    'open tools',
    'load firewall',
    'load tools',
    'attach firewall/xdp_firewall xdp 1 generic',
    'attach tools/tc_count tc 2 egress',
    'attach tools/on_getpid tracepoint syscalls:sys_enter_getpid',
  ]);
  t.equal(host.running, true);
  t.same(host.summary(), { objects: ['firewall', 'tools'], maps: 4, attachments: 3 });

  const firewall = host.object('firewall');
  t.same(firewall, {
    name: 'firewall',
    path: '/o/firewall.bpf.o',
    maps: [BLOCKLIST, COUNTERS, POLICY],
    programs: [XDP],
    attachments: [
      {
        program: 'xdp_firewall',
        type: 'xdp',
        interface: 'lo',
        mode: 'generic',
        field: 'objects[0].attach[0]',
        ifindex: 1,
        linkId: 100,
        programId: 7,
      },
    ],
  });
  t.equal(host.objects().length, 2);
  t.same(host.objects()[1]?.attachments.map((a) => a.linkId), [101, 102]);
  t.equal(host.object('nope'), undefined);

  // Views are copies: the API cannot change the service's state through them.
  firewall!.attachments.length = 0;
  t.equal(host.object('firewall')?.attachments.length, 1);
});

t.test('a fresh start pins outer maps (record first) and links under <pinRoot>/<object>/', async (t) => {
  const { host, kernel } = setup(t);
  await host.start();
  t.same(kernel.snapshot(), {
    [PIN_ROOT]: 'dir',
    [FW]: 'dir',
    [`${FW}/links`]: 'dir',
    [XDP_PIN]: 'link 100',
    [`${FW}/maps`]: 'dir',
    [`${FW}/maps/blocklist`]: 'map 1',
    [`${FW}/maps/policy`]: 'map 3',
    [TOOLS]: 'dir',
    [`${TOOLS}/links`]: 'dir',
    // made before load for maps libbpf pins by name (tools has none)
    [`${TOOLS}/maps`]: 'dir',
    [TC_PIN]: 'link 101',
    [TP_PIN]: 'link 102',
  }, 'only map-in-map maps are pinned by mimd (counters is not)');
  t.same(kernel.only('clearPinPath'), ['clearPinPath firewall/blocklist', 'clearPinPath firewall/policy'], 'libbpf is kept off the outer maps\' pins');
  t.same(kernel.only('reuse'), [], 'nothing to reuse');

  const order = kernel.only('writeOuter', 'pin map');
  t.same(order, [
    'writeOuter firewall/blocklist',
    `pin map 1 ${FW}/maps/blocklist`,
    'writeOuter firewall/policy',
    `pin map 3 ${FW}/maps/policy`,
  ], 'each record is written before its pin');
  t.ok(kernel.calls.indexOf(`pin map 3 ${FW}/maps/policy`) < kernel.calls.indexOf('load tools'), 'an object\'s maps are pinned once it is loaded');

  const record = kernel.state.readOuter('firewall', 'blocklist');
  t.same(record, {
    outer: { type: 'ARRAY_OF_MAPS', keySize: 4, valueSize: 4, maxEntries: 4, flags: [] },
    innerTemplate: { type: 'HASH', keySize: 4, valueSize: 1, maxEntries: 65536, flags: [] },
    mapId: 1,
    createdAt: record?.createdAt,
  });
  t.match(record?.createdAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  t.same(kernel.state.readOuter('firewall', 'policy')?.innerTemplate, { type: 'LPM_TRIE', keySize: 8, valueSize: 1, maxEntries: 1024, flags: ['NO_PREALLOC'] });

  t.same(kernel.only('pin link'), [`pin link 100 ${XDP_PIN}`, `pin link 101 ${TC_PIN}`, `pin link 102 ${TP_PIN}`]);
  t.same(kernel.handles.filter((h) => h.startsWith('map')), [], 'the handles used to pin outer maps are closed');
});

t.test('a record that cannot be written fails the start before the map is pinned', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.fail.add('writeOuter firewall/policy');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_START_FAILED');
  t.equal(err.field, 'objects[0]');
  t.match(err.message, /^objects\[0\] \(firewall\): cannot pin outer map policy at \/sys\/fs\/bpf\/mimd-test\/firewall\/maps\/policy: /);
  t.same(kernel.only('pin map'), [`pin map 1 ${FW}/maps/blocklist`], 'policy was never pinned');
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' }, 'the blocklist pin of this start is removed again');
  t.same(kernel.state.keys(), [], 'and its record');
  t.same(kernel.handles, [], 'no handle left open');
});

t.test('close keeps every pin: programs stay attached; it closes newest first and is idempotent', async (t) => {
  const { host, kernel, lines } = setup(t);
  await host.start();
  const pins = kernel.snapshot();
  kernel.calls.length = 0;
  const first = host.close();
  t.equal(host.close(), first, 'a second call gets the same promise');
  await first;
  t.same(kernel.calls, ['close link 102', 'close link 101', 'close tools', 'close link 100', 'close firewall'], 'nothing unpinned, no record removed');
  await host.close();
  t.equal(kernel.calls.length, 5, 'nothing is closed twice');
  t.equal(host.running, false);
  t.same(host.objects(), []);
  t.same(kernel.snapshot(), pins, 'every pin stays');
  t.same(kernel.attached(), [100, 101, 102], 'the pins keep the programs attached');
  t.same(kernel.state.keys(), ['firewall/blocklist', 'firewall/policy'], 'records stay');
  t.same(kernel.handles, [], 'every handle is closed');
  t.ok(lines.some((l) => l.msg === 'xdp_firewall stays attached to lo (xdp, generic mode) (pinned)' && l.linkId === 100));
  t.notOk(lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('detached')), 'nothing claims to be detached');
});

t.test("close('remove') unpins each object's links, newest first, then removes its pin tree and records", async (t) => {
  const { host, kernel, lines } = setup(t);
  await host.start();
  kernel.calls.length = 0;
  await host.close('remove');
  t.same(kernel.only('unpin', 'rmtree', 'removeObject', 'removeMap'), [
    `unpin ${XDP_PIN}`,
    `rmtree ${FW}`,
    'removeObject firewall',
    `unpin ${TP_PIN}`,
    `unpin ${TC_PIN}`,
    `rmtree ${TOOLS}`,
    'removeObject tools',
  ]);
  const unpinned = kernel.calls.indexOf(`unpin ${XDP_PIN}`);
  t.ok(unpinned > kernel.calls.indexOf('close firewall'), 'handles are closed first');
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' }, 'nothing of either object is left pinned');
  t.same(kernel.attached(), [], 'every program is detached');
  t.same(kernel.state.keys(), [], 'no record is left');
  t.same(kernel.handles, []);
  t.ok(lines.some((l) => l.msg === 'detached xdp_firewall from lo (xdp, generic mode)'));
  await host.close('remove');
  t.equal(kernel.only('rmtree').length, 2, 'a second close does nothing');
});

t.test('close before start closes nothing and start then refuses', async (t) => {
  const { host, kernel } = setup(t);
  await host.close();
  await t.rejects(host.start(), /start\(\) when already closed/);
  t.same(kernel.calls, []);
});

t.test('start twice is refused', async (t) => {
  const { host } = setup(t);
  await host.start();
  await t.rejects(host.start(), /start\(\) when already running/);
});

t.test('beforeAttach runs once every object is loaded and its maps pinned, before any attach', async (t) => {
  const { host, kernel } = setup(t);
  let seen: string[] = [];
  await host.start(async () => {
    seen = [...kernel.calls];
  });
  t.same(seen.filter((c) => c.startsWith('attach') || c.startsWith('pin link')), [], 'nothing attached yet');
  t.ok(seen.includes('load tools'), 'the last object is loaded');
  t.ok(seen.includes(`pin map 3 ${FW}/maps/policy`), 'outer maps are pinned');
  t.equal(kernel.only('attach').length, 3, 'then everything is attached');
});

t.test('a failing beforeAttach fails the start and undoes it', async (t) => {
  const { host, kernel } = setup(t);
  await t.rejects(
    host.start(async () => {
      throw new Error('restore failed');
    }),
    /restore failed/,
  );
  t.same(kernel.only('attach'), []);
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' });
  t.same(kernel.state.keys(), []);
  t.equal(host.running, false);
});

// ---------------------------------------------------------------------------
// Failed starts

t.test('a failed attach undoes every attach, pin and load of the start', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.fail.add('attach tools/on_getpid tracepoint syscalls:sys_enter_getpid');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_START_FAILED');
  t.equal(err.statusCode, 500);
  t.equal(err.field, 'objects[1].attach[1]');
  t.equal(
    err.message,
    'objects[1].attach[1]: cannot attach on_getpid (object tools) to tracepoint syscalls/sys_enter_getpid: ' +
      'attach tools/on_getpid tracepoint syscalls:sys_enter_getpid: Device or resource busy',
  );
  t.match(err.cause, { code: 'EBUSY' }, 'the kernel error is kept as the cause');
  t.same(kernel.lifecycle().slice(7), ['close link 101', 'close tools', 'close link 100', 'close firewall']);
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' }, 'the pins this start made are removed, directories too');
  t.same(kernel.attached(), [], 'nothing stays attached');
  t.same(kernel.state.keys(), [], 'the records of the maps it pinned are removed');
  t.same(kernel.handles, []);
  t.equal(host.running, false);
  t.same(host.objects(), []);
  const calls = kernel.calls.length;
  await host.close();
  t.equal(kernel.calls.length, calls, 'close after a failed start does nothing more');
});

t.test("a failed start removes only what it pinned: an earlier run's pins and links stay", async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel, objects().slice(0, 1));
  const before = kernel.snapshot();
  const records = kernel.state.keys();
  kernel.fail.add('attach tools/on_getpid tracepoint syscalls:sys_enter_getpid');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.field, 'objects[1].attach[1]');
  t.same(kernel.snapshot(), before, "the firewall's pins stay as they were; nothing of tools is left");
  t.same(kernel.attached(), [100], "the earlier run's link still attaches the firewall; the new tc link is detached");
  t.same(kernel.state.keys(), records, "the earlier run's records stay");
  t.same(kernel.handles, []);
});

t.test('a failed load closes the objects opened and loaded before it', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.fail.add('load tools');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.field, 'objects[1]');
  t.match(err.message, /^objects\[1\] \(tools\): cannot load \/o\/tools\.bpf\.o: load tools: Device or resource busy$/);
  t.same(kernel.lifecycle(), ['open firewall', 'open tools', 'load firewall', 'load tools', 'close tools', 'close firewall']);
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' }, "the firewall's outer maps, pinned after its load, are unpinned");
  t.same(kernel.state.keys(), []);
});

t.test('a failed open closes the objects opened before it', async (t) => {
  const config = objects();
  config[1]!.path = '/o/missing.bpf.o';
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_START_FAILED');
  t.equal(err.field, 'objects[1].path');
  t.equal(err.message, 'objects[1] (tools): cannot open /o/missing.bpf.o: no file /o/missing.bpf.o');
  t.same(kernel.calls, ['open firewall', 'open tools', 'close firewall']);
});

t.test('an unknown program names the field and lists the programs the object has, before any load', async (t) => {
  const config = objects();
  config[1]!.attach[1]!.program = 'on_getppid';
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[1].attach[1].program');
  t.equal(err.message, 'objects[1].attach[1].program: no program "on_getppid" in object tools (/o/tools.bpf.o); it has: tc_count, on_getpid');
  t.same(kernel.lifecycle(), ['open firewall', 'open tools', 'close tools', 'close firewall'], 'nothing was loaded');
});

t.test('a program of the wrong type for its attach type is refused before any load', async (t) => {
  const config = objects();
  config[0]!.attach[0] = { program: 'xdp_firewall', type: 'tc', interface: 'lo', direction: 'ingress' };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[0].attach[0].type');
  t.equal(err.message, 'objects[0].attach[0].type: program xdp_firewall is of type xdp (section "xdp"), type tc needs a sched_cls program');
  t.same(kernel.lifecycle(), ['open firewall', 'close firewall']);
});

t.test('an unknown interface names the field', async (t) => {
  const config = objects();
  config[1]!.attach[0] = { program: 'tc_count', type: 'tc', interface: 'eth9', direction: 'ingress' };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[1].attach[0].interface');
  t.equal(err.message, 'objects[1].attach[0].interface: interface "eth9" not found');
  t.same(kernel.lifecycle(), ['open firewall', 'open tools', 'close tools', 'close firewall']);
});

t.test('close during start stops start at its next step and undoes it', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.holdLoad.add('firewall');
  const { host } = setup(t, objects(), kernel);
  const started = host.start();
  const closed = host.close();
  t.same(kernel.lifecycle(), ['open firewall', 'open tools', 'load firewall']);
  kernel.pendingLoads.get('firewall')?.();
  await t.rejects(started, { code: 'MIMD_START_FAILED', message: /shutting down/ });
  await closed;
  t.same(kernel.lifecycle(), ['open firewall', 'open tools', 'load firewall', 'close tools', 'close firewall']);
  t.same(host.objects(), []);
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' }, 'what the interrupted start pinned is removed');
  t.same(kernel.state.keys(), []);
});

t.test('a close that fails is logged and the rest still closes', async (t) => {
  const kernel = new FakeKernel(files());
  const { host, lines } = setup(t, objects(), kernel);
  await host.start();
  kernel.fail.add('close link 101');
  kernel.calls.length = 0;
  await host.close();
  t.same(kernel.calls, ['close link 102', 'close link 101', 'close tools', 'close link 100', 'close firewall']);
  const failure = lines.find((l) => l.msg === 'cannot detach tc_count from eth0 (tc egress)');
  t.ok(failure, 'logged');
  t.equal(failure?.level, 50);
});

t.test('a host with nothing configured starts and stops', async (t) => {
  const { host, kernel } = setup(t, []);
  await host.start();
  t.same(host.summary(), { objects: [], maps: 0, attachments: 0 });
  await host.close();
  t.same(kernel.calls, []);
});

t.test("objects are opened with their name and their pin directory's maps/ as libbpf's pin root", async (t) => {
  const seen: OpenObjectOptions[] = [];
  const kernel = new FakeKernel(files());
  const open = kernel.openObject.bind(kernel);
  kernel.openObject = (path, options) => {
    seen.push(options);
    return open(path, options);
  };
  const { host } = setup(t, objects(), kernel);
  await host.start();
  t.same(seen, [
    { name: 'firewall', pinRoot: `${FW}/maps` },
    { name: 'tools', pinRoot: `${TOOLS}/maps` },
  ]);
});

t.test('map settings must name a map-in-map map of the object, before any load', async (t) => {
  const config = objects();
  config[0] = { ...config[0]!, maps: { counters: { formats: { key: 'ipv4' } } } };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[0].maps.counters');
  t.match(err.message, /has no map-in-map map "counters" \(it has: blocklist, policy\)/);
  t.notOk(kernel.calls.some((c) => c.startsWith('load')), 'nothing loaded');
});

// ---------------------------------------------------------------------------
// Restart: reusing pins

t.test('a second start reuses the pinned outer maps and updates the pinned links in place', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  const pins = kernel.snapshot();
  const records = structuredClone([...kernel.state.outer]);
  const { host, lines } = setup(t, objects(), kernel);
  let sources: ManagedMapSource[] = [];
  await host.start(async () => {
    sources = host.managedMaps();
  });
  t.same(kernel.only('reuse'), ['reuse firewall/blocklist map 1', 'reuse firewall/policy map 3']);
  t.ok(kernel.calls.indexOf('reuse firewall/policy map 3') < kernel.calls.indexOf('load firewall'), 'reused before the load');
  t.same(kernel.only('pin map', 'pin link', 'writeOuter', 'unpin', 'rename', 'attach'), [], 'no new pin, record or attachment');
  t.same(kernel.only('update'), ['update link 100 firewall/xdp_firewall', 'update link 101 tools/tc_count', 'update link 102 tools/on_getpid']);
  t.same(kernel.snapshot(), pins, 'the same pins');
  t.same([...kernel.state.outer], records, 'the same records');

  t.same(sources.map((s) => [s.name, s.handle.id, s.pinPath, s.replacing]), [
    ['blocklist', 1, `${FW}/maps/blocklist`, null],
    ['policy', 3, `${FW}/maps/policy`, null],
  ], 'the slot service gets the pinned maps themselves');
  for (const source of sources) source.handle.close();

  const attachment = host.object('firewall')?.attachments[0];
  t.equal(attachment?.linkId, 100, 'the link id stays');
  t.equal(attachment?.programId, kernel.links.get(100)?.programId, 'the view reads the program from the link');
  t.not(attachment?.programId, 7, 'the link runs the new program');
  t.same(host.objects()[1]?.attachments.map((a) => a.linkId), [101, 102]);
  t.ok(lines.some((l) => l.msg === 'reusing pinned outer map' && l.map === 'blocklist' && l.mapId === 1));
  t.ok(lines.some((l) => l.msg === 'updated the pinned link of xdp_firewall on lo (xdp, generic mode)' && l.linkId === 100));
  t.same(kernel.handles.filter((h) => h.startsWith('map')), [], 'the handles from the pins are closed after load');

  await host.close();
  t.same(kernel.attached(), [100, 101, 102]);
  t.same(kernel.handles, []);
});

t.test('a pin left by a replacement a crash interrupted is removed at start', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  kernel.addPin(`${FW}/maps/new-blocklist`, { kind: 'map', map: kernel.newMapState(BLOCKLIST) });
  const { host } = setup(t, objects(), kernel);
  await host.start();
  t.equal(kernel.pinExists(`${FW}/maps/new-blocklist`), false);
  t.equal(kernel.pinnedMapId(`${FW}/maps/blocklist`), 1, 'the real pin is reused');
});

t.test('inner template flags compare as a set', async (t) => {
  const kernel = new FakeKernel(files());
  const file = kernel.files['/o/firewall.bpf.o']!;
  const flagged = (flags: string[]) => (m: MapDefinition) => (m.name === 'policy' ? { ...m, inner: { ...m.inner!, flags } } : m);
  file.maps = file.maps.map(flagged(['NO_PREALLOC', 'RDONLY_PROG']));
  await earlierRun(t, kernel);
  file.maps = file.maps.map(flagged(['RDONLY_PROG', 'NO_PREALLOC']));
  const { host } = setup(t, objects(), kernel);
  await host.start();
  t.same(kernel.only('reuse'), ['reuse firewall/blocklist map 1', 'reuse firewall/policy map 3']);
});

// ---------------------------------------------------------------------------
// Restart: incompatible pins

/** Every change start() could make to the host: pins, links, records. */
function fingerprint(kernel: FakeKernel) {
  return {
    pins: kernel.snapshot(),
    attached: kernel.attached(),
    programs: [...kernel.links.values()].map((l) => [l.id, l.programId]),
    records: structuredClone([...kernel.state.outer]),
  };
}

async function refused(t: Test, kernel: FakeKernel): Promise<HostError> {
  const before = fingerprint(kernel);
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.statusCode, 400);
  t.equal(err.field, 'objects[0].onIncompatiblePin');
  t.same(fingerprint(kernel), before, 'no pin, link or record changed');
  t.same(kernel.only('load', 'attach', 'update', 'pin', 'unpin', 'rename', 'rmtree', 'writeOuter', 'removeMap', 'removeObject'), [], 'nothing loaded, attached or pinned');
  t.same(kernel.handles, [], 'the pinned map opened for the check is closed');
  t.equal(host.running, false);
  return err;
}

t.test('a pinned outer map whose recorded inner template differs is refused, naming the field', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  widerBlocklistValues(kernel);
  const err = await refused(t, kernel);
  t.equal(
    err.message,
    `objects[0] (firewall): the pinned outer map blocklist (${FW}/maps/blocklist) does not match the object: ` +
      'innerTemplate.valueSize is 1 in the pin, 4 in the object. ' +
      'Set objects[0].onIncompatiblePin: replace to replace it (slots whose inner maps fit the new template are carried over), ' +
      'or run mimd purge to remove everything mimd owns',
  );
});

t.test('every field of the inner template is compared', async (t) => {
  const changes: [string, Partial<MapShape>, RegExp][] = [
    ['type', { type: 'LRU_HASH' }, /innerTemplate\.type is HASH in the pin, LRU_HASH in the object/],
    ['keySize', { keySize: 16 }, /innerTemplate\.keySize is 4 in the pin, 16 in the object/],
    ['maxEntries', { maxEntries: 1024 }, /innerTemplate\.maxEntries is 65536 in the pin, 1024 in the object/],
    ['flags', { flags: ['NO_PREALLOC'] }, /innerTemplate\.flags is \[\] in the pin, \[NO_PREALLOC\] in the object/],
  ];
  for (const [name, change, message] of changes) {
    await t.test(name, async (t) => {
      const kernel = new FakeKernel(files());
      await earlierRun(t, kernel);
      const file = kernel.files['/o/firewall.bpf.o']!;
      file.maps = file.maps.map((m) => (m.name === 'blocklist' ? { ...m, inner: { ...m.inner!, ...change } } : m));
      t.match((await refused(t, kernel)).message, message);
    });
  }
});

t.test('a pinned outer map of another definition is refused, naming the field', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  const file = kernel.files['/o/firewall.bpf.o']!;
  file.maps = file.maps.map((m) => (m.name === 'blocklist' ? { ...m, maxEntries: 8 } : m));
  const err = await refused(t, kernel);
  t.match(err.message, /does not match the object: maxEntries is 4 in the pin, 8 in the object\./);
  t.notMatch(err.message, /innerTemplate/);
});

t.test('a pinned outer map without a record is refused: its inner template is unknown', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  kernel.state.outer.delete('firewall/blocklist');
  const err = await refused(t, kernel);
  t.match(err.message, /the pinned outer map blocklist .* does not match the object: innerTemplate is not recorded for this map/);
});

t.test('a record of another map (an earlier pin at that path) is no record of this one', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  kernel.state.outer.get('firewall/blocklist')!.mapId = 999;
  const err = await refused(t, kernel);
  t.match(err.message, /innerTemplate is not recorded for this map/);
});

t.test('the check of every object comes before any load: a refusal in the last object loads nothing', async (t) => {
  const kernel = new FakeKernel(files());
  const config = objects();
  // tools, now with an outer map of its own, after the firewall
  kernel.files['/o/tools.bpf.o']!.maps.push(BLOCKLIST);
  await earlierRun(t, kernel, config);
  const file = kernel.files['/o/tools.bpf.o']!;
  file.maps = file.maps.map((m) => (m.name === 'blocklist' ? { ...m, inner: { ...m.inner!, keySize: 8 } } : m));
  const { host } = setup(t, config, kernel);
  const err = await startError(host);
  t.equal(err.field, 'objects[1].onIncompatiblePin');
  t.match(err.message, /^objects\[1\] \(tools\): .*innerTemplate\.keySize is 4 in the pin, 8 in the object/);
  t.same(kernel.only('load', 'attach', 'update', 'pin'), []);
  t.same(kernel.handles, []);
});

t.test('onIncompatiblePin replace: a new outer map takes over the pin before the first attach', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  widerBlocklistValues(kernel);
  const config = objects();
  config[0]!.onIncompatiblePin = 'replace';
  const { host, lines } = setup(t, config, kernel);
  let sources: ManagedMapSource[] = [];
  let pinnedAtRestore: number | null = null;
  await host.start(async () => {
    sources = host.managedMaps();
    pinnedAtRestore = kernel.pinnedMapId(`${FW}/maps/blocklist`);
  });
  const blocklist = sources.find((s) => s.name === 'blocklist');
  const policy = sources.find((s) => s.name === 'policy');
  t.equal(blocklist?.replacing?.id, 1, 'the slot service gets the pinned map to carry slots over from');
  t.not(blocklist?.handle.id, 1, 'and a new outer map');
  t.equal(blocklist?.inner.valueSize, 4, 'made with the new template');
  t.equal(policy?.replacing, null, 'a compatible map is not replaced');
  t.equal(policy?.handle.id, 3, 'it is reused');
  t.equal(pinnedAtRestore, 1, 'while slots are restored the pin is still the old map');
  const fresh = blocklist!.handle.id;
  for (const source of sources) source.handle.close();

  t.same(kernel.only('reuse'), ['reuse firewall/policy map 3'], 'the incompatible pin is not reused');
  const next = `${FW}/maps/new-blocklist`;
  t.same(kernel.only('writeOuter', 'pin map', 'rename'), [
    'writeOuter firewall/blocklist',
    `pin map ${fresh} ${next}`,
    `rename ${next} ${FW}/maps/blocklist`,
  ], 'record, pin beside, rename over');
  t.ok(kernel.calls.indexOf(`rename ${next} ${FW}/maps/blocklist`) < kernel.calls.indexOf('update link 100 firewall/xdp_firewall'), 'before the first attach');
  t.equal(kernel.pinnedMapId(`${FW}/maps/blocklist`), fresh, 'the pin is the new map');
  t.equal(kernel.pinExists(next), false);
  const record = kernel.state.readOuter('firewall', 'blocklist');
  t.equal(record?.mapId, fresh);
  t.equal(record?.innerTemplate.valueSize, 4);
  t.equal(host.object('firewall')?.attachments[0]?.linkId, 100, 'the link is still updated in place');
  t.ok(lines.some((l) => l.msg === 'replacing incompatible outer map' && l.map === 'blocklist' && /innerTemplate\.valueSize/.test(String(l.mismatch))));

  await host.close();
  t.same(kernel.handles, [], 'the replaced map is closed too');

  // The next start finds the new map and its record: nothing to replace.
  kernel.calls.length = 0;
  const again = setup(t, objects(), kernel);
  await again.host.start();
  t.same(kernel.only('reuse'), [`reuse firewall/blocklist map ${fresh}`, 'reuse firewall/policy map 3']);
});

t.test('a pin at an outer map\'s path that is not an outer map fails the start, even with replace', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.makePinDir(`${FW}/maps`);
  kernel.addPin(`${FW}/maps/blocklist`, { kind: 'map', map: kernel.newMapState(COUNTERS) });
  const config = objects();
  config[0]!.onIncompatiblePin = 'replace';
  const { host } = setup(t, config, kernel);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_START_FAILED');
  t.equal(err.field, 'objects[0].onIncompatiblePin');
  t.match(err.message, /^objects\[0\] \(firewall\): cannot open the pinned outer map \/sys\/fs\/bpf\/mimd-test\/firewall\/maps\/blocklist: .*EINVAL/);
  t.equal(kernel.pinnedMapId(`${FW}/maps/blocklist`), 1, 'what is pinned there is left alone');
  t.same(kernel.only('load', 'pin', 'unpin', 'rename'), []);
});

t.test('a replacement that fails before its rename leaves the earlier pin and its record as they were', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  const record = kernel.state.readOuter('firewall', 'blocklist');
  widerBlocklistValues(kernel);
  const config = objects();
  config[0]!.onIncompatiblePin = 'replace';
  kernel.fail.add(`rename ${FW}/maps/new-blocklist ${FW}/maps/blocklist`);
  const { host } = setup(t, config, kernel);
  const err = await host.start().then(() => null, (e: unknown) => e);
  t.match(err, { message: /Device or resource busy/ });
  t.ok(isHostError(err) && err.code === 'MIMD_START_FAILED' && err.field === 'objects[0]', 'a MIMD_START_FAILED naming the object');
  t.equal(kernel.pinExists(`${FW}/maps/new-blocklist`), false, 'the replacing map pinned by this start is unpinned');
  t.equal(kernel.pinnedMapId(`${FW}/maps/blocklist`), 1, 'the old map is still pinned');
  t.same(kernel.attached(), [100, 101, 102]);
  t.same(kernel.state.readOuter('firewall', 'blocklist'), record, 'the record still describes the pinned map');
});

// ---------------------------------------------------------------------------
// Restart: links

t.test('a pinned link that cannot take the new program is replaced by a new link renamed over its pin', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  // perf_event links cannot be updated
  kernel.fail.add('update link 102 tools/on_getpid');
  const { host, lines } = setup(t, objects(), kernel);
  await host.start();
  const next = `${TOOLS}/links/new-tracepoint-syscalls-sys_enter_getpid`;
  const i = kernel.calls.indexOf('update link 102 tools/on_getpid');
  t.same(kernel.calls.slice(i, i + 6), [
    'update link 102 tools/on_getpid',
    'attach tools/on_getpid tracepoint syscalls:sys_enter_getpid',
    `unpin ${next}`,
    `pin link 103 ${next}`,
    `rename ${next} ${TP_PIN}`,
    'close link 102',
  ], 'the new link is attached and pinned before the old one goes: the hook is never empty');
  t.same(kernel.snapshot()[TP_PIN], 'link 103');
  t.equal(kernel.pinExists(next), false);
  t.same(kernel.attached(), [100, 101, 103], 'the old link is detached');
  t.same(host.objects()[1]?.attachments.map((a) => a.linkId), [101, 103]);
  t.ok(lines.some((l) => l.msg === 'replaced the pinned link of on_getpid on tracepoint syscalls/sys_enter_getpid' && l.linkId === 103));
  await host.close();
  t.same(kernel.attached(), [100, 101, 103], 'the new link stays pinned');
  t.same(kernel.handles, []);
});

t.test('a pinned link that can be neither updated nor replaced fails the start and stays', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  const pins = kernel.snapshot();
  kernel.fail.add('update link 102 tools/on_getpid');
  kernel.fail.add('attach tools/on_getpid tracepoint syscalls:sys_enter_getpid');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.field, 'objects[1].attach[1]');
  t.same(kernel.snapshot(), pins, "the earlier run's pins stay");
  t.same(kernel.attached(), [100, 101, 102]);
  t.same(kernel.handles, [], "every handle is closed, the pinned link's too");
});

t.test('a stale pinned link (detached, or on another ifindex) is unpinned and a fresh one attached', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  kernel.links.get(100)!.programId = 0; // detached behind mimd's back (bpftool link detach)
  kernel.interfaces.eth0 = 12; // eth0 was deleted and made again
  const { host, lines } = setup(t, objects(), kernel);
  await host.start();
  t.same(kernel.only('update'), ['update link 102 tools/on_getpid'], 'only the good link is updated');
  t.same(kernel.only('attach'), ['attach firewall/xdp_firewall xdp 1 generic', 'attach tools/tc_count tc 12 egress']);
  for (const [pin, old] of [[XDP_PIN, 100], [TC_PIN, 101]] as const) {
    const unpinned = kernel.calls.indexOf(`unpin ${pin}`);
    t.ok(unpinned >= 0 && unpinned < kernel.calls.findIndex((c) => c.startsWith('pin link') && c.endsWith(pin)), `${pin} is unpinned, then pinned again`);
    t.not(kernel.snapshot()[pin], `link ${old}`);
  }
  t.same(host.object('firewall')?.attachments.map((a) => a.linkId), [103]);
  t.same(host.objects()[1]?.attachments.map((a) => [a.linkId, a.ifindex]), [[104, 12], [102, undefined]]);
  t.same(kernel.attached(), [102, 103, 104], 'the stale links are released');
  t.same(
    lines.filter((l) => l.msg === 'removed a stale pinned link').map((l) => [l.linkId, l.why]),
    [
      [100, 'it was detached'],
      [101, 'it is on ifindex 2, the interface is now ifindex 12'],
    ],
  );
});

t.test('links pinned for attachments no longer configured are removed after start', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  const config = objects();
  config[1]!.attach.pop(); // on_getpid is no longer attached
  const { host, lines } = setup(t, config, kernel);
  await host.start();
  t.same(kernel.only('unpin'), [`unpin ${TP_PIN}`]);
  t.ok(kernel.calls.indexOf(`unpin ${TP_PIN}`) > kernel.calls.indexOf('update link 101 tools/tc_count'), 'after every attachment is in place');
  t.equal(kernel.pinExists(TP_PIN), false);
  t.same(kernel.attached(), [100, 101], 'its program is detached');
  t.equal(kernel.pinExists(TC_PIN), true, 'the configured ones stay');
  t.ok(lines.some((l) => l.msg === 'detached an attachment that is no longer configured' && l.pin === TP_PIN));

  // An object with no attachment left has no links directory.
  const none = new FakeKernel(files());
  await earlierRun(t, none);
  const bare = objects();
  bare[1]!.attach = [];
  await setup(t, bare, none).host.start();
  t.equal(none.pinExists(`${TOOLS}/links`), false);
  t.same(none.attached(), [100]);
});

// ---------------------------------------------------------------------------
// Purge

t.test('purgeOwned unpins every link first, then removes the pin tree and the records', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  // a link of an attachment an older config had
  kernel.addPin(`${FW}/links/xdp-native-eth0`, { kind: 'link', link: kernel.newLink(99, { type: 'xdp', ifindex: 2, mode: 'native' }) });
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  purgeOwned({ objects: objects(), pinRoot: PIN_ROOT, kernel, state: kernel.state, logger });
  t.same(kernel.calls, [
    `unpin ${FW}/links/xdp-generic-lo`,
    `unpin ${FW}/links/xdp-native-eth0`,
    `rmtree ${FW}`,
    'removeObject firewall',
    `unpin ${TC_PIN}`,
    `unpin ${TP_PIN}`,
    `rmtree ${TOOLS}`,
    'removeObject tools',
  ]);
  t.same(kernel.snapshot(), { [PIN_ROOT]: 'dir' });
  t.same(kernel.attached(), []);
  t.same(kernel.state.keys(), []);
  t.equal(lines.filter((l) => l.msg === 'detached').length, 4);

  // Nothing there: nothing to do, and no error.
  kernel.calls.length = 0;
  purgeOwned({ objects: objects(), pinRoot: PIN_ROOT, kernel, state: kernel.state, logger });
  t.same(kernel.only('unpin'), []);
});

t.test('purgeOwned touches only the configured objects', async (t) => {
  const kernel = new FakeKernel(files());
  await earlierRun(t, kernel);
  purgeOwned({ objects: objects().slice(1), pinRoot: PIN_ROOT, kernel, state: kernel.state, logger: pino({ level: 'silent' }) });
  t.equal(kernel.pinExists(XDP_PIN), true);
  t.equal(kernel.pinExists(TOOLS), false);
  t.same(kernel.attached(), [100]);
  t.same(kernel.state.keys(), ['firewall/blocklist', 'firewall/policy']);
});
