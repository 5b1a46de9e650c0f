// The daemon as a child process, for e2e tests: start it on a config of the
// test's own (API on any free port), wait for "started", talk to it over HTTP,
// stop it with a signal. Also the kernel's view of what it manages, read with
// bpftool and from bpffs, so tests never take the daemon's word for it.
// Needs root, the addon (build/Release/mimd.node) and bpf/firewall.bpf.o.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import * as path from 'node:path';
import { once } from 'node:events';
import { endianness } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { FIREWALL_OBJECT, REPO, ip, stateDir, type NetnsSender, type UdpSink } from './sandbox';
import { ipv4Prefix, ipv4ToBeU32Buffer } from './packet';

/** What the helpers need of a tap test (a structural type: tap's Test has overloads that defeat Parameters<>). */
export interface TestLike {
  teardown(fn: () => void | Promise<void>): void;
  testdir(content?: Record<string, string>): string;
  passing(): boolean;
  name: string;
}

export const MAIN = path.join(REPO, 'dist', 'daemon', 'src', 'main.js');

export const skipUnlessRoot: string | false = process.getuid?.() === 0 ? false : 'needs root (network namespaces, XDP, bpffs)';

/** npm test builds dist first; when a file runs alone, dist may be missing or older than the sources. */
export function ensureBuilt(): void {
  const newest = (dir: string): number =>
    fs
      .readdirSync(dir, { withFileTypes: true, recursive: true })
      .filter((e) => e.isFile() && e.name.endsWith('.ts'))
      .reduce((m, e) => Math.max(m, fs.statSync(path.join(e.parentPath ?? e.path, e.name)).mtimeMs), 0);
  const built = fs.existsSync(MAIN) ? fs.statSync(MAIN).mtimeMs : 0;
  if (built >= newest(path.join(REPO, 'daemon', 'src'))) return;
  try {
    execFileSync(process.execPath, [path.join(REPO, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(REPO, 'tsconfig.json')], {
      stdio: 'pipe',
    });
  } catch (err) {
    // Type errors elsewhere still emit JavaScript; only a missing main.js is fatal here.
    if (!fs.existsSync(MAIN)) throw err;
  }
}

export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([promise, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms).unref())]);
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The XDP program on an interface, as `ip link` reports it. */
export function xdpProgram(ifname: string): { id: number; name: string; mode: number } | null {
  const [link] = JSON.parse(ip('-d', '-j', 'link', 'show', 'dev', ifname)) as {
    xdp?: { mode: number; prog?: { id: number; name: string } };
  }[];
  const prog = link?.xdp?.prog;
  return prog && link.xdp ? { id: prog.id, name: prog.name, mode: link.xdp.mode } : null;
}

/**
 * The `maps` of the firewall object in config/default.yaml: the formats that
 * make the example program's entries typed, `{ key: "192.0.2.7", value: 1 }`
 * in the blocklist and `{ key: "10.0.0.0/8", value: { verdict: "drop" } }` in
 * the policy. An override's `objects` replaces the default list whole, so a
 * test's config has to carry them; they are read from the shipped file so the
 * tests see what an operator gets.
 */
export const FIREWALL_MAPS: Record<string, unknown> = (() => {
  const file = path.join(REPO, 'config', 'default.yaml');
  const config = parseYaml(fs.readFileSync(file, 'utf8')) as { objects?: { name?: string; maps?: Record<string, unknown> }[] };
  const maps = config.objects?.find((o) => o.name === 'firewall')?.maps;
  if (!maps) throw new Error(`${file} declares no maps (formats) for the firewall object`);
  return maps;
})();

/** `enum verdict` of bpf/firewall.h: the policy's value, by name in the API. */
export const VERDICT = { pass: 0, drop: 1 } as const;

/**
 * The example firewall's typed entries as the kernel holds them: hex in
 * memory order, as kernelEntries gives them, for checks that do not take the
 * daemon's word for it.
 */
export const firewallBytes = {
  /** blocklist key: the IPv4 source address in network order */
  source: (addr: string): string => ipv4ToBeU32Buffer(addr).toString('hex'),
  /** policy key: struct policy_key { host-order prefixlen; network-order addr } of "a.b.c.d/n"; host bits kept as given */
  prefix: (cidr: string): string => ipv4Prefix(cidr).toString('hex'),
  /** policy value: struct policy_value { enum verdict }, a host-order u32 */
  verdict: (name: keyof typeof VERDICT): string => u32Hex(VERDICT[name]),
};

export interface FirewallConfigOptions {
  program?: string;
  /** the .bpf.o to load as object `firewall`; bpf/firewall.bpf.o by default */
  objectPath?: string;
  /** where mimd keeps its state files; startDaemon makes one of the test's own when the config has none */
  stateDir?: string;
  /**
   * What SIGTERM does to what mimd owns: `remove` by default here, so a test
   * that does not care about restarts leaves nothing behind; tests of
   * restarts say `keep`.
   */
  onStop?: 'keep' | 'remove';
  /** objects[0].onIncompatiblePin; unset (mimd's default, refuse) unless given */
  onIncompatiblePin?: 'refuse' | 'replace';
  /** the object's `maps` (formats, defaults); FIREWALL_MAPS by default */
  maps?: Record<string, unknown>;
  /** merged over the test API: TCP on loopback, any port, TEST_TOKEN (admin), no rate limit to speak of */
  api?: Record<string, unknown>;
  retain?: number;
  swapQueue?: { capacity: number; concurrency: number };
  logLevel?: string;
}

/**
 * An override config: the example firewall attached in generic mode to
 * `ifname` with the formats of config/default.yaml (typed entries), pins under
 * `pinRoot`, the API on loopback on any free port.
 */
export function firewallConfig(pinRoot: string, ifname: string, options: FirewallConfigOptions | string = {}): Record<string, unknown> {
  const opts: FirewallConfigOptions = typeof options === 'string' ? { program: options } : options;
  return {
    pinRoot,
    ...(opts.stateDir === undefined ? {} : { stateDir: opts.stateDir }),
    onStop: opts.onStop ?? 'remove',
    log: { level: opts.logLevel ?? 'debug' },
    objects: [
      {
        name: 'firewall',
        path: opts.objectPath ?? FIREWALL_OBJECT,
        attach: [{ program: opts.program ?? 'xdp_firewall', type: 'xdp', interface: ifname, mode: 'generic' }],
        maps: opts.maps ?? FIREWALL_MAPS,
        ...(opts.onIncompatiblePin === undefined ? {} : { onIncompatiblePin: opts.onIncompatiblePin }),
      },
    ],
    api: {
      socket: null,
      tcp: { host: '127.0.0.1', port: 0 },
      tokens: [{ id: 'test', sha256: TEST_TOKEN_SHA256, scope: 'admin' }],
      rateLimit: { max: 1_000_000, windowMs: 1000 },
      ...(opts.api ?? {}),
    },
    ...(opts.retain === undefined ? {} : { retain: opts.retain }),
    ...(opts.swapQueue === undefined ? {} : { swapQueue: opts.swapQueue }),
  };
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  child: ChildProcess;
  /** the override file the daemon was started with (rewrite it and SIGHUP to reload) */
  configFile: string;
  /** the configuration as written to configFile (with the state directory the helper chose) */
  config: Record<string, unknown>;
  /** every JSON line the daemon wrote to stdout so far */
  logs: Record<string, unknown>[];
  stderr: () => string;
  /** resolves with the first log line whose msg is `msg` */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  exited: Promise<Exit>;
}

export interface StartOptions {
  /** extra environment, e.g. MIMD_PAUSE_AT */
  env?: Record<string, string>;
  /** log lines printed when the test failed (default 40) */
  logTail?: number;
}

/**
 * The config as written for the daemon: with a state directory of the
 * test's own when it names none, so no test writes to the host's
 * /var/lib/mimd.
 */
function withStateDir(t: TestLike, config: object): object {
  return 'stateDir' in config ? config : { ...config, stateDir: stateDir(t) };
}

/** This process's environment without what would change how mimd runs: the config file, a crash point. */
function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, MIMD_CONFIG: '' };
  delete env.MIMD_PAUSE_AT;
  return env;
}

/** Writes `config` to a test directory: the mimd.yaml path and what it holds. */
function writeConfig(t: TestLike, config: object): { file: string; written: Record<string, unknown> } {
  const written = withStateDir(t, config) as Record<string, unknown>;
  const dir = t.testdir({ 'mimd.yaml': JSON.stringify(written, null, 2) });
  return { file: path.join(dir, 'mimd.yaml'), written };
}

/**
 * Starts `node dist/daemon/src/main.js --config <file>` with `config` written
 * to a test directory. Teardown kills it if it is still alive; when the test
 * failed, its last log lines and stderr are printed for diagnosis.
 */
export function startDaemon(t: TestLike, config: object, options: StartOptions = {}): Daemon {
  const { file, written } = writeConfig(t, config);
  const dir = path.dirname(file);
  const child = spawn(process.execPath, [MAIN, '--config', file], {
    cwd: dir, // object paths must not depend on the current directory
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...daemonEnv(), ...(options.env ?? {}) },
  });
  const exited: Promise<Exit> = once(child, 'exit').then(([code, signal]) => ({
    code: code as number | null,
    signal: signal as NodeJS.Signals | null,
  }));
  // When tap times a file out it ends this process without running teardowns:
  // the daemon must not outlive it (its pins and interfaces still do).
  const killOnExit = (): void => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  process.once('exit', killOnExit);
  void exited.then(() => process.removeListener('exit', killOnExit));

  const logs: Record<string, unknown>[] = [];
  const waiters: { msg: string; resolve: (line: Record<string, unknown>) => void }[] = [];
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    stdout += chunk;
    let newline: number;
    while ((newline = stdout.indexOf('\n')) >= 0) {
      const text = stdout.slice(0, newline);
      stdout = stdout.slice(newline + 1);
      let line: Record<string, unknown>;
      try {
        line = JSON.parse(text) as Record<string, unknown>;
      } catch {
        line = { msg: '(not JSON)', text };
      }
      logs.push(line);
      for (const w of waiters.filter((w) => w.msg === line.msg)) w.resolve(line);
    }
  });
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));

  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
    if (!t.passing()) {
      const tail = logs.slice(-(options.logTail ?? 40)).map((l) => JSON.stringify(l));
      process.stderr.write(
        `\n--- mimd (pid ${child.pid}) of failed test "${t.name}": last ${tail.length} of ${logs.length} log lines ---\n` +
          `${tail.join('\n')}\n--- stderr ---\n${stderr}\n--- end ---\n`,
      );
    }
  });

  return {
    child,
    configFile: file,
    config: written,
    logs,
    stderr: () => stderr,
    exited,
    waitForLog(msg, timeoutMs = 20_000) {
      const seen = logs.find((l) => l.msg === msg);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no "${msg}" log within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs);
        waiters.push({ msg, resolve: (line) => (clearTimeout(timer), resolve(line)) });
        void exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`daemon exited (${code ?? signal}) before "${msg}"; stderr: ${stderr}; logs: ${JSON.stringify(logs)}`));
        });
      });
    },
  };
}

export interface ApiResponse<T = any> {
  status: number;
  /** lower-case names */
  headers: Record<string, string>;
  /** parsed JSON when the response is JSON, else the text */
  body: T;
}

/**
 * One request. An object body is sent as JSON; a string body is sent as is
 * with Content-Type application/json (for malformed JSON); no body, no
 * Content-Type.
 */
export type Api = (method: string, urlPath: string, body?: unknown, headers?: Record<string, string>) => Promise<ApiResponse>;

export interface RunningDaemon extends Daemon {
  port: number;
  baseUrl: string;
  /** the "started" log line */
  started: Record<string, unknown>;
  api: Api;
  /** Sends `signal` to the daemon's pid and resolves with its exit. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<Exit>;
}

/**
 * The bearer token of firewallConfig's API (scope admin). apiClient sends it
 * unless a request sets its own `authorization` header ('' sends none).
 */
export const TEST_TOKEN = 'mimd-e2e-test-token-not-a-secret';
export const TEST_TOKEN_SHA256 = createHash('sha256').update(TEST_TOKEN).digest('hex');

export function apiClient(baseUrl: string, token: string | null = TEST_TOKEN): Api {
  return async (method, urlPath, body, headers = {}) => {
    const sent: Record<string, string> = { ...headers };
    if (sent.authorization === undefined && token !== null) sent.authorization = `Bearer ${token}`;
    if (sent.authorization === '') delete sent.authorization;
    const init: RequestInit = { method, headers: sent };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(`${baseUrl}${urlPath}`, init);
    const text = await res.text();
    const out: Record<string, string> = {};
    res.headers.forEach((value, name) => (out[name] = value));
    let parsed: unknown = text;
    if ((out['content-type'] ?? '').startsWith('application/json') && text !== '') parsed = JSON.parse(text);
    return { status: res.status, headers: out, body: parsed };
  };
}

/** Where nodeApiClient sends requests: a unix socket, or HTTPS trusting `ca` (node's own CAs without it). */
export type ApiTarget = { socketPath: string } | { host: string; port: number; ca?: Buffer | string };

/**
 * apiClient over node:http or node:https, for what fetch cannot reach without
 * extra packages: the unix socket, and TLS with a CA of the test's own.
 * `token` null sends no Authorization unless a request sets one.
 */
export function nodeApiClient(target: ApiTarget, token: string | null = null): Api {
  return (method, urlPath, body, headers = {}) => {
    const sent: Record<string, string> = { ...headers };
    if (sent.authorization === undefined && token !== null) sent.authorization = `Bearer ${token}`;
    if (sent.authorization === '') delete sent.authorization;
    const payload = body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body);
    if (payload !== undefined) {
      sent['content-type'] ??= 'application/json';
      sent['content-length'] = String(Buffer.byteLength(payload));
    }
    return new Promise<ApiResponse>((resolve, reject) => {
      const done = (res: http.IncomingMessage): void => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('error', reject);
        res.on('end', () => {
          const out: Record<string, string> = {};
          for (const [name, value] of Object.entries(res.headers)) if (value !== undefined) out[name] = Array.isArray(value) ? value.join(', ') : value;
          let parsed: unknown = text;
          if ((out['content-type'] ?? '').startsWith('application/json') && text !== '') parsed = JSON.parse(text);
          resolve({ status: res.statusCode ?? 0, headers: out, body: parsed });
        });
      };
      const request =
        'socketPath' in target
          ? http.request({ socketPath: target.socketPath, method, path: urlPath, headers: sent, agent: false }, done)
          : https.request({ host: target.host, port: target.port, ...(target.ca === undefined ? {} : { ca: target.ca }), method, path: urlPath, headers: sent, agent: false }, done);
      request.on('error', reject);
      request.end(payload);
    });
  };
}

/** startDaemon, then waits for "started" and reads the port it listens on. */
export async function startApi(t: TestLike, config: object, options: StartOptions = {}): Promise<RunningDaemon> {
  const daemon = startDaemon(t, config, options);
  return withApi(daemon, await daemon.waitForLog('started'));
}

/** A daemon that logged `started`: its API client, from the address in that line. */
export function withApi(daemon: Daemon, started: Record<string, unknown>): RunningDaemon {
  const listen = (started.listen as ({ address: string; family: string; port: number } | string)[] | undefined)?.filter(
    (l): l is { address: string; family: string; port: number } => typeof l === 'object',
  );
  const first = listen?.find((l) => l.family === 'IPv4') ?? listen?.[0];
  if (!first) throw new Error(`"started" has no listen address: ${JSON.stringify(started)}`);
  const host = first.family === 'IPv6' ? `[${first.address}]` : first.address;
  const baseUrl = `http://${host}:${first.port}`;
  return {
    ...daemon,
    port: first.port,
    baseUrl,
    started,
    api: apiClient(baseUrl),
    async stop(signal = 'SIGTERM', timeoutMs = 10_000) {
      if (daemon.child.exitCode === null && daemon.child.signalCode === null) daemon.child.kill(signal);
      return withTimeout(daemon.exited, timeoutMs, `daemon exit after ${signal}`);
    },
  };
}

export interface CommandResult extends Exit {
  logs: Record<string, unknown>[];
  stderr: string;
}

/**
 * Runs mimd as a one-shot command (`purge`) on `config` and resolves once it
 * exited: `node dist/daemon/src/main.js <args...> --config <file>`.
 */
export async function runMimd(t: TestLike, args: string[], config: object, timeoutMs = 20_000): Promise<CommandResult> {
  const { file } = writeConfig(t, config);
  const child = spawn(process.execPath, [MAIN, ...args, '--config', file], {
    cwd: path.dirname(file),
    stdio: ['ignore', 'pipe', 'pipe'],
    env: daemonEnv(),
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const [code, signal] = (await withTimeout(once(child, 'close'), timeoutMs, `mimd ${args.join(' ')}`).catch((err: unknown) => {
    child.kill('SIGKILL');
    throw err;
  })) as [number | null, NodeJS.Signals | null];
  const logs = stdout
    .split('\n')
    .filter((line) => line !== '')
    .map((text) => {
      try {
        return JSON.parse(text) as Record<string, unknown>;
      } catch {
        return { msg: '(not JSON)', text };
      }
    });
  return { code, signal, logs, stderr };
}

// ---------------------------------------------------------------------------
// The kernel's view, independent of the daemon.

export function bpftool(...args: string[]): unknown {
  const out = execFileSync('bpftool', ['-j', ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return out.trim() === '' ? null : JSON.parse(out);
}

const bytesOf = (hexBytes: string[]): Buffer => Buffer.from(hexBytes.map((b) => parseInt(b, 16)));

function slotsOf(dump: { key: string[]; value: string[] }[] | null): Record<string, number> {
  const slots: Record<string, number> = {};
  for (const { key, value } of dump ?? []) slots[bytesOf(key).toString('hex')] = bytesOf(value).readUInt32LE(0);
  return slots;
}

/** Every slot of an outer map as the kernel holds it: key (hex, memory order) -> inner map id. */
export function kernelSlots(outerMapId: number): Record<string, number> {
  return slotsOf(bpftool('map', 'dump', 'id', String(outerMapId)) as { key: string[]; value: string[] }[] | null);
}

/** kernelSlots of many outer maps at once: map id -> slots. */
export function kernelSlotsOf(outerMapIds: number[]): Record<number, Record<string, number>> {
  const dumps = bpftoolEach(outerMapIds.map((id) => ['map', 'dump', 'id', String(id)]));
  return Object.fromEntries(outerMapIds.map((id, i) => [id, slotsOf(dumps[i] as { key: string[]; value: string[] }[] | null)]));
}

/**
 * Several bpftool commands, one process each: one output per command, in
 * order. Not `bpftool batch`: Debian's bpftool 7.1.0+6.1.176-1 ends a batch
 * that dumps an inner map with BTF with "reading batch file failed: Bad file
 * descriptor" and exit 255, after printing every output. A bpftool process
 * costs about 2 ms, so a test reading many maps stays fast without it.
 */
export function bpftoolEach(commands: string[][]): unknown[] {
  return commands.map((command) => bpftool(...command));
}

function entriesOf(dump: { key: string[]; value: string[] }[] | null): Record<string, string> {
  const entries: Record<string, string> = {};
  for (const { key, value } of dump ?? []) entries[bytesOf(key).toString('hex')] = bytesOf(value).toString('hex');
  return entries;
}

/** Every entry of a (non-per-CPU) map: key hex -> value hex, both in memory order. */
export function kernelEntries(mapId: number): Record<string, string> {
  return entriesOf(bpftool('map', 'dump', 'id', String(mapId)) as { key: string[]; value: string[] }[] | null);
}

/** kernelEntries of many maps at once: map id -> entries. */
export function kernelEntriesOf(mapIds: number[]): Record<number, Record<string, string>> {
  const dumps = bpftoolEach(mapIds.map((id) => ['map', 'dump', 'id', String(id)]));
  return Object.fromEntries(mapIds.map((id, i) => [id, entriesOf(dumps[i] as { key: string[]; value: string[] }[] | null)]));
}

/** `bpftool map show id`, or null when no map has that id (any more). */
export function kernelMap(mapId: number): { id: number; type: string; name?: string; max_entries: number; flags: number } | null {
  try {
    return bpftool('map', 'show', 'id', String(mapId)) as { id: number; type: string; max_entries: number; flags: number };
  } catch {
    return null;
  }
}

/** Puts map `innerId` into slot `key` of an outer map behind the daemon's back. */
export function setSlotBehindBack(outerMapId: number, key: Buffer, innerId: number): void {
  execFileSync('bpftool', ['map', 'update', 'id', String(outerMapId), 'key', ...[...key].map(String), 'value', 'id', String(innerId)], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

/** Every path under `dir`, relative and sorted (bpffs pins and directories). */
export function listPins(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).map(String).sort();
}

/** A u32 in host byte order as hex, the way the daemon names slot pin directories and bpftool keys. */
export function u32Hex(value: number): string {
  const b = Buffer.alloc(4);
  if (endianness() === 'LE') b.writeUInt32LE(value >>> 0);
  else b.writeUInt32BE(value >>> 0);
  return b.toString('hex');
}

/** `bpftool map show pinned <path>`. */
export function pinnedMap(pinPath: string): { id: number; type: string; name?: string; max_entries: number; flags: number } {
  return bpftool('map', 'show', 'pinned', pinPath) as { id: number; type: string; max_entries: number; flags: number };
}

/** `bpftool link show pinned <path>`: the link's id and the program it runs. */
export function pinnedLink(pinPath: string): { id: number; prog_id: number; type: string } {
  return bpftool('link', 'show', 'pinned', pinPath) as { id: number; prog_id: number; type: string };
}

/** `bpftool prog show id`: its tag (a hash of the instructions) and the maps it uses. */
export function kernelProgram(programId: number): { id: number; tag: string; name: string; map_ids: number[] } | null {
  try {
    return bpftool('prog', 'show', 'id', String(programId)) as { id: number; tag: string; name: string; map_ids: number[] };
  } catch {
    return null;
  }
}

type BpfKind = 'map' | 'prog' | 'link';

/**
 * Polls the kernel's own lists (`bpftool map show`, `prog show`, `link
 * show`) until none of `ids` is in them (the kernel frees maps and programs
 * after an RCU grace period, asynchronously) or `timeoutMs` passed; resolves
 * with those still there, by kind (empty: all gone).
 */
export async function stillInKernel(ids: Partial<Record<BpfKind, Iterable<number>>>, timeoutMs = 3_000): Promise<Partial<Record<BpfKind, number[]>>> {
  const kinds = (Object.keys(ids) as BpfKind[]).filter((k) => [...ids[k]!].length > 0);
  const wanted = Object.fromEntries(kinds.map((k) => [k, [...new Set(ids[k])]])) as Record<BpfKind, number[]>;
  for (const deadline = Date.now() + timeoutMs; ; await sleep(25)) {
    const lists = bpftoolEach(kinds.map((k) => [k, 'show'])) as ({ id: number }[] | null)[];
    const left: Partial<Record<BpfKind, number[]>> = {};
    kinds.forEach((k, i) => {
      const present = new Set((lists[i] ?? []).map((o) => o.id));
      const still = wanted[k].filter((id) => present.has(id)).sort((a, b) => a - b);
      if (still.length > 0) left[k] = still;
    });
    if (Object.keys(left).length === 0 || Date.now() > deadline) return left;
  }
}

/**
 * The bpf objects a process holds open, from /proc/<pid>/fdinfo: the ids of
 * its maps, programs and links. Read before killing a daemon, to check
 * afterwards that what it alone held is gone.
 */
export function processBpfIds(pid: number): { maps: number[]; progs: number[]; links: number[] } {
  const out = { maps: [] as number[], progs: [] as number[], links: [] as number[] };
  let fds: string[];
  try {
    fds = fs.readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    let info: string;
    try {
      info = fs.readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
    } catch {
      continue; // closed while listing
    }
    const id = (field: string): number | null => {
      const match = new RegExp(`^${field}:\\s+(\\d+)$`, 'm').exec(info);
      return match ? Number(match[1]) : null;
    };
    const map = id('map_id');
    const prog = id('prog_id');
    const link = id('link_id');
    if (link !== null) out.links.push(link);
    else if (map !== null) out.maps.push(map);
    else if (prog !== null) out.progs.push(prog);
  }
  return out;
}

/** The pins (files, not directories) under `dir`, relative and sorted. */
export function pinLeaves(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map(String)
    .filter((p) => !fs.statSync(path.join(dir, p)).isDirectory())
    .sort();
}

/** Directories under `dir` with nothing in them, relative and sorted. */
export function emptyPinDirs(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[])
    .map(String)
    .filter((p) => fs.statSync(path.join(dir, p)).isDirectory() && fs.readdirSync(path.join(dir, p)).length === 0)
    .sort();
}

const countersMapOf = new Map<number, number>();

/**
 * Sums over CPUs of the firewall's per-CPU counters of the program
 * `programId`: [passed, dropped by blocklist, dropped by policy].
 */
export function firewallCounters(programId: number): number[] {
  let id = countersMapOf.get(programId);
  if (id === undefined) {
    const prog = kernelProgram(programId);
    if (!prog) throw new Error(`no program ${programId} in the kernel`);
    id = prog.map_ids.find((m) => kernelMap(m)?.name === 'counters');
    if (id === undefined) throw new Error(`program ${programId} uses no map named counters`);
    countersMapOf.set(programId, id);
  }
  const dump = bpftool('map', 'dump', 'id', String(id)) as { key: string[]; values: { cpu: number; value: string[] }[] }[];
  const sums = [0, 0, 0];
  for (const { key, values } of dump) {
    const index = bytesOf(key).readUInt32LE(0);
    for (const { value } of values) sums[index] = (sums[index] ?? 0) + Number(bytesOf(value).readBigUInt64LE(0));
  }
  return sums;
}

/** What the example firewall does to a source: lets it through, or drops it by one of its two maps. */
export type Verdict = 'pass' | 'blocklist' | 'policy';
const COUNTER_OF = { blocklist: 1, policy: 2 } as const;

export interface TrafficProbe {
  /** the interface the firewall is attached to (the host end) */
  ifname: string;
  sender: NetnsSender;
  sink: UdpSink;
}

let probeTags = 0;

export interface ProbeOptions {
  /** datagrams per source (default 5) */
  count?: number;
  /** what one frame adds to its counter: 1, or FIREWALL_COUNT_STEP of the build (test/fixtures/firewall_v2: 2) */
  counterStep?: number;
  timeoutMs?: number;
}

/**
 * Sends `count` datagrams from each source and checks what the attached
 * firewall does to them, from the kernel's side: a passing source's
 * datagrams all arrive; a dropped source's are all counted by the program as
 * dropped by the expected map, and none arrives. Returns the failures as text
 * (empty when all is as expected), so a caller decides how to report them.
 */
export async function probeVerdicts(probe: TrafficProbe, expected: Record<string, Verdict>, options: ProbeOptions = {}): Promise<string[]> {
  const { count = 5, counterStep = 1, timeoutMs = 5_000 } = options;
  const prog = xdpProgram(probe.ifname);
  const drops = Object.values(expected).some((verdict) => verdict !== 'pass');
  if (!prog && drops) return [`no XDP program on ${probe.ifname}`];
  // Without a program there is nothing to count: every datagram must arrive.
  const counters = (): number[] => (prog ? firewallCounters(prog.id) : [0, 0, 0]);
  const before = counters();
  const tags: Record<string, string> = {};
  for (const source of Object.keys(expected)) tags[source] = `v${++probeTags}${process.pid.toString(36)}`;
  await Promise.all(Object.keys(expected).map((source) => probe.sender.send(tags[source]!, count, source)));
  const wantDrops = { blocklist: 0, policy: 0 };
  for (const verdict of Object.values(expected)) if (verdict !== 'pass') wantDrops[verdict] += count * counterStep;
  const arrived = (source: string): number => probe.sink.count(tags[source]!, source);
  let now = before;
  const dropped = (by: 'blocklist' | 'policy'): number => (now[COUNTER_OF[by]] ?? 0) - (before[COUNTER_OF[by]] ?? 0);
  const settled = (): boolean => {
    now = counters();
    return (
      Object.entries(expected).every(([source, verdict]) => verdict !== 'pass' || arrived(source) >= count) &&
      dropped('blocklist') >= wantDrops.blocklist &&
      dropped('policy') >= wantDrops.policy
    );
  };
  for (const deadline = Date.now() + timeoutMs; !settled() && Date.now() < deadline; ) await sleep(5);
  // A datagram the program passed reaches the socket within microseconds;
  // give any that should not have been let through the chance to show up.
  await sleep(10);
  now = counters();
  const failures: string[] = [];
  for (const [source, verdict] of Object.entries(expected)) {
    if (verdict === 'pass' && arrived(source) !== count) failures.push(`${source} should pass: ${arrived(source)} of ${count} arrived`);
    if (verdict !== 'pass' && arrived(source) !== 0) failures.push(`${source} should be dropped by the ${verdict}: ${arrived(source)} of ${count} arrived`);
  }
  for (const by of ['blocklist', 'policy'] as const) {
    if (dropped(by) !== wantDrops[by]) failures.push(`the program counted ${dropped(by)} drops by the ${by}, expected ${wantDrops[by]}`);
  }
  if (xdpProgram(probe.ifname)?.id !== prog?.id) failures.push(`the program on ${probe.ifname} changed during the probe`);
  return failures;
}

// ---------------------------------------------------------------------------
// Audit records and metrics, as the daemon writes and serves them.

/** Every record of an audit file (JSON lines); [] while the file does not exist. */
export function readAudit(file: string): Record<string, any>[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter((line) => line !== '')
    .map((line) => JSON.parse(line) as Record<string, any>);
}

/**
 * Waits until the audit file holds at least `count` records (a record is
 * written once the response is on its way, so it may trail the response a
 * little), then a moment more for any record that should not be there.
 */
export async function waitForAudit(file: string, count: number, timeoutMs = 3_000): Promise<Record<string, any>[]> {
  for (const deadline = Date.now() + timeoutMs; readAudit(file).length < count && Date.now() < deadline; ) await sleep(20);
  await sleep(100);
  return readAudit(file);
}

export interface MetricSample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** The samples of a Prometheus text exposition. */
export function metricSamples(text: string): MetricSample[] {
  const samples: MetricSample[] = [];
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)/.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[key!] = value!;
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}

/** The value of the sample `name` whose labels include `labels`; null when there is none. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | null {
  const sample = metricSamples(text).find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  return sample ? sample.value : null;
}

export interface FirewallKernelView {
  /** slot key (hex, memory order) -> inner map id, per outer map */
  blocklist: Record<string, number>;
  policy: Record<string, number>;
  /** the entries of every inner map in a slot: map id -> key hex -> value hex */
  entries: Record<number, Record<string, string>>;
}

/**
 * Everything the example firewall's outer maps hold under `pinRoot`, read
 * with bpftool: to check that a refused request changed
 * nothing, without asking the daemon.
 */
export function firewallKernelView(pinRoot: string): FirewallKernelView {
  const pin = (map: string): string => path.join(pinRoot, 'firewall', 'maps', map);
  const [blocklist, policy] = bpftoolEach([
    ['map', 'dump', 'pinned', pin('blocklist')],
    ['map', 'dump', 'pinned', pin('policy')],
  ]).map((dump) => slotsOf(dump as { key: string[]; value: string[] }[] | null)) as [Record<string, number>, Record<string, number>];
  const inner = [...new Set([...Object.values(blocklist), ...Object.values(policy)])].sort((a, b) => a - b);
  return { blocklist, policy, entries: kernelEntriesOf(inner) };
}
