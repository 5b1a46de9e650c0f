// config/mimd.service: systemd's own checks (`systemd-analyze verify`, and the
// exposure score of `systemd-analyze security --offline`), and the settings
// the unit must keep: only the four capabilities, a read-only system with the
// pin root, /run/mimd and the state directory writable, bpf(2) allowed.
// Needs systemd-analyze (Debian package systemd), no root and no running systemd.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';

const REPO = path.resolve(__dirname, '..', '..');
const UNIT = path.join(REPO, 'config', 'mimd.service');
const NODE = '/usr/bin/node';

/**
 * The highest `systemd-analyze security` exposure accepted: what the unit
 * scores with systemd 252 (Debian 12). The score has one decimal; dropping
 * most single sandboxing lines costs 0.1 or more (a few, such as
 * LockPersonality= or UMask=, weigh less and are checked by name below).
 * Another systemd version may weigh the checks differently: measure again
 * there (`systemd-analyze security --offline=yes config/mimd.service`).
 */
const MAX_EXPOSURE = 2.3;

const CAPABILITIES = ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON', 'CAP_SYS_RESOURCE'];

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

function analyze(...args: string[]): { status: number | null; output: string } {
  const r = spawnSync('systemd-analyze', ['--no-pager', ...args], {
    encoding: 'utf8',
    env: { ...process.env, SYSTEMD_COLORS: '0', SYSTEMD_LOG_COLOR: '0' },
  });
  if (r.error) throw new Error(`systemd-analyze: ${r.error.message} (Debian: apt-get install systemd)`);
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

/**
 * The unit in a directory of the test's own, as systemd-analyze should see it.
 * `verify` refuses a unit whose ExecStart= binary does not exist, and the unit
 * names /usr/bin/node as an operator's machine has it: where Node lives
 * elsewhere (nvm, a CI image), only that path is replaced by this Node. The
 * file keeps its name, which is the unit's name.
 */
function unitCopy(t: Test): string {
  let text = fs.readFileSync(UNIT, 'utf8');
  let executable = true;
  try {
    fs.accessSync(NODE, fs.constants.X_OK);
  } catch {
    executable = false;
  }
  if (!executable) text = text.replace(/^ExecStart=\/usr\/bin\/node /m, `ExecStart=${process.execPath} `);
  const dir = t.testdir({ 'mimd.service': text });
  return path.join(dir, 'mimd.service');
}

/** [Service] (or another section) as key -> every value assigned, in order; comments dropped. */
function section(name: string): Map<string, string[]> {
  const settings = new Map<string, string[]>();
  let current = '';
  for (const raw of fs.readFileSync(UNIT, 'utf8').split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1] ?? '';
      continue;
    }
    if (current !== name) continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`${UNIT}: not a setting: ${raw}`);
    const key = line.slice(0, eq).trim();
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1).trim()]);
  }
  return settings;
}

/** The space-separated items of every assignment of `key`; an empty assignment resets the list, as in systemd. */
function items(settings: Map<string, string[]>, key: string): string[] {
  let out: string[] = [];
  for (const value of settings.get(key) ?? []) out = value === '' ? [] : [...out, ...value.split(/\s+/)];
  return out;
}

const service = section('Service');

t.test('systemd-analyze verify reports nothing about the unit', async (t) => {
  const file = unitCopy(t);
  const { status, output } = analyze('verify', file);
  t.equal(status, 0, output);
  // verify exits 0 on unknown keys and unparsable values: the messages are what tell.
  const complaints = output.split('\n').filter((line) => line.includes('mimd.service'));
  t.same(complaints, [], 'no warning names mimd.service');
});

// --offline came with systemd 250: older ones can only rate units a running manager has loaded.
const offline = analyze('--help').output.includes('--offline')
  ? false
  : `systemd-analyze has no --offline (needs systemd >= 250): ${analyze('--version').output.split('\n')[0]}`;

t.test('exposure score of systemd-analyze security --offline', { skip: offline }, async (t) => {
  const file = unitCopy(t);
  const { status, output } = analyze('security', '--offline=yes', file);
  t.equal(status, 0, output);
  const overall = /Overall exposure level for mimd\.service: (\d+(?:\.\d+)?) (\S+)/.exec(output);
  if (!overall) {
    t.fail(`no "Overall exposure level" line in:\n${output}`);
    return;
  }
  const score = Number(overall[1]);
  t.ok(score <= MAX_EXPOSURE, `exposure ${score} ${overall[2]} is at most ${MAX_EXPOSURE}`);
});

t.test('only the four capabilities, in both sets', async (t) => {
  for (const key of ['CapabilityBoundingSet', 'AmbientCapabilities']) {
    const caps = items(service, key);
    t.notOk(
      caps.some((c) => c.startsWith('~')),
      `${key} lists what is granted, not what is taken away`,
    );
    t.same([...caps].sort(), [...CAPABILITIES].sort(), key);
  }
  t.same(service.get('NoNewPrivileges'), ['yes']);
});

t.test('the system is read-only but for the pin root, /run/mimd and the state directory', async (t) => {
  t.same(service.get('ProtectSystem'), ['strict']);
  // The unit must open what mimd uses by default: the paths in config/default.yaml.
  const defaults = parseYaml(fs.readFileSync(path.join(REPO, 'config', 'default.yaml'), 'utf8')) as { pinRoot: string; stateDir: string };
  t.equal(defaults.pinRoot, '/sys/fs/bpf/mimd');
  t.equal(defaults.stateDir, '/var/lib/mimd');
  // "-" (ignore if missing) and "+" (relative to RootDirectory=) are prefixes, not part of the path.
  const writable = items(service, 'ReadWritePaths').map((p) => p.replace(/^[-+]+/, ''));
  const covered = (dir: string): boolean => writable.some((w) => dir === w || dir.startsWith(`${w}/`));
  for (const dir of [defaults.pinRoot, '/run/mimd', defaults.stateDir]) t.ok(covered(dir), `ReadWritePaths covers ${dir}`);
  t.notOk(covered('/sys/fs/bpf/other'), 'not all of bpffs: other software pins there too');
  // The pin root must exist before systemd builds the namespace, and / is read-only by then.
  t.ok(
    (service.get('ExecStartPre') ?? []).some((cmd) => /^\+\S*mkdir -p -m 0700 \/sys\/fs\/bpf\/mimd$/.test(cmd)),
    'a privileged ExecStartPre creates the pin root 0700',
  );
  t.same(service.get('RuntimeDirectory'), ['mimd']);
  t.same(service.get('RuntimeDirectoryMode'), ['0750']);
  t.same(service.get('StateDirectory'), ['mimd']);
  t.same(service.get('StateDirectoryMode'), ['0700']);
  t.same(service.get('UMask'), ['0077']);
});

t.test('the system call filter allows bpf and perf_event_open', async (t) => {
  const filters = service.get('SystemCallFilter') ?? [];
  t.ok(filters[0] !== undefined && !filters[0].startsWith('~'), 'an allow list');
  const allowed = filters.filter((f) => !f.startsWith('~')).flatMap((f) => f.split(/\s+/));
  const denied = filters.filter((f) => f.startsWith('~')).flatMap((f) => f.slice(1).split(/\s+/));
  t.ok(allowed.includes('@system-service'));
  for (const call of ['bpf', 'perf_event_open']) {
    t.ok(allowed.includes(call), `${call} allowed`);
    t.notOk(denied.includes(call), `${call} not taken away again`);
  }
  t.notOk(denied.includes('@privileged'), 'bpf is in @privileged');
  t.notOk(denied.includes('@debug'), 'perf_event_open is in @debug');
  t.same(service.get('SystemCallArchitectures'), ['native']);
});

t.test('the other hardening and service settings', async (t) => {
  const expected: Record<string, string> = {
    Type: 'exec',
    User: 'root',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    PrivateDevices: 'yes',
    DevicePolicy: 'closed',
    ProtectKernelTunables: 'yes',
    ProtectKernelModules: 'yes',
    ProtectKernelLogs: 'yes',
    ProtectControlGroups: 'yes',
    ProtectClock: 'yes',
    ProtectHostname: 'yes',
    RestrictNamespaces: 'yes',
    RestrictRealtime: 'yes',
    RestrictSUIDSGID: 'yes',
    LockPersonality: 'yes',
    LimitMEMLOCK: 'infinity',
    LimitNOFILE: '65536',
    Restart: 'on-failure',
    ExecReload: '/bin/kill -HUP $MAINPID',
  };
  for (const [key, value] of Object.entries(expected)) t.same(service.get(key), [value], key);
  t.same(items(service, 'RestrictAddressFamilies').sort(), ['AF_INET', 'AF_INET6', 'AF_NETLINK', 'AF_UNIX']);
  // V8's JIT writes code and then runs it: with this setting Node cannot start.
  t.notOk(service.has('MemoryDenyWriteExecute'), 'no MemoryDenyWriteExecute');
  // mimd stops within 10 s of SIGTERM; systemd must wait longer before SIGKILL.
  const stop = /^(\d+)s$/.exec(service.get('TimeoutStopSec')?.[0] ?? '');
  t.ok(stop && Number(stop[1]) > 10, 'TimeoutStopSec above 10 s');
  const [start] = service.get('ExecStart') ?? [];
  t.match(start, /^\/usr\/bin\/node \S+\/dist\/daemon\/src\/main\.js --config \S+$/);
});
