#!/usr/bin/env node
// `npm run test:kernels`: boots Debian's kernels under qemu and runs mimd's
// swap-path test (test/kernels/swap-path.test.ts, compiled) and the daemon's
// feature probe inside each. Prints one summary line per kernel and ends with
//   kernels: N passed, M failed
// (tap's counts summed over the kernels; a kernel whose run broke without a
// tap failure counts one failure), which .ci/run adds to its own count.
// Exits non-zero when any kernel failed.
//
// Environment:
//   MIMD_KERNELS          suites to run, comma-separated (default: all four below)
//   MIMD_KERNELS_JOBS     guests booted at once (default 2: one per core; each
//                         qemu runs its vCPUs on one host thread)
//   MIMD_KERNELS_TIMEOUT  seconds one guest may take, boot to power-off (default 300)
//   MIMD_KERNEL_CACHE     downloads and extracted kernels (default /var/cache/mimd-kernels)
//   MIMD_KERNELS_LOGS     where each guest's console and results go (default .ci/kernels)
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { boot, killGuests } from './boot.mjs';
import { readResults, verdict } from './report.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..', '..');

/** The kernel range mimd supports: each suite's current generic kernel, and the release it should be. */
const SUITES = [
  { suite: 'bullseye', expect: /^5\.10\./ },
  { suite: 'bookworm', expect: /^6\.1\./ },
  { suite: 'trixie', expect: /^6\.12\./ },
  // sid carries the newest 7.x first (forky gets it later)
  { suite: 'sid', expect: /^7\./ },
];

const say = (line) => process.stdout.write(`${line}\n`);
const note = (line) => process.stderr.write(`kernels: ${line}\n`);
const seconds = (ms) => `${(ms / 1000).toFixed(1)}s`;

/** Runs a command, its output to our stderr; resolves with its stdout and exit code. */
function run(cmd, args) {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('error', (err) => resolve({ code: -1, out: String(err) }));
    // 'close', not 'exit': the process may exit before its stdout is read to the end.
    child.on('close', (code) => resolve({ code: code ?? -1, out: out.trim() }));
  });
}

/** Runs `fn` over `items`, `jobs` at a time, keeping the order of the results. */
async function pool(items, jobs, fn) {
  const results = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i], i);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(jobs, items.length)) }, worker));
  return results;
}

/** The guest sees the host's root, except what it mounts fresh: the repo must not be in one of those. */
function checkRepoVisible() {
  // the path goes to the guest on the kernel command line, which splits at spaces
  if (/\s/.test(ROOT)) throw new Error(`the repo path has white space, which the kernel command line cannot carry: ${ROOT}`);
  // (/tmp and /run are mounted afresh too, but guest-init.sh puts a repo under them back.)
  for (const hidden of ['/proc', '/sys', '/dev']) {
    if (ROOT === hidden || ROOT.startsWith(`${hidden}/`)) {
      throw new Error(`the repo is under ${hidden}, which the guest mounts afresh: it would not see ${ROOT}`);
    }
  }
}

/** Compact probe output: each feature's verdict, without the details. */
function probeSummary(probe) {
  if (!probe || typeof probe !== 'object') return null;
  const out = {};
  for (const [key, value] of Object.entries(probe)) {
    if (value && typeof value === 'object' && 'value' in value) out[key] = value.value;
    else if (key === 'linkTypes' && value && typeof value === 'object') {
      out[key] = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, v && typeof v === 'object' && 'value' in v ? v.value : v]));
    } else if (typeof value !== 'object') out[key] = value;
  }
  return out;
}

async function main() {
  const started = Date.now();
  checkRepoVisible();
  const wanted = (process.env.MIMD_KERNELS ?? '').split(',').map((s) => s.trim()).filter(Boolean);
  const suites = wanted.length ? wanted.map((s) => SUITES.find((x) => x.suite === s) ?? { suite: s, expect: null }) : SUITES;
  const jobs = Number(process.env.MIMD_KERNELS_JOBS ?? 2) || 2;
  const timeoutMs = (Number(process.env.MIMD_KERNELS_TIMEOUT ?? 300) || 300) * 1000;
  const logs = path.resolve(ROOT, process.env.MIMD_KERNELS_LOGS ?? path.join('.ci', 'kernels'));

  // Downloads in parallel: the network, not the CPU, is what they wait for.
  const fetchStarted = Date.now();
  const fetching = Promise.all(
    suites.map(async (s) => {
      const got = await run('bash', [path.join(HERE, 'fetch-kernel.sh'), s.suite]);
      if (got.code !== 0) return { ...s, error: `fetch-kernel.sh ${s.suite} exited ${got.code}` };
      const ramfs = await run('bash', [path.join(HERE, 'make-initramfs.sh'), got.out]);
      if (ramfs.code !== 0) return { ...s, error: `make-initramfs.sh exited ${ramfs.code}` };
      const release = fs.readFileSync(path.join(got.out, 'version'), 'utf8').trim();
      return { ...s, dir: got.out, release };
    }),
  );
  // Meanwhile the guests' JavaScript: the test compiled beside dist/daemon (run
  // by plain node in the guest, not through tap's TypeScript loader).
  note('compiling test/kernels (tsc)');
  const tsc = await run('npx', ['--no-install', 'tsc', '-p', 'test/kernels/tsconfig.json']);
  const fetched = await fetching;
  if (tsc.code !== 0) {
    if (tsc.out) process.stderr.write(`${tsc.out}\n`);
    say(`kernels: tsc -p test/kernels/tsconfig.json exited ${tsc.code}`);
    say('kernels: 0 passed, 1 failed');
    return 1;
  }
  note(`kernels ready in ${seconds(Date.now() - fetchStarted)}`);

  const outcomes = await pool(fetched, jobs, async (k) => {
    if (k.error) return { k, v: { ok: false, pass: 0, fail: 1, problems: [k.error] }, r: null, b: null };
    note(`${k.suite}: booting ${k.release}`);
    const outDir = path.join(logs, k.suite);
    const b = await boot({ kernelDir: k.dir, outDir, run: path.join(HERE, 'guest-run.sh'), cwd: ROOT, timeoutMs });
    const r = readResults(b.results);
    const v = verdict(r);
    if (b.timedOut) v.problems.push(`killed after ${seconds(timeoutMs)}`);
    if (k.expect && !k.expect.test(k.release)) v.problems.push(`expected a kernel matching ${k.expect}, the suite has ${k.release}`);
    if (v.problems.length && v.ok) {
      v.ok = false;
      v.fail = Math.max(v.fail, 1);
    }
    return { k, v, r, b };
  });

  say('');
  say('kernel matrix:');
  let pass = 0;
  let fail = 0;
  for (const { k, v, r, b } of outcomes) {
    pass += v.pass;
    fail += v.fail;
    const m = r?.measures ?? {};
    const facts = [
      m.singleSwapMs !== undefined ? `swap ${m.singleSwapMs} ms` : null,
      m.batchOuterMaps === true ? `batch of 4: ${m.batch4Ms} ms (single ${m.singleMs} ms)` : null,
      m.batchOuterMaps === false ? `batch: ${m.batchError}` : null,
      m.queueBatchSizes ? `queue batch sizes ${[...new Set(m.queueBatchSizes)].join('/')}` : null,
    ].filter(Boolean);
    const timing = b ? `${seconds(b.ms)}${b.retried ? ', retried once: the first boot never reached init' : ''}` : 'not booted';
    say(
      `kernel ${k.suite} ${k.release ?? '?'}: ${v.ok ? 'PASS' : 'FAIL'} ${v.pass} passed, ${v.fail} failed (${timing})` +
        (facts.length ? `; ${facts.join(', ')}` : ''),
    );
    for (const problem of v.problems) say(`  problem: ${problem}`);
    for (const failed of r?.failedTests ?? []) say(`  not ok: ${failed}`);
    if (r?.probe) say(`  probe: ${JSON.stringify(probeSummary(r.probe))}`);
    else if (r) say(`  probe: ${r.probeNote ?? 'none'}`);
    if (!v.ok && b) {
      say(`  logs: ${path.relative(ROOT, path.join(logs, k.suite))}/{console,results}.log; console tail:`);
      for (const line of b.console.trimEnd().split('\n').slice(-15)) say(`    | ${line}`);
    }
  }
  const good = outcomes.filter((o) => o.v.ok).length;
  say(`kernel matrix: ${good} of ${outcomes.length} kernels passed in ${seconds(Date.now() - started)}`);
  say(`kernels: ${pass} passed, ${fail} failed`);
  return fail > 0 || good < outcomes.length ? 1 : 0;
}

// Stopped from outside (CI timeout, ^C): no guest may outlive the matrix.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.on(signal, () => {
    killGuests();
    process.exit(130);
  });
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    say(`kernels: ${err instanceof Error ? err.message : String(err)}`);
    say('kernels: 0 passed, 1 failed');
    process.exitCode = 1;
  },
);
