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
  'stateDir: /var/lib/mimd\nonStop: keep\napi:\n  host: 127.0.0.1\n  port: 7373\n  bodyLimit: 1048576\nretain: 3\nswapQueue:\n  capacity: 16\n  concurrency: 1\n';

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
    api: { host: '127.0.0.1', port: 7373, bodyLimit: 16777216 },
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
    `config: pinroot: unknown key (allowed here: pinRoot, stateDir, onStop, log, objects, api, retain, swapQueue) (from ${top.file}, line 1)`,
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
  const defaults = 'pinRoot: /sys/fs/bpf/mimd\nlog:\n  level: info\nobjects: []\n' + API_DEFAULTS.replace('stateDir: /var/lib/mimd\nonStop: keep\n', '');
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
