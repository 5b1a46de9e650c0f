// HostService against a fake kernel: the order of start and stop, all-or-nothing
// start, and errors that name the config key they are about.
import t from 'tap';
import pino from 'pino';
import { HostService, isHostError, type HostError } from '../../daemon/src/domain/host';
import type {
  AttachTarget,
  KernelLink,
  KernelObject,
  ObjectLoader,
  MapDefinition,
  OpenObjectOptions,
  ProgramDefinition,
} from '../../daemon/src/domain/ports';
import type { ObjectConfig } from '../../daemon/src/config/schema';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

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

const XDP: ProgramDefinition = { name: 'xdp_firewall', section: 'xdp', type: 'xdp' };
const TC: ProgramDefinition = { name: 'tc_count', section: 'tc', type: 'sched_cls' };
const TP: ProgramDefinition = { name: 'on_getpid', section: 'tracepoint/syscalls/sys_enter_getpid', type: 'tracepoint' };

interface FakeFile {
  programs: ProgramDefinition[];
  maps: MapDefinition[];
}

/** Records every call as one line; fails the calls named in `fail`. */
class FakeKernel implements ObjectLoader {
  readonly calls: string[] = [];
  readonly fail = new Set<string>();
  readonly pendingLoads = new Map<string, () => void>();
  /** loads of these objects wait until the test calls pendingLoads.get(name)() */
  readonly holdLoad = new Set<string>();
  private nextLinkId = 100;

  constructor(
    readonly files: Record<string, FakeFile>,
    readonly interfaces: Record<string, number> = { lo: 1, eth0: 2 },
  ) {}

  record(call: string): void {
    this.calls.push(call);
    if (this.fail.has(call)) throw Object.assign(new Error(`${call}: Device or resource busy`), { code: 'EBUSY', errno: 16, syscall: 'fake' });
  }

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

  linkId(): number {
    return this.nextLinkId++;
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
  constructor(
    private readonly kernel: FakeKernel,
    private readonly name: string,
    private readonly file: FakeFile,
  ) {}
  maps(): MapDefinition[] {
    return structuredClone(this.file.maps);
  }
  outerMap(): never {
    throw new Error('the host service does not open outer maps');
  }
  btf(): null {
    return null;
  }
  programs(): ProgramDefinition[] {
    return structuredClone(this.file.programs);
  }
  async load(): Promise<void> {
    this.kernel.record(`load ${this.name}`);
    if (this.kernel.holdLoad.has(this.name)) {
      await new Promise<void>((resolve) => this.kernel.pendingLoads.set(this.name, resolve));
    }
  }
  attach(program: string, target: AttachTarget): KernelLink {
    const call = `attach ${this.name}/${program} ${targetText(target)}`;
    this.kernel.record(call);
    const id = this.kernel.linkId();
    const kernel = this.kernel;
    let closed = false;
    return {
      id,
      programId: 7,
      close() {
        if (closed) return;
        closed = true;
        kernel.record(`close link ${id}`);
      },
    };
  }
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.kernel.record(`close ${this.name}`);
  }
}

function files(): Record<string, FakeFile> {
  return {
    '/o/firewall.bpf.o': { programs: [XDP], maps: [BLOCKLIST, COUNTERS] },
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
    },
    {
      name: 'tools',
      path: '/o/tools.bpf.o',
      attach: [
        { program: 'tc_count', type: 'tc', interface: 'eth0', direction: 'egress' },
        { program: 'on_getpid', type: 'tracepoint', tracepoint: 'syscalls/sys_enter_getpid' },
      ],
      maps: {},
    },
  ];
}

function setup(t: Test, config = objects(), kernel = new FakeKernel(files())) {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) });
  const host = new HostService({ objects: config, pinRoot: '/sys/fs/bpf/mimd-test', kernel, logger });
  t.teardown(() => host.close());
  return { host, kernel, lines };
}

async function startError(host: HostService): Promise<HostError> {
  try {
    await host.start();
  } catch (err) {
    if (isHostError(err)) return err;
    throw err;
  }
  throw new Error('expected start() to fail');
}

t.test('start opens and checks everything, then loads, then attaches in config order', async (t) => {
  const { host, kernel } = setup(t);
  await host.start();
  t.same(kernel.calls, [
    'open firewall',
    'open tools',
    'load firewall',
    'load tools',
    'attach firewall/xdp_firewall xdp 1 generic',
    'attach tools/tc_count tc 2 egress',
    'attach tools/on_getpid tracepoint syscalls:sys_enter_getpid',
  ]);
  t.equal(host.running, true);
  t.same(host.summary(), { objects: ['firewall', 'tools'], maps: 3, attachments: 3 });

  const firewall = host.object('firewall');
  t.same(firewall, {
    name: 'firewall',
    path: '/o/firewall.bpf.o',
    maps: [BLOCKLIST, COUNTERS],
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

t.test('close detaches newest first, then closes objects; it is idempotent', async (t) => {
  const { host, kernel, lines } = setup(t);
  await host.start();
  kernel.calls.length = 0;
  const first = host.close();
  t.equal(host.close(), first, 'a second call gets the same promise');
  await first;
  t.same(kernel.calls, ['close link 102', 'close link 101', 'close tools', 'close link 100', 'close firewall']);
  await host.close();
  t.equal(kernel.calls.length, 5, 'nothing is closed twice');
  t.equal(host.running, false);
  t.same(host.objects(), []);
  t.ok(lines.some((l) => l.msg === 'detached xdp_firewall from lo (xdp, generic mode)' && l.linkId === 100));
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

t.test('a failed attach undoes every attach and load before it', async (t) => {
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
  t.same(kernel.calls.slice(7), ['close link 101', 'close tools', 'close link 100', 'close firewall']);
  t.equal(host.running, false);
  t.same(host.objects(), []);
  await host.close();
  t.equal(kernel.calls.length, 11, 'close after a failed start does nothing more');
});

t.test('a failed load closes the objects opened and loaded before it', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.fail.add('load tools');
  const { host } = setup(t, objects(), kernel);
  const err = await startError(host);
  t.equal(err.field, 'objects[1]');
  t.match(err.message, /^objects\[1\] \(tools\): cannot load \/o\/tools\.bpf\.o: load tools: Device or resource busy$/);
  t.same(kernel.calls, ['open firewall', 'open tools', 'load firewall', 'load tools', 'close tools', 'close firewall']);
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
  t.same(kernel.calls, ['open firewall', 'open tools', 'close tools', 'close firewall'], 'nothing was loaded');
});

t.test('a program of the wrong type for its attach type is refused before any load', async (t) => {
  const config = objects();
  config[0]!.attach[0] = { program: 'xdp_firewall', type: 'tc', interface: 'lo', direction: 'ingress' };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[0].attach[0].type');
  t.equal(err.message, 'objects[0].attach[0].type: program xdp_firewall is of type xdp (section "xdp"), type tc needs a sched_cls program');
  t.same(kernel.calls, ['open firewall', 'close firewall']);
});

t.test('an unknown interface names the field', async (t) => {
  const config = objects();
  config[1]!.attach[0] = { program: 'tc_count', type: 'tc', interface: 'eth9', direction: 'ingress' };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[1].attach[0].interface');
  t.equal(err.message, 'objects[1].attach[0].interface: interface "eth9" not found');
  t.same(kernel.calls, ['open firewall', 'open tools', 'close tools', 'close firewall']);
});

t.test('close during start stops start at its next step and undoes it', async (t) => {
  const kernel = new FakeKernel(files());
  kernel.holdLoad.add('firewall');
  const { host } = setup(t, objects(), kernel);
  const started = host.start();
  const closed = host.close();
  t.same(kernel.calls, ['open firewall', 'open tools', 'load firewall']);
  kernel.pendingLoads.get('firewall')?.();
  await t.rejects(started, { code: 'MIMD_START_FAILED', message: /shutting down/ });
  await closed;
  t.same(kernel.calls, ['open firewall', 'open tools', 'load firewall', 'close tools', 'close firewall']);
  t.same(host.objects(), []);
});

t.test('a close that fails is logged and the rest still closes', async (t) => {
  const kernel = new FakeKernel(files());
  const { host, lines } = setup(t, objects(), kernel);
  await host.start();
  kernel.fail.add('close link 101');
  await host.close();
  t.same(kernel.calls.slice(7), ['close link 102', 'close link 101', 'close tools', 'close link 100', 'close firewall']);
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

t.test('objects are opened with their name and a pin root of their own', async (t) => {
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
    { name: 'firewall', pinRoot: '/sys/fs/bpf/mimd-test/firewall' },
    { name: 'tools', pinRoot: '/sys/fs/bpf/mimd-test/tools' },
  ]);
});

t.test('map settings must name a map-in-map map of the object, before any load', async (t) => {
  const config = objects();
  config[0] = { ...config[0]!, maps: { counters: { formats: { key: 'ipv4' } } } };
  const { host, kernel } = setup(t, config);
  const err = await startError(host);
  t.equal(err.code, 'MIMD_CONFIG_MISMATCH');
  t.equal(err.field, 'objects[0].maps.counters');
  t.match(err.message, /has no map-in-map map "counters" \(it has: blocklist\)/);
  t.notOk(kernel.calls.some((c) => c.startsWith('load')), 'nothing loaded');
});
