// The container image: the Dockerfile built with podman, run the way its header
// says (host network, the host's bpffs, privileged or only the capabilities
// mimd needs), and driven over its API from the host, with the kernel's view
// read from the host too.
//
// No image registry is reachable here, so the base image is a local stand-in
// (scripts/container-base.sh: debootstrap of Debian bookworm plus this
// machine's Node.js), passed as the NODE_IMAGE build argument. Everything the
// test makes in podman lives in a podman store of its own in a temporary
// directory (CONTAINERS_STORAGE_CONF, CONTAINERS_CONF), so it never mixes with
// other images or containers on the machine, and removing that directory in
// teardown removes every image, layer and container of the run.
//
// Needs root, podman with runc, debootstrap and bpftool (setup.mjs --for-tests
// installs them), Debian's mirror and the npm registry. Takes minutes: the
// debootstrap is cached under .cache/container-base/ and npm's downloads under
// .cache/container-npm/, nothing else is kept between runs.
import t, { type Test } from 'tap';
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import { stringify as toYaml } from 'yaml';
import { REPO, pinDir, stateDir, vethPair, type VethPair } from '../helpers/sandbox';
import { FIREWALL_MAPS, TEST_TOKEN_SHA256, apiClient, firewallBytes, kernelEntries, kernelSlots, sleep, u32Hex, xdpProgram, type Api } from '../helpers/daemon';

const skip = process.getuid?.() === 0 ? false : 'needs root (podman, bpffs, XDP)';

// The runner's per-file timeout (package.json) is for tests that take seconds;
// this one builds an image: 3 to 5 minutes warm, 4 to 6 cold, on 2 cores.
t.setTimeout(15 * 60_000);

const BASE_SCRIPT = path.join(REPO, 'scripts', 'container-base.sh');
const NPM_CACHE = path.join(REPO, '.cache', 'container-npm');
const CONFIG_IN_CONTAINER = '/etc/mimd/mimd.yaml';
const BL = '/v1/maps/firewall/blocklist/slots';
const BLOCKED = '192.0.2.7';

// capability numbers (linux/capability.h)
const CAP = { NET_ADMIN: 12, SYS_ADMIN: 21, SYS_RESOURCE: 24, PERFMON: 38, BPF: 39 } as const;

interface Result {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** The podman store of this run: its own images, containers and state, all in `dir`. */
interface Store {
  dir: string;
  env: NodeJS.ProcessEnv;
  log: string;
}

/**
 * Runs a command to its end. Output goes to the store's log as well; a
 * non-zero exit (unless `allowFail`) throws with the end of the output.
 */
function run(store: Store, cmd: string, args: string[], options: { allowFail?: boolean; timeoutMs?: number } = {}): Promise<Result> {
  const { allowFail = false, timeoutMs = 60_000 } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env: store.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    const log = fs.createWriteStream(store.log, { flags: 'a' });
    log.write(`\n$ ${cmd} ${args.join(' ')}\n`);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      log.write(chunk);
    });
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
      log.write(chunk);
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (err) => {
      clearTimeout(timer);
      log.end();
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      log.end();
      const result = { code, stdout, stderr };
      if (code === 0 || allowFail) return resolve(result);
      const how = signal ? `was killed by ${signal}${signal === 'SIGKILL' ? ` (after ${timeoutMs} ms?)` : ''}` : `exited with ${code}`;
      const tail = `${stdout}${stderr}`.split('\n').slice(-40).join('\n');
      reject(new Error(`\`${cmd} ${args.join(' ')}\` ${how}:\n${tail}`));
    });
  });
}

const podman = (store: Store, args: string[], options?: { allowFail?: boolean; timeoutMs?: number }): Promise<Result> => run(store, 'podman', args, options);

/**
 * A podman store in a fresh directory. Its teardown removes the containers
 * (stopping them with SIGTERM first, so mimd's onStop runs), the images, and
 * the directory; problems are collected in `problems`, so that one failing
 * step does not stop the others.
 */
function podmanStore(t: Test, problems: string[]): Store {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${STORE_PREFIX}${process.pid}-`));
  for (const sub of ['storage', 'run', 'tmp']) fs.mkdirSync(path.join(dir, sub));
  fs.writeFileSync(
    path.join(dir, 'storage.conf'),
    `[storage]\ndriver = "overlay"\ngraphroot = "${dir}/storage"\nrunroot = "${dir}/run"\n`,
  );
  // runc: crun fails on this machine's cgroups. No systemd here: cgroupfs, and
  // events in a file. tmp_dir holds podman's per-store runtime state.
  fs.writeFileSync(
    path.join(dir, 'containers.conf'),
    `[engine]\nruntime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\ntmp_dir = "${dir}/tmp"\n`,
  );
  const store = storeAt(dir);
  t.teardown(() => removeStore(store, problems));
  return store;
}

const STORE_PREFIX = 'mimd-ct-';

function storeAt(dir: string): Store {
  return {
    dir,
    env: { ...process.env, CONTAINERS_STORAGE_CONF: path.join(dir, 'storage.conf'), CONTAINERS_CONF: path.join(dir, 'containers.conf') },
    log: path.join(dir, 'commands.log'),
  };
}

/** Stops and removes the store's containers (SIGTERM first: mimd's onStop runs), its images, and the store. */
async function removeStore(store: Store, problems: string[]): Promise<void> {
  const step = async (what: string, fn: () => Promise<unknown>): Promise<void> => {
    try {
      await fn();
    } catch (err) {
      problems.push(`${what}: ${err instanceof Error ? err.message : String(err)}`);
    }
  };
  if (fs.existsSync(path.join(store.dir, 'storage.conf'))) {
    await step('remove containers', () => podman(store, ['rm', '--all', '--force', '--time', '20'], { timeoutMs: 120_000 }));
    await step('remove images', () => podman(store, ['rmi', '--all', '--force'], { timeoutMs: 120_000 }));
  }
  await step('unmount the store', async () => {
    const mounts = fs
      .readFileSync('/proc/mounts', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[1] ?? '')
      .filter((at) => at.startsWith(`${store.dir}/`))
      .sort()
      .reverse();
    for (const at of mounts) await run(store, 'umount', ['-l', at]);
    if (mounts.length > 0) problems.push(`left mounted by podman: ${mounts.join(' ')}`);
  });
  await step('remove the store', async () => fs.rmSync(store.dir, { recursive: true, force: true }));
}

/**
 * Stores of earlier runs whose process is gone (killed by the runner's
 * timeout, say, before its teardown ran): their containers may still hold
 * pins and XDP attachments, and their images take hundreds of MB.
 */
async function sweepStaleStores(problems: string[]): Promise<string[]> {
  const alive = (pid: number): boolean => {
    try {
      process.kill(pid, 0);
      return true;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code !== 'ESRCH';
    }
  };
  const stale = fs
    .readdirSync(os.tmpdir())
    .map((name) => ({ name, pid: Number(new RegExp(`^${STORE_PREFIX}(\\d+)-`).exec(name)?.[1]) }))
    .filter(({ pid }) => pid > 0 && pid !== process.pid && !alive(pid))
    .map(({ name }) => path.join(os.tmpdir(), name));
  for (const dir of stale) await removeStore(storeAt(dir), problems);
  return stale;
}

/** A hard RLIMIT of this process, from /proc/self/limits. */
function limit(name: string): number {
  const line = fs
    .readFileSync('/proc/self/limits', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(name));
  const hard = line?.slice(26).trim().split(/\s+/)[1];
  if (hard === undefined) throw new Error(`no "${name}" in /proc/self/limits`);
  return hard === 'unlimited' ? Number.MAX_SAFE_INTEGER : Number(hard);
}

/**
 * --ulimit flags within what this process may set. podman asks for 1048576
 * open files and processes by default; root here lacks CAP_SYS_RESOURCE (it
 * is not in the bounding set), so runc cannot raise the limits past podman's
 * own and the container fails with "error setting rlimits ... operation not
 * permitted". (Seen here: podman's own process limit is kernel.pid_max.)
 */
function ulimitArgs(): string[] {
  const nofile = limit('Max open files');
  const pidMax = Number(fs.readFileSync('/proc/sys/kernel/pid_max', 'utf8'));
  const nproc = Math.min(limit('Max processes'), pidMax);
  return ['--ulimit', `nofile=${nofile}:${nofile}`, '--ulimit', `nproc=${nproc}:${nproc}`];
}

/** A loopback TCP port nothing listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

interface Inspected {
  State: { Running: boolean; ExitCode: number; Pid: number; Health?: { Status: string } };
}

async function inspect(store: Store, name: string): Promise<Inspected> {
  const [info] = JSON.parse((await podman(store, ['container', 'inspect', name])).stdout) as Inspected[];
  if (!info) throw new Error(`podman inspect ${name}: nothing`);
  return info;
}

/** Waits until GET /readyz answers 200; fails early, with the logs, if the container stops. */
async function waitReady(store: Store, name: string, api: Api, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await api('GET', '/readyz')).status === 200) return;
    } catch {
      /* not listening yet */
    }
    const info = await inspect(store, name);
    const logs = async (): Promise<string> => {
      const r = await podman(store, ['logs', name], { allowFail: true });
      return `${r.stdout}${r.stderr}`;
    };
    if (!info.State.Running) throw new Error(`container ${name} exited with ${info.State.ExitCode} before it was ready:\n${await logs()}`);
    if (Date.now() > deadline) throw new Error(`container ${name} not ready within ${timeoutMs} ms:\n${await logs()}`);
    await sleep(200);
  }
}

/** Effective capabilities of the container's first process, as bit numbers. */
async function capabilities(store: Store, name: string): Promise<number[]> {
  const status = (await podman(store, ['exec', name, 'cat', '/proc/1/status'])).stdout;
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) throw new Error(`no CapEff in /proc/1/status:\n${status}`);
  const mask = BigInt(`0x${hex}`);
  return [...Array(64).keys()].filter((bit) => (mask >> BigInt(bit)) & 1n);
}

const boundingSet = (): bigint => BigInt(`0x${/^CapBnd:\s*([0-9a-f]+)$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'))?.[1] ?? '0'}`);

interface Runtime {
  name: string;
  api: Api;
  pinRoot: string;
  state: string;
  link: VethPair;
}

/**
 * Starts the image as the Dockerfile's header says, with a config of the
 * test's own: the example firewall on a veth of the test's (not `lo`, so the
 * attachment made inside the container is seen on the host, on an interface
 * nothing else uses), pins and state in directories of the test's, the API on
 * a free loopback port, and onStop: remove, so a stop leaves nothing behind.
 */
async function startContainer(t: Test, store: Store, image: string, privileges: string[]): Promise<Runtime> {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = vethPair(t);
  const port = await freePort();
  const config = {
    pinRoot,
    stateDir: state,
    onStop: 'remove',
    log: { level: 'info' },
    objects: [
      {
        name: 'firewall',
        path: 'bpf/firewall.bpf.o',
        attach: [{ program: 'xdp_firewall', type: 'xdp', interface: link.host, mode: 'generic' }],
        maps: FIREWALL_MAPS,
      },
    ],
    // The socket inside the container is of no use to the test: TCP on
    // loopback (host network) with the test token apiClient sends.
    api: {
      socket: null,
      tcp: { host: '127.0.0.1', port },
      tokens: [{ id: 'test', sha256: TEST_TOKEN_SHA256, scope: 'admin' }],
    },
  };
  const configFile = path.join(t.testdir({ 'mimd.yaml': toYaml(config) }), 'mimd.yaml');
  const name = `${path.basename(store.dir)}-${randomBytes(3).toString('hex')}`;
  // Registered after the pins, veth and state directory, so it runs before
  // their removal: the container stops (SIGTERM; onStop: remove) first.
  t.teardown(async () => {
    await podman(store, ['rm', '--force', '--ignore', '--time', '20', name], { allowFail: true, timeoutMs: 60_000 });
  });
  await podman(store, [
    'run',
    '--detach',
    '--name',
    name,
    '--network',
    'host',
    ...privileges,
    ...ulimitArgs(),
    '--volume',
    '/sys/fs/bpf:/sys/fs/bpf',
    '--volume',
    `${state}:${state}`,
    '--volume',
    `${configFile}:${CONFIG_IN_CONTAINER}:ro`,
    image,
    '--config',
    CONFIG_IN_CONTAINER,
  ]);
  const api = apiClient(`http://127.0.0.1:${port}`);
  await waitReady(store, name, api);
  return { name, api, pinRoot, state, link };
}

/** The API inside the container changes the host's kernel: a blocklist slot, read back through the API and with bpftool. */
async function putAndReadBack(t: Test, rt: Runtime): Promise<void> {
  const maps = await rt.api('GET', '/v1/maps');
  t.equal(maps.status, 200, 'GET /v1/maps');
  const names = (maps.body.maps as { name: string }[]).map((m) => m.name).sort();
  t.same(names, ['blocklist', 'policy'], 'the example firewall\'s outer maps');
  const blocklist = (maps.body.maps as { name: string; mapId: number; pinPath: string }[]).find((m) => m.name === 'blocklist');
  t.equal(blocklist?.pinPath, path.join(rt.pinRoot, 'firewall', 'maps', 'blocklist'), 'pinned under the test\'s pin root');
  t.ok(fs.existsSync(path.join(rt.pinRoot, 'firewall', 'maps', 'blocklist')), 'the pin is on the host\'s bpffs');
  t.match(xdpProgram(rt.link.host), { name: 'xdp_firewall', mode: 2 }, 'xdp_firewall attached to the host\'s veth in generic mode');

  const put = await rt.api('PUT', `${BL}/0`, { entries: [{ key: BLOCKED, value: 1 }], labels: { owner: 'container-test' } });
  t.equal(put.status, 201, 'PUT blocklist slot 0: created');
  t.match(put.body, { slot: 0, version: 1, previousVersion: null, entryCount: 1, created: true });
  const innerId = put.body.mapId as number;

  const slot = await rt.api('GET', `${BL}/0`);
  t.equal(slot.status, 200, 'GET the slot back');
  t.match(slot.body, { slot: 0, activeVersion: 1, kernelMapId: innerId, drift: false });
  const entries = await rt.api('GET', `${BL}/0/entries`);
  t.equal(entries.status, 200, 'GET its entries');
  t.same(entries.body, { entries: [{ key: BLOCKED, value: 1 }], nextCursor: null }, 'the entry as it was put');

  // the host's own view, not the daemon's word
  t.same(kernelSlots(blocklist?.mapId ?? -1), { [u32Hex(0)]: innerId }, 'the kernel: slot 0 holds the new inner map');
  t.same(kernelEntries(innerId), { [firewallBytes.source(BLOCKED)]: '01' }, 'the kernel: the inner map holds the address');
}

/** `podman stop` sends SIGTERM: mimd exits 0, and with onStop: remove takes everything it owns with it. */
async function stopAndCheckClean(t: Test, store: Store, rt: Runtime): Promise<void> {
  await podman(store, ['stop', '--time', '20', rt.name], { timeoutMs: 60_000 });
  const info = await inspect(store, rt.name);
  t.equal(info.State.ExitCode, 0, 'mimd exited 0 on SIGTERM');
  const logs = (await podman(store, ['logs', rt.name])).stdout;
  const lines = logs
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string });
  t.equal(lines.at(-1)?.msg, 'stopped', 'the last log line is "stopped"');
  t.equal(xdpProgram(rt.link.host), null, 'xdp_firewall detached from the veth');
  t.same(fs.readdirSync(rt.pinRoot), [], 'nothing left pinned');
  // mimd.lock stays: removing a lock file races with the next process that opens it
  t.same(fs.readdirSync(rt.state).filter((name) => name !== 'mimd.lock'), [], 'no state records left');
}

t.test('the container image: built with podman, run with the host\'s bpffs, serving the API', { skip }, async (t) => {
  // Teardowns run last-added first. This one is added first, so it runs last
  // and reports what the others could not remove.
  const problems: string[] = [];
  t.teardown(() => {
    if (problems.length > 0) throw new Error(`cleanup failed:\n${problems.join('\n')}`);
  });
  const swept = await sweepStaleStores(problems);
  if (swept.length > 0) t.comment(`removed podman stores of earlier runs that did not clean up: ${swept.join(' ')}`);
  const store = podmanStore(t, problems);
  const id = path.basename(store.dir).toLowerCase();
  const base = `localhost/mimd-ct-base:${id}`;
  const image = `localhost/mimd-ct:${id}`;

  const dockerfile = fs.readFileSync(path.join(REPO, 'Dockerfile'), 'utf8');
  t.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m, 'the base image defaults to the public node:20-bookworm-slim');

  let started = Date.now();
  await run(store, 'bash', [BASE_SCRIPT, base], { timeoutMs: 8 * 60_000 });
  t.comment(`stand-in base image: ${((Date.now() - started) / 1000).toFixed(1)} s`);

  started = Date.now();
  fs.mkdirSync(NPM_CACHE, { recursive: true });
  await podman(
    store,
    [
      'build',
      // HEALTHCHECK is a Docker-format field: OCI images drop it
      '--format',
      'docker',
      '--pull=never',
      '--network',
      'host',
      // nothing kept between runs but the caches below: no intermediate images
      '--layers=false',
      '--force-rm',
      ...ulimitArgs(),
      '--build-arg',
      `NODE_IMAGE=${base}`,
      // npm's content-addressed cache, checked against the lock file's integrity hashes
      '--volume',
      `${NPM_CACHE}:/root/.npm`,
      '--tag',
      image,
      '--file',
      path.join(REPO, 'Dockerfile'),
      REPO,
    ],
    { timeoutMs: 10 * 60_000 },
  );
  t.comment(`image build: ${((Date.now() - started) / 1000).toFixed(1)} s`);

  await t.test('the image: slim runtime, entrypoint, healthcheck', async (t) => {
    const [info] = JSON.parse((await podman(store, ['image', 'inspect', image])).stdout) as {
      Size: number;
      Config: { Entrypoint: string[] };
      // podman shows it beside Config, in nanoseconds
      Healthcheck?: { Test: string[]; Interval: number; Timeout: number; StartPeriod: number; Retries: number };
    }[];
    const [baseInfo] = JSON.parse((await podman(store, ['image', 'inspect', base])).stdout) as { Size: number }[];
    t.comment(`image size: ${(info!.Size / 1e6).toFixed(0)} MB, of which the base ${(baseInfo!.Size / 1e6).toFixed(0)} MB`);
    t.same(info?.Config.Entrypoint, ['node', 'dist/daemon/src/main.js']);
    t.match(
      info?.Healthcheck,
      { Test: ['CMD', 'node', '-e', /\/readyz/], Interval: 30e9, Timeout: 5e9, StartPeriod: 30e9, Retries: 3 },
      'a HEALTHCHECK that asks /readyz with node',
    );
    const tools = await podman(store, ['run', '--rm', ...ulimitArgs(), '--entrypoint', 'sh', image, '-c', 'for c in clang gcc g++ make curl; do command -v $c; done; true']);
    t.equal(tools.stdout, '', 'no compilers, make or curl in the runtime image');
    const ldd = await podman(store, ['run', '--rm', ...ulimitArgs(), '--entrypoint', 'ldd', image, 'build/Release/mimd.node']);
    t.notMatch(ldd.stdout, /not found/, 'every library the addon links to is there');
    t.match(ldd.stdout, /libbpf\.so\.1 => /, 'Debian\'s libbpf among them');
  });

  await t.test('privileged', async (t) => {
    const rt = await startContainer(t, store, image, ['--privileged']);
    await putAndReadBack(t, rt);

    const health = await podman(store, ['healthcheck', 'run', rt.name], { allowFail: true });
    t.equal(health.code, 0, `the HEALTHCHECK passes ${health.stdout}${health.stderr}`);
    t.equal((await inspect(store, rt.name)).State.Health?.Status, 'healthy');

    // A mimd that does not answer is unhealthy: stop the process (from the
    // host: in its own PID namespace it is init, which ignores SIGSTOP).
    const pid = (await inspect(store, rt.name)).State.Pid;
    process.kill(pid, 'SIGSTOP');
    let stalled: Result;
    try {
      stalled = await podman(store, ['healthcheck', 'run', rt.name], { allowFail: true, timeoutMs: 30_000 });
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    t.not(stalled.code, 0, 'the HEALTHCHECK fails while mimd does not answer');
    t.equal((await podman(store, ['healthcheck', 'run', rt.name], { allowFail: true })).code, 0, 'and passes again after');

    await stopAndCheckClean(t, store, rt);
  });

  await t.test('only CAP_BPF, CAP_NET_ADMIN, CAP_PERFMON and CAP_SYS_RESOURCE', async (t) => {
    // podman's default seccomp profile allows bpf(2) and perf_event_open(2)
    // only with CAP_SYS_ADMIN, which is exactly what this run leaves out.
    const rt = await startContainer(t, store, image, [
      '--cap-drop',
      'all',
      '--cap-add',
      'BPF,NET_ADMIN,PERFMON,SYS_RESOURCE',
      '--security-opt',
      'seccomp=unconfined',
    ]);
    // CAP_SYS_RESOURCE only where this process has it to give (not in this
    // machine's bounding set: podman drops it without a word)
    const expected = [CAP.NET_ADMIN, CAP.SYS_RESOURCE, CAP.PERFMON, CAP.BPF].filter((bit) => (boundingSet() >> BigInt(bit)) & 1n);
    const caps = await capabilities(store, rt.name);
    t.same(caps, expected, `the container runs with capabilities ${caps.join(', ')} only`);
    t.notOk(caps.includes(CAP.SYS_ADMIN), 'no CAP_SYS_ADMIN');
    await putAndReadBack(t, rt);
    t.equal((await podman(store, ['healthcheck', 'run', rt.name], { allowFail: true })).code, 0, 'the HEALTHCHECK passes');
    await stopAndCheckClean(t, store, rt);
  });
});
