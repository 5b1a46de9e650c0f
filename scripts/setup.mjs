#!/usr/bin/env node
// Brings a Debian 12 machine that has only Node.js 20 and npm to the point where
// mimd can run (`npm start`) or be tested (`npm test`), and does nothing on a
// machine that is already there. It runs before `npm ci`, so it uses no npm
// packages: plain Node 20 only.
//
//   node scripts/setup.mjs                 what `npm start` needs
//   node scripts/setup.mjs --for-tests     plus what `npm test` needs
//   node scripts/setup.mjs --for-kernels   plus what `npm run test:kernels` needs (qemu, busybox, ...)
//   node scripts/setup.mjs --force-build   rebuild the addon and the daemon regardless
//
// Every step first checks cheaply whether it has anything to do, because this
// runs in front of every `npm start` and `npm test`: an up-to-date machine must
// pass through in well under a second, with no apt, npm or compiler calls.
// Progress goes to stderr (stdout stays clean for tap's TAP stream), and only
// when a step does work.

import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

// npm scripts run from the repo root, but an operator may call this from anywhere.
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/**
 * Debian packages, one entry each. `tests: true` marks those only `npm test`
 * needs: beyond `ip`, which the daemon's host needs anyway, that is what the
 * container image test (test/container) builds and runs the image with.
 * `kernels: true` marks those only the kernel matrix (scripts/kernels/) needs.
 */
const DEBIAN_PACKAGES = [
  { name: 'clang', why: 'compiles bpf/*.bpf.c with -target bpf' },
  { name: 'llvm', why: 'llvm-objdump and llvm-strip, to inspect and trim BPF objects' },
  { name: 'libbpf-dev', why: 'libbpf headers and library the addon links against (-lbpf)' },
  { name: 'libelf-dev', why: 'libbpf reads BPF objects through libelf; the addon links -lelf' },
  { name: 'zlib1g-dev', why: "libbpf's other dependency; the addon links -lz" },
  { name: 'bpftool', why: 'inspect the programs, maps and links mimd owns' },
  { name: 'iproute2', why: '`ip`: see XDP attachments; tests make netns and veth pairs with it' },
  { name: 'pkg-config', why: "reads libbpf.pc, for builds that ask for libbpf's flags" },
  { name: 'make', why: 'builds bpf/ and drives node-gyp' },
  { name: 'g++', why: 'compiles the C++ addon' },
  { name: 'python3', why: 'node-gyp is written in Python' },
  { name: 'podman', why: 'builds and runs the Dockerfile in test/container (no Docker engine runs here)', tests: true },
  { name: 'runc', why: "podman's OCI runtime for the test; crun fails on this machine's cgroups", tests: true },
  { name: 'systemd', why: 'systemd-analyze verifies config/mimd.service (test/unit/systemd.test.ts)', tests: true },
  { name: 'openssl', why: 'the TLS test makes a self-signed certificate', tests: true },
  { name: 'debootstrap', why: 'scripts/container-base.sh: the stand-in for the base image, no image registry being reachable', tests: true },
  { name: 'qemu-system-x86', why: 'boots each kernel of the matrix (software emulation: no KVM here)', kernels: true },
  { name: 'busybox-static', why: "the guest initramfs's shell, mount and insmod, with no libraries to pack", kernels: true },
  { name: 'cpio', why: 'packs the guest initramfs', kernels: true },
  { name: 'kmod', why: 'modinfo: which modules the 9p modules need, so the guest loads them in order', kernels: true },
  { name: 'xz-utils', why: 'kernels from 6.12 ship .ko.xz modules; they are unpacked for busybox insmod', kernels: true },
  { name: 'zstd', why: 'for kernels that ship .ko.zst modules (fetch-kernel.sh unpacks them too); not on every minimal image', kernels: true },
  { name: 'debian-archive-keyring', why: "verifies the other suites' package lists read by the private apt configuration", kernels: true },
];

/** Kernel filesystems the daemon and tests need; `alt` are other accepted mount points. */
const KERNEL_MOUNTS = [
  // pins live on bpffs: inner maps, outer maps and links that must outlive the daemon
  { fstype: 'bpf', at: '/sys/fs/bpf', alt: [] },
  // libbpf looks up tracepoint ids in tracefs; tests attach tracepoint programs
  { fstype: 'tracefs', at: '/sys/kernel/tracing', alt: ['/sys/kernel/debug/tracing'] },
];

const LOCK_STAMP = 'node_modules/.mimd-lock-hash';
const ADDON = 'build/Release/mimd.node';
// the Node ABI the addon was built for: a Node upgrade needs a rebuild too
const ADDON_ABI_STAMP = 'build/.mimd-node-abi';
const TSC_STAMP = 'dist/.tsc-stamp';

const isRoot = process.getuid?.() === 0;

class SetupError extends Error {
  constructor(step, message) {
    super(message);
    this.step = step;
  }
}

function say(line) {
  process.stderr.write(`setup: ${line}\n`);
}

const abs = (rel) => path.join(ROOT, rel);

/**
 * Runs a command in the repo root. Its stdout goes to our stderr so that
 * `npm test`'s stdout carries nothing but tap's output.
 */
function run(step, cmd, args, env = {}) {
  const r = spawnSync(cmd, args, {
    cwd: ROOT,
    stdio: ['ignore', 2, 2],
    env: { ...process.env, ...env },
  });
  if (r.error) throw new SetupError(step, `cannot run ${cmd}: ${r.error.message}`);
  if (r.status !== 0) {
    const how = r.signal ? `was killed by ${r.signal}` : `exited with ${r.status}`;
    throw new SetupError(step, `\`${[cmd, ...args].join(' ')}\` ${how}`);
  }
}

/** mtime in ms, or -Infinity when the file does not exist. */
function mtimeOf(rel) {
  try {
    return fs.statSync(abs(rel)).mtimeMs;
  } catch {
    return -Infinity;
  }
}

/** Newest mtime of the files under a directory (recursively) that pass `keep`. */
function newestUnder(relDir, keep = () => true) {
  let newest = -Infinity;
  let names;
  try {
    names = fs.readdirSync(abs(relDir), { recursive: true });
  } catch {
    return newest;
  }
  for (const name of names) {
    if (!keep(name)) continue;
    const st = fs.statSync(path.join(abs(relDir), name), { throwIfNoEntry: false });
    if (st?.isFile() && st.mtimeMs > newest) newest = st.mtimeMs;
  }
  return newest;
}

// a. Debian packages ----------------------------------------------------------

/** Names of the wanted packages that dpkg does not report as installed (one dpkg-query call). */
function missingPackages(forTests, forKernels) {
  const wanted = DEBIAN_PACKAGES.filter((p) => (forTests || !p.tests) && (forKernels || !p.kernels)).map((p) => p.name);
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Status}\n', ...wanted], {
    encoding: 'utf8',
  });
  if (r.error) {
    // not Debian: the build steps below will say what is missing
    say(`dpkg-query not found; not checking for: ${wanted.join(' ')}`);
    return [];
  }
  // exits 1 for packages dpkg has never heard of; those are just absent from stdout
  const installed = new Set(
    r.stdout
      .split('\n')
      .filter((line) => line.endsWith(' install ok installed'))
      .map((line) => line.split(' ')[0]),
  );
  return wanted.filter((name) => !installed.has(name));
}

/** True when apt has package lists to install from (fresh images often ship none). */
function aptHasLists() {
  try {
    return fs.readdirSync('/var/lib/apt/lists').some((f) => /_Packages(\.\w+)?$/.test(f));
  } catch {
    return false;
  }
}

function installPackages(missing) {
  const step = 'debian packages';
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  const install = () =>
    run(step, 'apt-get', ['install', '-y', '--no-install-recommends', ...missing], env);
  say(`installing Debian packages: ${missing.join(' ')}`);
  // `apt-get update` costs time and network: only when there are no lists, or
  // when an install from the lists we have fails (they may point at removed versions)
  if (!aptHasLists()) {
    run(step, 'apt-get', ['update'], env);
    install();
    return;
  }
  try {
    install();
  } catch {
    say('install failed; refreshing package lists and retrying');
    run(step, 'apt-get', ['update'], env);
    install();
  }
}

// a2. the versions the tests rest on -------------------------------------------

/**
 * Packages whose version has decided a test's result before (a bpftool update
 * once failed 34 tests) or whose behaviour the tests witness: printed first in
 * every test log, so that a failure can be tied to a version.
 */
const VERSIONED = ['bpftool', 'clang', 'libbpf-dev', 'libbpf1', 'iproute2', 'podman', 'runc', 'debootstrap', 'systemd', 'qemu-system-x86'];

/** One line per tool: the kernel, Node.js, and the Debian packages above that this mode installs. */
function printVersions(forTests, forKernels) {
  const wanted = new Set(DEBIAN_PACKAGES.filter((p) => (forTests || !p.tests) && (forKernels || !p.kernels)).map((p) => p.name));
  wanted.add('libbpf1'); // the shared library the addon loads, not a package we name
  const names = VERSIONED.filter((name) => wanted.has(name));
  const r = spawnSync('dpkg-query', ['-W', '-f=${Package} ${Version}\n', ...names], { encoding: 'utf8' });
  const version = new Map((r.stdout ?? '').split('\n').filter(Boolean).map((line) => line.split(' ')));
  let rcu = '?';
  try {
    rcu = fs.readFileSync('/sys/kernel/rcu_expedited', 'utf8').trim();
  } catch {}
  const lines = [
    `kernel ${os.release()} ${os.machine()} (rcu_expedited ${rcu}: 1 makes every swap's grace period short)`,
    `node ${process.version}`,
  ];
  for (const name of names) {
    let line = `${name} ${version.get(name) ?? 'not installed'}`;
    // bpftool carries its own copy of libbpf, which need not be libbpf1's
    if (name === 'bpftool' && version.has(name)) {
      const v = spawnSync('bpftool', ['version'], { encoding: 'utf8' });
      if (v.status === 0) line += ` (${v.stdout.trim().split('\n').slice(0, 2).join(', ')})`;
    }
    lines.push(line);
  }
  say('versions of what the tests rest on:');
  for (const line of lines) process.stderr.write(`  ${line}\n`);
}

// b. kernel filesystems -------------------------------------------------------

/** The mounts in KERNEL_MOUNTS that are absent or read-only, each with the command that fixes it. */
function missingMounts() {
  const mounted = fs
    .readFileSync('/proc/mounts', 'utf8')
    .split('\n')
    .map((line) => line.split(' '))
    .map(([, at, fstype, options = '']) => ({ at, fstype, rw: options.split(',').includes('rw') }));
  const fixes = [];
  for (const want of KERNEL_MOUNTS) {
    const found = mounted.filter(
      (m) => m.fstype === want.fstype && [want.at, ...want.alt].includes(m.at),
    );
    if (found.length === 0) {
      fixes.push(['mount', '-t', want.fstype, want.fstype, want.at]);
    } else if (!found.some((m) => m.rw)) {
      // pinning on a read-only bpffs fails with EROFS
      fixes.push(['mount', '-o', 'remount,rw', found[0].at]);
    }
  }
  return fixes;
}

function mount(fix) {
  say(fix.join(' '));
  run('kernel filesystems', fix[0], fix.slice(1));
}

// c. npm dependencies ---------------------------------------------------------

function lockHash() {
  return createHash('sha256').update(fs.readFileSync(abs('package-lock.json'))).digest('hex');
}

/** Runs `npm ci` when node_modules is absent or was installed from another lock file. Returns true if it ran. */
function ensureNodeModules() {
  const hash = lockHash();
  let stamped = null;
  try {
    stamped = fs.readFileSync(abs(LOCK_STAMP), 'utf8').trim();
  } catch {}
  if (stamped === hash) return false;
  say('installing npm dependencies (npm ci)');
  run('npm ci', 'npm', ['ci', '--no-audit', '--no-fund']);
  // written only after success, so a failed install is retried next time
  fs.writeFileSync(abs(LOCK_STAMP), `${hash}\n`);
  return true;
}

// d. the C++ addon ------------------------------------------------------------

function addonIsStale() {
  let abi = null;
  try {
    abi = fs.readFileSync(abs(ADDON_ABI_STAMP), 'utf8').trim();
  } catch {}
  if (abi !== process.versions.modules) return true;
  const built = mtimeOf(ADDON);
  return Math.max(newestUnder('addon'), mtimeOf('binding.gyp')) > built;
}

/**
 * Node's own headers, when its install has them (Debian's nodejs does, under
 * /usr/include/node): node-gyp would otherwise download them, and machines
 * here reach no site but the package registries.
 */
function nodeHeadersArgs() {
  const prefix = path.resolve(path.dirname(process.execPath), '..');
  return fs.existsSync(path.join(prefix, 'include', 'node', 'node_api.h')) ? [`--nodedir=${prefix}`] : [];
}

function buildAddon() {
  say('building the addon (node-gyp rebuild)');
  run('addon', 'npx', ['--no-install', 'node-gyp', 'rebuild', '--jobs', 'max', ...nodeHeadersArgs()]);
  fs.writeFileSync(abs(ADDON_ABI_STAMP), `${process.versions.modules}\n`);
}

// e. BPF objects --------------------------------------------------------------

/** make knows what is stale; `make -q` asks it without running anything or printing. */
function buildBpfObjects() {
  const q = spawnSync('make', ['-q', '-C', 'bpf'], { cwd: ROOT, stdio: 'ignore' });
  if (q.status === 0) return;
  say('building BPF objects (make -C bpf)');
  run('bpf objects', 'make', ['-C', 'bpf']);
}

// f. TypeScript ---------------------------------------------------------------

function daemonIsStale() {
  const built = mtimeOf(TSC_STAMP);
  const sources = Math.max(
    newestUnder('daemon/src', (name) => name.endsWith('.ts')),
    mtimeOf('tsconfig.json'),
  );
  return sources > built;
}

function buildDaemon() {
  say('compiling the daemon (tsc)');
  const started = new Date();
  run('typescript', 'npx', ['--no-install', 'tsc', '-p', 'tsconfig.json']);
  fs.mkdirSync(abs('dist'), { recursive: true });
  fs.writeFileSync(abs(TSC_STAMP), `${started.toISOString()}\n`);
  // dated at the start, so a source saved while tsc ran is compiled next time
  fs.utimesSync(abs(TSC_STAMP), started, started);
}

// -----------------------------------------------------------------------------

/**
 * Packages and mounts need root. As root they are fixed; otherwise everything
 * missing is listed in one go, with the commands, so one sudo session fixes it.
 */
function ensureSystem(forTests, forKernels) {
  const packages = missingPackages(forTests, forKernels);
  const mounts = missingMounts();
  if (packages.length === 0 && mounts.length === 0) return;
  if (isRoot) {
    if (packages.length > 0) installPackages(packages);
    for (const fix of mounts) mount(fix);
    return;
  }
  say('this machine needs root once for:');
  if (packages.length > 0) {
    process.stderr.write(
      `  sudo apt-get install -y --no-install-recommends ${packages.join(' ')}\n`,
    );
  }
  for (const fix of mounts) process.stderr.write(`  sudo ${fix.join(' ')}\n`);
  throw new SetupError('system', 'run the commands above (or run this script as root), then retry');
}

function main(argv) {
  const known = new Set(['--for-tests', '--for-kernels', '--force-build']);
  const unknown = argv.filter((a) => !known.has(a));
  if (unknown.length > 0) {
    throw new SetupError('arguments', `unknown ${unknown.join(' ')} (known: ${[...known].join(' ')})`);
  }
  const forTests = argv.includes('--for-tests');
  const forKernels = argv.includes('--for-kernels');
  const force = argv.includes('--force-build');

  step('system', () => ensureSystem(forTests, forKernels));
  if (forTests || forKernels) step('versions', () => printVersions(forTests, forKernels));
  const depsChanged = step('npm ci', ensureNodeModules);
  // new node-addon-api headers or a new tsc/@types may change the build output
  step('addon', () => (force || depsChanged || addonIsStale()) && buildAddon());
  step('bpf objects', buildBpfObjects);
  step('typescript', () => (force || depsChanged || daemonIsStale()) && buildDaemon());
}

/** Runs one step, so that any failure in it (a missing file too) names the step. */
function step(name, fn) {
  try {
    return fn();
  } catch (err) {
    if (err instanceof SetupError) throw err;
    throw new SetupError(name, err instanceof Error ? err.message : String(err));
  }
}

try {
  main(process.argv.slice(2));
} catch (err) {
  if (!(err instanceof SetupError)) throw err;
  say(`${err.step} failed: ${err.message}`);
  process.exitCode = 1;
}
