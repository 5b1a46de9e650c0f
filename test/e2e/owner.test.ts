// One owner: a mimd holds its state directory and its pin root (flock) from
// the start on. A second start over the same directories, or a purge, while
// it runs (a PUT of it in flight) changes nothing - pins, records, slots, the
// link's program - and exits 75 naming the pid that owns them. The lock goes
// with the process: after a SIGKILL the next start takes it.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { netnsLink, pinDir, stateDir } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallConfig,
  firewallKernelView,
  pinLeaves,
  pinnedLink,
  runMimd,
  skipUnlessRoot,
  startApi,
  startDaemon,
  withApi,
  withTimeout,
  type RunningDaemon,
} from '../helpers/daemon';

const EX_TEMPFAIL = 75;
const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';

/** Every file under the state directory with its content: what a second mimd must not touch. */
function stateFiles(dir: string): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of (fs.readdirSync(dir, { recursive: true }) as string[]).map(String).sort()) {
    const file = path.join(dir, name);
    if (fs.statSync(file).isFile()) files[name] = fs.readFileSync(file, 'utf8');
  }
  return files;
}

/** What the running mimd owns, read from bpffs, the state directory and the kernel. */
function owned(pinRoot: string, state: string): unknown {
  const linkPin = pinLeaves(pinRoot).find((p) => p.startsWith('firewall/links/'));
  return {
    pins: pinLeaves(pinRoot),
    records: stateFiles(state),
    kernel: firewallKernelView(pinRoot),
    linkProgram: linkPin ? pinnedLink(path.join(pinRoot, linkPin)).prog_id : null,
  };
}

/** A mimd with one version in blocklist slot 0 and a second PUT paused in the middle of its swap. */
async function busyDaemon(t: Test, pinRoot: string, state: string): Promise<RunningDaemon> {
  const link = netnsLink(t);
  const daemon = startDaemon(t, firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep' }), { env: { MIMD_PAUSE_AT: 'swap:intent' } });
  const running = withApi(daemon, await daemon.waitForLog('started'));
  // The first PUT pauses at its swap (the crash point), and stays in flight.
  void running.api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] }).catch(() => undefined);
  await daemon.waitForLog('paused at crash point');
  return running;
}

t.test('a second start while mimd runs (a PUT in flight) changes nothing and exits 75 naming the owner', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const first = await busyDaemon(t, pinRoot, state);
  const before = owned(pinRoot, state);

  const second = startDaemon(t, first.config);
  const exit = await withTimeout(second.exited, 20_000, 'second mimd exit');
  t.same(exit, { code: EX_TEMPFAIL, signal: null }, 'exit 75 (EX_TEMPFAIL)');
  t.match(second.stderr(), new RegExp(`stateDir ${state}/mimd\\.lock is owned by another mimd \\(pid ${first.child.pid}\\b`), 'names the owner by pid');
  t.notOk(second.logs.some((l) => l.msg === 'restored slots' || l.msg === 'kernel features'), 'stopped before the probe and restore');
  t.same(owned(pinRoot, state), before, 'pins, records, slots and the link program as they were');

  const ready = await first.api('GET', '/readyz');
  t.equal(ready.status, 200, 'the first mimd still answers, ready');
});

t.test('another stateDir over the same pinRoot is refused too, naming the pin root', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const first = await busyDaemon(t, pinRoot, state);
  const before = owned(pinRoot, state);

  const other = stateDir(t);
  const second = startDaemon(t, { ...first.config, stateDir: other });
  t.same(await withTimeout(second.exited, 20_000, 'second mimd exit'), { code: EX_TEMPFAIL, signal: null });
  t.match(second.stderr(), new RegExp(`pinRoot ${pinRoot} is owned by another mimd \\(pid ${first.child.pid}\\b`));
  t.same(owned(pinRoot, state), before, 'nothing of the first changed');
  t.notOk(Object.keys(stateFiles(other)).some((f) => f !== 'mimd.lock'), 'no record in its own state directory');
});

t.test('purge while mimd runs changes nothing and exits 75; the running mimd keeps writing', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = netnsLink(t);
  const first = await startApi(t, firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep' }));
  t.equal((await first.api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] })).status, 201);
  const before = owned(pinRoot, state);

  const purge = await runMimd(t, ['purge'], first.config);
  t.equal(purge.code, EX_TEMPFAIL, 'purge exits 75');
  t.match(purge.stderr, new RegExp(`^mimd: purge failed: stateDir ${state}/mimd\\.lock is owned by another mimd \\(pid ${first.child.pid}\\b`));
  t.same(owned(pinRoot, state), before, 'pins, records and slots as they were');

  const put = await first.api('PUT', `${BL}/1`, { entries: [{ key: '192.0.2.2', value: 1 }] });
  t.equal(put.status, 201, `a later write succeeds: ${JSON.stringify(put.body)}`);
  t.equal((await first.api('GET', '/readyz')).status, 200);
});

t.test('the lock goes with its process: after SIGKILL the next start owns the directories, and purge works once mimd stopped', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const first = await busyDaemon(t, pinRoot, state);
  first.child.kill('SIGKILL');
  t.match(await first.exited, { signal: 'SIGKILL' });

  const next = await startApi(t, first.config);
  t.ok(next.child.pid, 'a new mimd started over the same directories');
  const put = await next.api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.3', value: 1 }] });
  t.equal(put.status, 201, `and changes the slot the killed one was changing: ${JSON.stringify(put.body)}`);
  t.same(await next.stop('SIGTERM'), { code: 0, signal: null });

  const purge = await runMimd(t, ['purge'], first.config);
  t.equal(purge.code, 0, `purge runs once no mimd owns the directories: ${purge.stderr}`);
  t.same(pinLeaves(pinRoot), [], 'purge removed every pin');
});
