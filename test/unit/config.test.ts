// Configuration: the embedded defaults, override merging, and errors that name
// the bad key, what was expected, and the file and line it came from.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ConfigError, defaultConfigFile, deepMerge, formatPath, loadConfig } from '../../daemon/src/config/load';

const REPO = path.resolve(__dirname, '..', '..');

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** A package root of the test's own, with empty object files to point at. */
function root(t: Test, files: Record<string, string> = {}): string {
  return t.testdir({
    bpf: { 'firewall.bpf.o': '', 'other.bpf.o': '' },
    ...files,
  });
}

/** Loads `yaml` as the override file; returns the config or the ConfigError. */
function load(t: Test, yaml: string, options: { defaultFile?: string } = {}) {
  const dir = root(t, { 'override.yaml': yaml });
  const file = path.join(dir, 'override.yaml');
  const run = () => loadConfig(file, { baseDir: dir, ...options });
  return { dir, file, run };
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  throw new Error('expected a ConfigError');
}

/** The keys a defaults file must have besides those a test is about. */
const API_DEFAULTS =
  'stateDir: /var/lib/mimd\nstateFsync: false\nonStop: keep\n' +
  'api:\n  socket: { path: /run/mimd/mimd.sock, group: null, scope: admin }\n  tcp: null\n  bodyLimit: 1048576\n' +
  '  maxEntries: 1000\n  rateLimit: { max: 100, windowMs: 1000 }\n  requestTimeoutMs: 30000\n' +
  'audit:\n  destination: stdout\n' +
  'retain: 3\nswapQueue:\n  capacity: 16\n  concurrency: 1\n';

const ONE_OBJECT = (attach: string) => `
objects:
  - name: fw
    path: bpf/firewall.bpf.o
    attach:
${attach}
`;

t.test('the embedded default is valid and harmless: xdp_firewall on lo, generic mode', async (t) => {
  t.equal(defaultConfigFile(), path.join(REPO, 'config', 'default.yaml'));
  const dir = root(t);
  const config = loadConfig(undefined, { baseDir: dir });
  t.same(config, {
    pinRoot: '/sys/fs/bpf/mimd',
    stateDir: '/var/lib/mimd',
    stateFsync: false,
    onStop: 'keep',
    log: { level: 'info' },
    objects: [
      {
        name: 'firewall',
        path: path.join(dir, 'bpf', 'firewall.bpf.o'),
        attach: [{ program: 'xdp_firewall', type: 'xdp', interface: 'lo', mode: 'generic' }],
        maps: { blocklist: { formats: { key: 'ipv4' } }, policy: { formats: { key: 'cidr' } } },
        onIncompatiblePin: 'refuse',
      },
    ],
    api: {
      socket: { path: '/run/mimd/mimd.sock', group: null, scope: 'admin' },
      tcp: null,
      tokens: [],
      bodyLimit: 16777216,
      maxEntries: 1000000,
      rateLimit: { max: 100, windowMs: 1000 },
      requestTimeoutMs: 30000,
    },
    audit: { destination: 'stdout' },
    retain: 3,
    swapQueue: { capacity: 1024, concurrency: 4 },
  });
});

t.test('an override merges key by key; a list replaces the default list whole', async (t) => {
  const { run, dir } = load(
    t,
    `
log:
  level: debug
`,
  );
  const config = run();
  t.equal(config.log.level, 'debug');
  t.equal(config.pinRoot, '/sys/fs/bpf/mimd', 'untouched keys keep the default');
  t.equal(config.objects[0]?.name, 'firewall');
  t.equal(config.objects[0]?.path, path.join(dir, 'bpf', 'firewall.bpf.o'), 'relative to the package root, not the override');

  const replaced = load(
    t,
    `
pinRoot: /sys/fs/bpf/elsewhere
objects:
  - name: other
    path: bpf/other.bpf.o
    attach:
      - { program: p1, type: xdp, interface: eth0 }
      - { program: p2, type: tc, interface: eth0 }
      - { program: p3, type: tc, interface: eth0, direction: egress }
      - { program: p4, type: tracepoint, tracepoint: syscalls/sys_enter_getpid }
      - { program: p5, type: raw_tracepoint, tracepoint: sys_enter }
  - name: bare
    path: ${path.join(REPO, 'config', 'default.yaml')}
`,
  ).run();
  t.equal(replaced.pinRoot, '/sys/fs/bpf/elsewhere');
  t.equal(replaced.log.level, 'info');
  t.same(
    replaced.objects.map((o) => o.name),
    ['other', 'bare'],
    'the default firewall entry is not merged into the new list',
  );
  t.same(replaced.objects[0]?.attach, [
    { program: 'p1', type: 'xdp', interface: 'eth0', mode: 'auto' },
    { program: 'p2', type: 'tc', interface: 'eth0', direction: 'ingress' },
    { program: 'p3', type: 'tc', interface: 'eth0', direction: 'egress' },
    { program: 'p4', type: 'tracepoint', tracepoint: 'syscalls/sys_enter_getpid' },
    { program: 'p5', type: 'raw_tracepoint', tracepoint: 'sys_enter' },
  ]);
  t.same(replaced.objects[1]?.attach, [], 'attach defaults to nothing');
  t.equal(replaced.objects[1]?.path, path.join(REPO, 'config', 'default.yaml'), 'absolute paths stay');
});

t.test('an empty override file changes nothing', async (t) => {
  const { run } = load(t, '# nothing here\n');
  t.equal(run().objects[0]?.name, 'firewall');
});

t.test('deepMerge and formatPath', async (t) => {
  t.same(deepMerge({ a: { b: 1, c: 2 }, l: [1, 2] }, { a: { c: 3 }, l: [9] }), { a: { b: 1, c: 3 }, l: [9] });
  t.same(deepMerge({ a: { b: 1 } }, { a: null }), { a: null });
  t.equal(formatPath(['objects', 0, 'attach', 1, 'mode']), 'objects[0].attach[1].mode');
  t.equal(formatPath(['log', 'bad key']), 'log["bad key"]');
  t.equal(formatPath([]), '(top level)');
});

t.test('each kind of bad value names the key path and what was expected', async (t) => {
  const cases: { name: string; yaml: string; message: string; line: number }[] = [
    {
      name: 'a value outside an enumeration',
      yaml: ONE_OBJECT('      - { program: xdp_firewall, type: xdp, interface: lo, mode: turbo }'),
      message: 'objects[0].attach[0].mode: expected one of auto, generic, native, offload, got "turbo"',
      line: 6,
    },
    {
      name: 'a relative pinRoot',
      yaml: 'pinRoot: relative/dir\n',
      message: 'pinRoot: expected an absolute path, got "relative/dir"',
      line: 1,
    },
    {
      name: 'a log level pino does not have',
      yaml: 'log:\n  level: loud\n',
      message: 'log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud"',
      line: 2,
    },
    {
      name: 'an object name with capitals and spaces',
      yaml: 'objects:\n  - name: Fire Wall\n    path: bpf/firewall.bpf.o\n',
      message: 'objects[0].name: expected 1-32 characters of a-z, 0-9, _ and -, got "Fire Wall"',
      line: 2,
    },
    {
      name: 'an attach type mimd does not know',
      yaml: ONE_OBJECT('      - program: xdp_firewall\n        type: kprobe'),
      message: 'objects[0].attach[0].type: expected one of xdp, tc, tracepoint, raw_tracepoint, got "kprobe"',
      line: 7,
    },
    {
      name: 'an attach entry without a type',
      yaml: ONE_OBJECT('      - program: xdp_firewall'),
      message: 'objects[0].attach[0].type: expected one of xdp, tc, tracepoint, raw_tracepoint, got nothing',
      line: 6,
    },
    {
      name: 'a missing required key',
      yaml: ONE_OBJECT('      - type: xdp\n        interface: lo'),
      message: 'objects[0].attach[0].program: missing (required)',
      line: 6,
    },
    {
      name: 'a missing object path',
      yaml: 'objects:\n  - name: fw\n',
      message: 'objects[0].path: missing (required)',
      line: 2,
    },
    {
      name: 'a key of another attach type',
      yaml: ONE_OBJECT('      - program: cls\n        type: tc\n        interface: lo\n        mode: generic'),
      message: 'objects[0].attach[0].mode: unknown key (allowed here: program, type, interface, direction)',
      line: 9,
    },
    {
      name: 'a tracepoint without its category',
      yaml: ONE_OBJECT('      - program: tp\n        type: tracepoint\n        tracepoint: sys_enter_getpid'),
      message: 'objects[0].attach[0].tracepoint: expected category/name, e.g. syscalls/sys_enter_getpid, got "sys_enter_getpid"',
      line: 8,
    },
    {
      name: 'an interface name longer than the kernel allows',
      yaml: ONE_OBJECT('      - { program: p, type: xdp, interface: averyveryverylongname }'),
      message: 'objects[0].attach[0].interface: expected an interface name (1-15 characters, no "/", ":" or spaces), got "averyveryverylongname"',
      line: 6,
    },
    {
      name: 'a scalar where a list belongs',
      yaml: 'objects: firewall\n',
      message: 'objects: expected a list, got "firewall"',
      line: 1,
    },
    {
      name: 'a list where a mapping belongs',
      yaml: 'log: [info]\n',
      message: 'log: expected a mapping, got a list',
      line: 1,
    },
    {
      name: 'a number where a string belongs',
      yaml: 'objects:\n  - name: 7\n    path: bpf/firewall.bpf.o\n',
      message: 'objects[0].name: expected 1-32 characters of a-z, 0-9, _ and -, got 7',
      line: 2,
    },
  ];
  for (const c of cases) {
    const { run, file } = load(t, c.yaml);
    const err = configError(run);
    t.equal(err.message, `config: ${c.message} (from ${file}, line ${c.line})`, c.name);
    t.equal(err.code, 'MIMD_CONFIG');
  }
});

t.test('unknown keys are errors, at any depth', async (t) => {
  const top = load(t, 'pinroot: /sys/fs/bpf/x\n');
  t.equal(
    configError(top.run).message,
    `config: pinroot: unknown key (allowed here: pinRoot, stateDir, stateFsync, onStop, log, objects, api, audit, retain, swapQueue) (from ${top.file}, line 1)`,
  );
  const nested = load(t, 'log:\n  level: info\n  pretty: true\n');
  t.equal(configError(nested.run).message, `config: log.pretty: unknown key (allowed here: level) (from ${nested.file}, line 3)`);
  const inObject = load(t, 'objects:\n  - name: fw\n    path: bpf/firewall.bpf.o\n    pin: true\n');
  t.match(configError(inObject.run).message, /^config: objects\[0\]\.pin: unknown key \(allowed here: name, path, attach, maps, onIncompatiblePin\)/);
});

t.test('every bad key is reported at once, one per line', async (t) => {
  const { run } = load(t, 'pinRoot: x\nlog:\n  level: loud\nextra: 1\n');
  const err = configError(run);
  t.equal(err.problems.length, 3);
  const lines = err.message.split('\n');
  t.equal(lines.length, 3);
  t.ok(lines.every((l) => l.startsWith('config: ')));
  t.match(err.message, /^config: pinRoot: /m);
  t.match(err.message, /^config: log\.level: /m);
  t.match(err.message, /^config: extra: unknown key/m);
});

t.test('a bad key in the defaults is reported against the defaults file', async (t) => {
  const dir = root(t, { 'default.yaml': 'pinRoot: /sys/fs/bpf/mimd\nlog:\n  level: chatty\nobjects: []\n' + API_DEFAULTS, 'o.yaml': 'pinRoot: /x\n' });
  const defaultFile = path.join(dir, 'default.yaml');
  const err = configError(() => loadConfig(path.join(dir, 'o.yaml'), { defaultFile, baseDir: dir }));
  t.equal(err.message, `config: log.level: expected one of fatal, error, warn, info, debug, trace, silent, got "chatty" (from ${defaultFile}, line 3)`);

  // The override sets log but not log.level: the bad value still comes from the defaults.
  fs.writeFileSync(path.join(dir, 'o.yaml'), 'log: {}\n');
  t.match(configError(() => loadConfig(path.join(dir, 'o.yaml'), { defaultFile, baseDir: dir })).message, `(from ${defaultFile}, line 3)`);
});

t.test('duplicate object names are errors', async (t) => {
  const { run, file } = load(
    t,
    `
objects:
  - name: fw
    path: bpf/firewall.bpf.o
  - name: fw
    path: bpf/other.bpf.o
`,
  );
  t.equal(configError(run).message, `config: objects[1].name: duplicate object name "fw" (also objects[0].name) (from ${file}, line 5)`);
});

t.test('an object file that cannot be read is an error naming its resolved path', async (t) => {
  const { run, dir } = load(t, 'objects:\n  - name: fw\n    path: bpf/missing.bpf.o\n');
  t.match(
    configError(run).message,
    `config: objects[0].path: cannot read ${path.join(dir, 'bpf', 'missing.bpf.o')}: ENOENT (relative paths resolve against ${dir})`,
  );
  const { run: dirRun } = load(t, 'objects:\n  - name: fw\n    path: bpf\n');
  t.match(configError(dirRun).message, 'not a regular file');
});

t.test('two XDP programs on one interface are an error', async (t) => {
  const { run, file } = load(
    t,
    `
objects:
  - name: a
    path: bpf/firewall.bpf.o
    attach: [{ program: x, type: xdp, interface: eth0 }]
  - name: b
    path: bpf/other.bpf.o
    attach:
      - { program: y, type: tc, interface: eth0 }
      - { program: z, type: xdp, interface: eth0, mode: generic }
`,
  );
  t.equal(
    configError(run).message,
    `config: objects[1].attach[1].interface: eth0 already gets an XDP program from objects[0].attach[0]; an interface runs one XDP program (from ${file}, line 10)`,
  );
});

t.test('YAML syntax errors name the file and line', async (t) => {
  const bad = load(t, 'log:\n  level: info\n objects: [\n');
  const err = configError(bad.run);
  t.match(err.message, new RegExp(`^config: ${bad.file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:3:\\d+: YAML syntax error: `));
  t.notMatch(err.message, /\n/, 'one line, no snippet');

  const dup = load(t, 'pinRoot: /a\npinRoot: /b\n');
  t.match(configError(dup.run).message, `${dup.file}:2:1: YAML syntax error: Map keys must be unique`);

  const notMapping = load(t, '- just\n- a list\n');
  t.match(configError(notMapping.run).message, 'config: (top level): expected a mapping, got a list');
});

t.test('a missing override file is an error naming it', async (t) => {
  const dir = root(t);
  const missing = path.join(dir, 'nope.yaml');
  t.equal(configError(() => loadConfig(missing, { baseDir: dir })).message, `config: cannot read config file ${missing}: ENOENT`);
});

t.test('map formats: a path under slot, key or value, and a known format', async (t) => {
  const withFormats = (formats: string) => `
objects:
  - name: fw
    path: bpf/firewall.bpf.o
    maps:
      policy:
        formats:
${formats}
`;
  const bad = load(t, withFormats('          addr: ipv4'));
  t.match(configError(bad.run).message, /objects\[0\]\.maps\.policy\.formats/);
  const unknown = load(t, withFormats('          key: dotted'));
  t.match(configError(unknown.run).message, /objects\[0\]\.maps\.policy\.formats.*key.*: expected one of ipv4, ipv6, mac, be16, be32, be64, hex, cidr/);
  const good = load(t, withFormats('          key: cidr\n          value.verdict: hex'));
  t.same(good.run().objects[0]?.maps, { policy: { formats: { key: 'cidr', 'value.verdict': 'hex' } } });
});

t.test('restart keys: stateDir, onStop and objects[].onIncompatiblePin', async (t) => {
  const set = load(
    t,
    `
stateDir: /srv/mimd/state
onStop: remove
objects:
  - name: fw
    path: bpf/firewall.bpf.o
    onIncompatiblePin: replace
  - name: other
    path: bpf/other.bpf.o
`,
  ).run();
  t.equal(set.stateDir, '/srv/mimd/state');
  t.equal(set.onStop, 'remove');
  t.equal(set.objects[0]?.onIncompatiblePin, 'replace');
  t.equal(set.objects[1]?.onIncompatiblePin, 'refuse', 'an object in an override list gets the default: refuse');

  const untouched = load(t, 'log:\n  level: warn\n').run();
  t.equal(untouched.stateDir, '/var/lib/mimd', 'the default state directory');
  t.equal(untouched.onStop, 'keep', 'by default stopping keeps programs attached');
  t.equal(untouched.objects[0]?.onIncompatiblePin, 'refuse');
});

t.test('bad restart keys name their path and what was expected', async (t) => {
  const cases: { name: string; yaml: string; message: string; line: number }[] = [
    {
      name: 'a relative stateDir',
      yaml: 'stateDir: var/lib/mimd\n',
      message: 'stateDir: expected an absolute path, got "var/lib/mimd"',
      line: 1,
    },
    {
      name: 'an empty stateDir',
      yaml: 'stateDir: ""\n',
      message: 'stateDir: expected an absolute path, got ""',
      line: 1,
    },
    {
      name: 'a stateDir with a NUL byte',
      yaml: 'stateDir: "/var/lib/\\0mimd"\n',
      message: 'stateDir: expected an absolute path, got "/var/lib/\\u0000mimd"',
      line: 1,
    },
    {
      name: 'a stateDir that is not a string',
      yaml: 'stateDir: [/a, /b]\n',
      message: 'stateDir: expected an absolute path, got a list',
      line: 1,
    },
    {
      name: 'an onStop mimd does not know',
      yaml: 'onStop: detach\n',
      message: 'onStop: expected one of keep, remove, got "detach"',
      line: 1,
    },
    {
      name: 'an empty onStop',
      yaml: 'onStop:\n',
      message: 'onStop: expected one of keep, remove, got null (an empty value)',
      line: 1,
    },
    {
      name: 'a boolean onStop',
      yaml: 'onStop: true\n',
      message: 'onStop: expected one of keep, remove, got true',
      line: 1,
    },
    {
      name: 'an onIncompatiblePin mimd does not know',
      yaml: 'objects:\n  - name: fw\n    path: bpf/firewall.bpf.o\n    onIncompatiblePin: overwrite\n',
      message: 'objects[0].onIncompatiblePin: expected one of refuse, replace, got "overwrite"',
      line: 4,
    },
    {
      name: 'an onIncompatiblePin in the wrong case',
      yaml: 'objects:\n  - name: fw\n    path: bpf/firewall.bpf.o\n  - name: fw2\n    path: bpf/other.bpf.o\n    onIncompatiblePin: Replace\n',
      message: 'objects[1].onIncompatiblePin: expected one of refuse, replace, got "Replace"',
      line: 6,
    },
  ];
  for (const c of cases) {
    const { run, file } = load(t, c.yaml);
    const err = configError(run);
    t.equal(err.message, `config: ${c.message} (from ${file}, line ${c.line})`, c.name);
    t.same(err.problems.length, 1, `${c.name}: one problem`);
  }
});

t.test('stateDir and onStop come from the defaults file: one without them is reported against it', async (t) => {
  const defaults = 'pinRoot: /sys/fs/bpf/mimd\nlog:\n  level: info\nobjects: []\n' + API_DEFAULTS.replace('stateDir: /var/lib/mimd\nstateFsync: false\nonStop: keep\n', 'stateFsync: false\n');
  const dir = root(t, { 'default.yaml': defaults });
  const defaultFile = path.join(dir, 'default.yaml');
  const err = configError(() => loadConfig(undefined, { defaultFile, baseDir: dir }));
  t.same(err.problems, [`stateDir: missing (required) (from ${defaultFile}, line 1)`, `onStop: missing (required) (from ${defaultFile}, line 1)`]);

  // An override may supply them.
  fs.writeFileSync(path.join(dir, 'o.yaml'), 'stateDir: /tmp/state\nonStop: remove\n');
  const config = loadConfig(path.join(dir, 'o.yaml'), { defaultFile, baseDir: dir });
  t.equal(config.stateDir, '/tmp/state');
  t.equal(config.onStop, 'remove');
});

// ---------------------------------------------------------------------------
// The API's listeners, tokens and limits, and where audit records go.

const SHA_A = 'a'.repeat(64);
const SHA_B = 'b'.repeat(64);

t.test('api and audit keys: each set in an override is taken', async (t) => {
  const { run } = load(
    t,
    `
api:
  socket: { path: /tmp/mimd-test/api.sock, group: mimd, scope: read }
  tcp: { host: 127.0.0.1, port: 7373 }
  tokens:
    - { id: deploy-bot, sha256: "${SHA_A}", scope: write, maps: [firewall/blocklist] }
    - { id: ops@example.com, sha256: "${SHA_B}", scope: admin }
  maxEntries: 5000
  rateLimit: { max: 7, windowMs: 2000 }
  requestTimeoutMs: 5000
audit:
  destination: /var/log/mimd/audit.log
`,
  );
  const config = run();
  t.strictSame(config.api, {
    socket: { path: '/tmp/mimd-test/api.sock', group: 'mimd', scope: 'read' },
    tcp: { host: '127.0.0.1', port: 7373 },
    tokens: [
      { id: 'deploy-bot', sha256: SHA_A, scope: 'write', maps: ['firewall/blocklist'] },
      { id: 'ops@example.com', sha256: SHA_B, scope: 'admin' },
    ],
    bodyLimit: 16777216,
    maxEntries: 5000,
    rateLimit: { max: 7, windowMs: 2000 },
    requestTimeoutMs: 5000,
  });
  t.strictSame(config.audit, { destination: '/var/log/mimd/audit.log' });

  const tcpOnly = load(t, 'api:\n  socket: null\n  tcp: { host: localhost, port: 0 }\n').run();
  t.equal(tcpOnly.api.socket, null, 'the socket may be turned off when TCP listens');
  t.strictSame(tcpOnly.api.tcp, { host: 'localhost', port: 0 });
});

t.test('TCP off loopback requires TLS: the error names api.tcp.tls', async (t) => {
  for (const host of ['0.0.0.0', '10.1.2.3', '::', 'mimd.example.com', '128.0.0.1']) {
    const { run, file } = load(t, `api:\n  tcp: { host: "${host}", port: 7373 }\n`);
    const err = configError(run);
    t.equal(err.problems.length, 1, host);
    t.match(err.message, new RegExp(`^config: api\\.tcp\\.tls: missing: ${host.replace(/\./g, '\\.')} is not a loopback address`), host);
    t.match(err.message, `(from ${file}, line 2)`, host);
  }
});

t.test('TCP on loopback goes without TLS', async (t) => {
  for (const host of ['127.0.0.1', '127.3.2.1', '::1', 'localhost']) {
    const config = load(t, `api:\n  tcp: { host: "${host}", port: 7373 }\n`).run();
    t.equal(config.api.tcp?.host, host);
    t.equal(config.api.tcp?.tls, undefined, host);
  }
});

t.test('TLS off loopback with readable files is accepted; an unreadable one is named', async (t) => {
  const dir = root(t, { 'cert.pem': 'CERT', 'key.pem': 'KEY' });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  const good = path.join(dir, 'good.yaml');
  fs.writeFileSync(good, `api:\n  tcp:\n    host: 0.0.0.0\n    port: 7373\n    tls: { cert: ${cert}, key: ${key} }\n`);
  t.strictSame(loadConfig(good, { baseDir: dir }).api.tcp, { host: '0.0.0.0', port: 7373, tls: { cert, key } });

  const missingCert = path.join(dir, 'missing.pem');
  const bad = path.join(dir, 'bad.yaml');
  fs.writeFileSync(bad, `api:\n  tcp:\n    host: 0.0.0.0\n    port: 7373\n    tls: { cert: ${missingCert}, key: ${key} }\n`);
  const err = configError(() => loadConfig(bad, { baseDir: dir }));
  t.strictSame(err.problems, [`api.tcp.tls.cert: cannot read ${missingCert}: ENOENT (from ${bad}, line 5)`]);

  const both = path.join(dir, 'both.yaml');
  fs.writeFileSync(both, `api:\n  tcp:\n    host: 0.0.0.0\n    port: 7373\n    tls: { cert: ${missingCert}, key: ${missingCert}.key }\n`);
  t.strictSame(
    configError(() => loadConfig(both, { baseDir: dir })).problems.map((p) => p.split(':')[0]),
    ['api.tcp.tls.cert', 'api.tcp.tls.key'],
    'both files named',
  );
});

t.test('two tokens with one id, or one token twice, are refused', async (t) => {
  const { run, file } = load(
    t,
    `
api:
  tokens:
    - { id: ci, sha256: "${SHA_A}", scope: read }
    - { id: ci, sha256: "${SHA_B}", scope: write }
    - { id: other, sha256: "${SHA_A}", scope: admin }
`,
  );
  const err = configError(run);
  t.strictSame(err.problems, [
    `api.tokens[1].id: duplicate token id "ci" (also api.tokens[0].id) (from ${file}, line 5)`,
    `api.tokens[2].sha256: the same token as api.tokens[0] (from ${file}, line 6)`,
  ]);
});

t.test('no listener at all is refused', async (t) => {
  const { run, file } = load(t, 'api:\n  socket: null\n  tcp: null\n');
  const err = configError(run);
  t.strictSame(err.problems, [`api.socket: no listener: set api.socket or api.tcp (or both) (from ${file}, line 2)`]);
});

t.test('bad token fields and limits are named by their path', async (t) => {
  const cases: { name: string; yaml: string; message: string }[] = [
    {
      name: 'a sha256 in capitals and too short',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${'A'.repeat(40)}", scope: read }\n`,
      message: `api.tokens[0].sha256: expected the sha256 of the token: 64 lower-case hex digits (\`mimd token\` prints it), got "${'A'.repeat(40)}"`,
    },
    {
      name: 'a short sha256',
      yaml: 'api:\n  tokens:\n    - { id: ci, sha256: abc, scope: read }\n',
      message: 'api.tokens[0].sha256: expected the sha256 of the token: 64 lower-case hex digits (`mimd token` prints it), got "abc"',
    },
    {
      name: 'a scope mimd does not have',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${SHA_A}", scope: root }\n`,
      message: 'api.tokens[0].scope: expected one of read, write, admin, got "root"',
    },
    {
      name: 'a token without a scope',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${SHA_A}" }\n`,
      message: 'api.tokens[0].scope: missing (required)',
    },
    {
      name: 'a map that is not object/map',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${SHA_A}", scope: read, maps: [firewall/blocklist, blocklist] }\n`,
      message: 'api.tokens[0].maps[1]: expected an outer map as object/map, e.g. firewall/blocklist, got "blocklist"',
    },
    {
      name: 'an empty map list',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${SHA_A}", scope: read, maps: [] }\n`,
      message: 'api.tokens[0].maps: expected a non-empty list of outer maps (object/map) the token is limited to, got a list',
    },
    {
      name: 'a token id with a space',
      yaml: `api:\n  tokens:\n    - { id: "ci bot", sha256: "${SHA_A}", scope: read }\n`,
      message: 'api.tokens[0].id: expected a token id: 1-64 characters of A-Z, a-z, 0-9, _ . @ -, got "ci bot"',
    },
    {
      name: 'the token itself instead of its digest',
      yaml: `api:\n  tokens:\n    - { id: ci, sha256: "${SHA_A}", scope: read, token: secret }\n`,
      message: 'api.tokens[0].token: unknown key (allowed here: id, sha256, scope, maps)',
    },
    {
      name: 'maxEntries 0',
      yaml: 'api:\n  maxEntries: 0\n',
      message: 'api.maxEntries: expected the most entries one request may carry (1 to 100000000), got 0',
    },
    {
      name: 'a rate limit of 0',
      yaml: 'api:\n  rateLimit: { max: 0, windowMs: 1000 }\n',
      message: 'api.rateLimit.max: expected changes allowed per principal per window (1 to 1000000), got 0',
    },
    {
      name: 'a rate window under 100 ms',
      yaml: 'api:\n  rateLimit: { windowMs: 10 }\n',
      message: 'api.rateLimit.windowMs: expected the window in milliseconds (100 to 3600000), got 10',
    },
    {
      name: 'a request timeout under a second',
      yaml: 'api:\n  requestTimeoutMs: 5\n',
      message: 'api.requestTimeoutMs: expected how long a request may take in milliseconds (1000 to 3600000), got 5',
    },
    {
      name: 'a relative audit file',
      yaml: 'audit:\n  destination: audit.log\n',
      message: 'audit.destination: expected stdout, or an absolute path of a file to append to, got "audit.log"',
    },
    {
      name: 'an audit destination of stderr',
      yaml: 'audit:\n  destination: stderr\n',
      message: 'audit.destination: expected stdout, or an absolute path of a file to append to, got "stderr"',
    },
  ];
  for (const c of cases) {
    const { run, file } = load(t, c.yaml);
    const err = configError(run);
    t.equal(err.problems.length, 1, `${c.name}: one problem`);
    t.equal(err.problems[0]?.replace(/ \(from .*\)$/, ''), c.message, c.name);
    t.match(err.problems[0], `(from ${file}, line `, `${c.name}: the file`);
  }
});

t.test('a bad key inside api.socket or api.tcp is named by its own path', async (t) => {
  // load() reuses the test's directory: each file is read before the next is written.
  const port = configError(load(t, 'api:\n  tcp: { host: 127.0.0.1, port: 70000 }\n').run).message;
  t.match(port, /^config: api\.tcp\.port: expected a TCP port/, 'port');
  const scope = load(t, 'api:\n  socket: { path: /run/mimd/mimd.sock, group: null, scope: root }\n');
  t.match(configError(scope.run).message, /^config: api\.socket\.scope: expected one of read, write, admin/, 'scope');
  const relative = load(t, 'api:\n  socket: { path: mimd.sock, group: null, scope: read }\n');
  t.match(configError(relative.run).message, /^config: api\.socket\.path: /, 'path');
  const notMapping = load(t, 'api:\n  tcp: 7373\n');
  t.match(configError(notMapping.run).message, /^config: api\.tcp: expected a TCP listener/, 'a value that is no mapping is named as the setting');
});
