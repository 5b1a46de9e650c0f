// The swap path against whatever kernel this runs on: written for the kernel
// matrix (scripts/kernels/), which boots Debian's 5.10, 6.1, 6.12 and 7.x under
// qemu and runs the compiled file there with plain node. Node is 6-20x slower
// in the guest, so this file keeps to what differs between kernels: the addon's
// swap, the domain's put / rollback / activate, the swap queue's group commit
// (and its fallback where the kernel cannot batch outer maps), and the error
// mapping of a wrong inner template. It also runs on the host (any kernel).
//
// Measurements go out as TAP comments starting `# measure ` with a JSON object,
// for the matrix's summary.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';
import t from 'tap';
import pino from 'pino';
import { BpfMap, BpfObject, MapType, XdpAction } from '../../daemon/src/kernel';
import { KernelAdapter } from '../../daemon/src/kernel/adapter';
import { HostService } from '../../daemon/src/domain/host';
import { SlotsService } from '../../daemon/src/domain/slots-service';
import { SwapQueue } from '../../daemon/src/domain/swap-queue';
import { innerMapMisfit } from '../../daemon/src/domain/template';
import type { KernelOuterMap } from '../../daemon/src/domain/ports';
import { FileStateStore } from '../../daemon/src/state/file-store';
import { ipv4Frame, ipv4ToBeU32Buffer } from '../helpers/packet';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

/** The repo root, found from this file whether it runs as .ts or from dist/. */
function repoRoot(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    if (fs.existsSync(path.join(dir, 'bpf', 'firewall.bpf.o')) && fs.existsSync(path.join(dir, 'package.json'))) return dir;
    if (path.dirname(dir) === dir) throw new Error('cannot find the repo root (bpf/firewall.bpf.o) above ' + __dirname);
  }
}
const REPO = repoRoot();
const FIREWALL = path.join(REPO, 'bpf', 'firewall.bpf.o');
const FIREWALL_INCOMPAT = path.join(REPO, 'test', 'fixtures', 'firewall_incompat.bpf.o');
// As config/default.yaml declares them.
const FIREWALL_MAPS = {
  blocklist: { formats: { key: 'ipv4' as const }, onNonAtomicReplace: 'warn' as const },
  policy: { formats: { key: 'cidr' as const }, onNonAtomicReplace: 'warn' as const },
};
const LISTED = '198.51.100.7';
const LISTED_HEX = '0xc6336407';
const OTHER_HEX = '0xcb007101';

/**
 * What this kernel is expected to do with a batch update of an outer map, as
 * measured on Debian's kernels (README, "Kernel matrix"): refused with ENOTSUPP
 * before 6.1, applied from 6.1 on.
 */
const [major = 0, minor = 0] = os.release().split(/[.-]/).map(Number);
const kernelBatchesOuterMaps = major > 6 || (major === 6 && minor >= 1);

const u32 = (value: number): Buffer => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
};
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const round = (ms: number): number => Math.round(ms * 1000) / 1000;
const measure = (t: Test, what: Record<string, unknown>): void => t.comment(`measure ${JSON.stringify(what)}`);
async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return [value, Number(process.hrtime.bigint() - started) / 1e6];
}

/** A fresh directory under /sys/fs/bpf, removed with everything pinned in it. */
function pinDir(t: Test): string {
  const dir = path.join('/sys/fs/bpf', `mimd-kernels-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function stateDir(t: Test): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mimd-kernels-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function loadFirewall(t: Test): Promise<{ obj: BpfObject; blocklist: BpfMap; policy: BpfMap }> {
  const obj = BpfObject.open(FIREWALL);
  t.teardown(() => obj.close());
  await obj.load();
  const blocklist = obj.map('blocklist');
  const policy = obj.map('policy');
  t.teardown(() => {
    blocklist.close();
    policy.close();
  });
  return { obj, blocklist, policy };
}

/** An inner map of the blocklist template (HASH, 4-byte key, 1-byte value) holding `sources`. */
async function blocklistInner(t: Test, sources: string[], valueSize = 1): Promise<BpfMap> {
  const inner = await BpfMap.create({ type: MapType.HASH, name: 'kmx_inner', keySize: 4, valueSize, maxEntries: 65536 });
  t.teardown(() => inner.close());
  for (const source of sources) await inner.update(ipv4ToBeU32Buffer(source), Buffer.alloc(valueSize, 1));
  return inner;
}

/** The firewall under mimd's host service with a slot service over it (no attachment). */
async function service(t: Test, object = FIREWALL, pinRoot = pinDir(t), states = stateDir(t)) {
  const kernel = new KernelAdapter();
  const state = new FileStateStore(states);
  const logger = pino({ level: 'silent' });
  const host = new HostService({
    objects: [{ name: 'firewall', path: object, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: 'refuse' }],
    pinRoot,
    kernel,
    state,
    logger,
  });
  await host.start();
  t.teardown(() => host.close());
  const swaps = new SwapQueue({ capacity: 1024, concurrency: 4 });
  const slots = new SlotsService({ maps: host.managedMaps(), kernel, swaps, retain: 3, pinRoot, state, logger, ready: () => host.running });
  t.teardown(() => slots.close());
  return { host, slots, swaps, kernel, pinRoot, states };
}

t.comment(`kernel ${os.release()}: batch updates of outer maps expected to ${kernelBatchesOuterMaps ? 'work' : 'fail with ENOTSUPP'}`);

t.test('addon: a swap changes the verdict of a program loaded once; a wrong inner map is a bare EINVAL', async (t) => {
  const { obj, blocklist } = await loadFirewall(t);
  const listing = await blocklistInner(t, [LISTED]);
  const other = await blocklistInner(t, ['203.0.113.1']);
  const frame = ipv4Frame({ src: LISTED, dst: '192.0.2.1' });
  const verdict = async (): Promise<number> => (await obj.testRun('xdp_firewall', frame)).retval;
  const inSlot = (slot: number): number | null => blocklist.lookup(u32(slot))?.readUInt32LE(0) ?? null;

  t.equal(await verdict(), XdpAction.PASS, 'empty slots: pass');
  const times: number[] = [];
  for (let round = 0; round < 3; round++) {
    times.push((await timed(() => blocklist.update(u32(0), u32(listing.fd))))[1]);
    t.equal(inSlot(0), listing.info().id);
    t.equal(await verdict(), XdpAction.DROP, `round ${round}: the listed source drops`);
    times.push((await timed(() => blocklist.update(u32(0), u32(other.fd))))[1]);
    t.equal(await verdict(), XdpAction.PASS, `round ${round}: after the swap back it passes`);
  }
  measure(t, { singleSwapMs: round(median(times)), singleSwapSamples: times.map(round) });

  const wrong = await blocklistInner(t, [], 2);
  await t.rejects(blocklist.update(u32(0), u32(wrong.fd)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem' }, 'the kernel says only EINVAL');
  t.equal(inSlot(0), other.info().id, 'the slot keeps its map');
});

t.test('addon: a batch update of an outer map, as this kernel does it', async (t) => {
  // blocklist (ARRAY_OF_MAPS, 4 slots, HASH inner maps): the kernel's batch support, nothing else
  const { blocklist } = await loadFirewall(t);
  const keys = [0, 1, 2, 3].map(u32);
  const inners = await Promise.all(keys.map(() => blocklistInner(t, [])));
  const values = Buffer.concat(inners.map((m) => u32(m.fd)));
  const outcome = await timed(() => blocklist.updateBatch(Buffer.concat(keys), values)).then(
    ([count, ms]) => ({ count, ms }),
    (err: Error & { code?: string; errno?: number }) => err,
  );
  const inSlots = (): (number | null)[] => keys.map((k) => blocklist.lookup(k)?.readUInt32LE(0) ?? null);
  if (kernelBatchesOuterMaps) {
    t.notOk(outcome instanceof Error, `the batch is applied (${outcome instanceof Error ? outcome.message : 'ok'})`);
    if (!(outcome instanceof Error)) {
      t.equal(outcome.count, keys.length, 'every element applied');
      t.same(inSlots(), inners.map((m) => m.info().id), 'every slot holds its inner map');
      // one slot for comparison: 6.1 waits once per element, 6.12 once per batch
      const [, oneMs] = await timed(() => blocklist.update(u32(0), u32(inners[1]!.fd)));
      measure(t, { batchOuterMaps: true, batch4Ms: round(outcome.ms), singleMs: round(oneMs) });
    }
  } else {
    t.match(outcome, { code: 'ENOTSUPP', errno: 524 }, 'refused with ENOTSUPP (524)');
    t.same(inSlots(), keys.map(() => null), 'nothing applied');
    measure(t, { batchOuterMaps: false, batchError: (outcome as { code?: string }).code ?? String(outcome) });
  }
});

t.test('swap queue: concurrent swaps of one outer map all land, batched where the kernel can', async (t) => {
  const { host, swaps, kernel } = await service(t);
  const source = host.managedMaps().find((m) => m.name === 'blocklist');
  if (!source) throw new Error('the host manages no blocklist map');
  const outer: KernelOuterMap = source.handle;
  const slots = [0, 1, 2, 3];
  const inners = await Promise.all([...slots, ...slots].map(() => kernel.createMap({ ...source.inner, name: 'kmx_queue' })));
  t.teardown(() => inners.forEach((m) => m.close()));
  const inSlots = (): (number | null)[] => slots.map((slot) => outer.innerId(u32(slot)));

  // Called in one turn of the event loop: the queue sends them as one batch.
  const [outcomes, wallMs] = await timed(() => Promise.all(slots.map((slot) => swaps.set(outer, u32(slot), inners[slot]!))));
  t.same(inSlots(), slots.map((slot) => inners[slot]!.id), 'every slot holds its new inner map');
  const sizes = outcomes.map((o) => o.batchSize);
  if (kernelBatchesOuterMaps) {
    t.same(sizes, slots.map(() => slots.length), 'the swaps went as one batch');
  } else {
    t.same(sizes, slots.map(() => 1), 'the kernel cannot batch: every swap went as a single update');
  }
  // A second round on the same queue: after a refused batch the queue does not try again.
  const again = await Promise.all(slots.map((slot) => swaps.set(outer, u32(slot), inners[slot + 4]!)));
  t.same(inSlots(), slots.map((slot) => inners[slot + 4]!.id), 'the second round landed too');
  if (!kernelBatchesOuterMaps) t.same(again.map((o) => o.batchSize), [1, 1, 1, 1], 'still single updates');
  t.equal(swaps.depth, 0, 'the queue is empty');
  measure(t, { queue4WallMs: round(wallMs), queueBatchSizes: sizes });
});

t.test('slot service: put, rollback, activate, clear; the program sees each change', async (t) => {
  const f = await service(t);
  // a second object on the host's outer maps, for test runs
  const mapId = (name: string): number => f.slots.listMaps().find((m) => m.name === name)?.mapId ?? 0;
  const blocklist = BpfMap.fromId(mapId('blocklist'));
  const policy = BpfMap.fromId(mapId('policy'));
  const probe = BpfObject.open(FIREWALL);
  probe.reuseMap('blocklist', blocklist);
  probe.reuseMap('policy', policy);
  await probe.load();
  t.teardown(() => {
    probe.close();
    blocklist.close();
    policy.close();
  });
  const verdict = async (): Promise<number> => (await probe.testRun('xdp_firewall', ipv4Frame({ src: LISTED, dst: '192.0.2.1' }))).retval;
  const inSlot = (): number | null => blocklist.lookup(u32(0))?.readUInt32LE(0) ?? null;
  const block = (hex: string) => ({ entries: [{ key: hex, value: 1 }] });

  const first = await f.slots.putSlot('firewall', 'blocklist', '0', block(LISTED_HEX));
  t.match(first, { version: 1, previousVersion: null, created: true });
  t.equal(inSlot(), first.mapId);
  t.equal(await verdict(), XdpAction.DROP, 'after PUT the listed source drops');

  const second = await f.slots.putSlot('firewall', 'blocklist', '0', block(OTHER_HEX), 1);
  t.match(second, { version: 2, previousVersion: 1 });
  t.equal(await verdict(), XdpAction.PASS, 'version 2 lets it pass');

  const back = await f.slots.rollback('firewall', 'blocklist', '0');
  t.match(back, { version: 1, previousVersion: 2 });
  t.equal(inSlot(), first.mapId, 'rollback puts the very same inner map back');
  t.equal(await verdict(), XdpAction.DROP);

  await f.slots.activate('firewall', 'blocklist', '0', 2);
  t.equal(inSlot(), second.mapId);
  t.equal(await verdict(), XdpAction.PASS);

  const cleared = await f.slots.clearSlot('firewall', 'blocklist', '0');
  t.same(cleared, { slot: 0, previousVersion: 2, previousMapId: second.mapId });
  t.equal(inSlot(), null, 'the slot is empty in the kernel');
  await f.slots.rollback('firewall', 'blocklist', '0');
  t.equal(inSlot(), second.mapId, 'rollback after clear restores the last active version');

  // policy: a HASH_OF_MAPS keyed by ifindex holding LPM tries; test runs come in on lo (ifindex 1)
  const trie = await f.slots.putSlot('firewall', 'policy', '1', { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] });
  t.match(trie, { slot: 1, version: 1, created: true });
  t.equal(policy.lookup(u32(1))?.readUInt32LE(0), trie.mapId, 'the policy slot holds the new trie');
  const run = async (src: string): Promise<number> => (await probe.testRun('xdp_firewall', ipv4Frame({ src, dst: '192.0.2.1' }))).retval;
  t.equal(await run('10.9.8.7'), XdpAction.DROP, 'the trie drops 10/8');
  await f.slots.putSlot('firewall', 'policy', '1', { entries: [] });
  t.equal(await run('10.9.8.7'), XdpAction.PASS, 'an empty trie swapped in: pass');
  await f.slots.rollback('firewall', 'policy', '1');
  t.equal(await run('10.9.8.7'), XdpAction.DROP, 'rolled back: drop again');

  // errors change nothing
  const before = inSlot();
  await t.rejects(f.slots.putSlot('firewall', 'blocklist', '0', block('0x0102')), { code: 'MIMD_BAD_INPUT', field: 'entries[0].key' });
  t.match(
    await f.slots.putSlot('firewall', 'blocklist', '0', { entries: [], maxEntries: 2 ** 31 }).catch((e: unknown) => e),
    { statusCode: 422, field: 'maxEntries', errno: 'E2BIG' },
    "the kernel's E2BIG is named with the field",
  );
  t.equal(inSlot(), before, 'refused requests leave the slot alone');
});

t.test('an inner map of the wrong shape: the kernel says EINVAL, mimd names the field', async (t) => {
  const { host, kernel } = await service(t);
  const source = host.managedMaps().find((m) => m.name === 'blocklist');
  if (!source) throw new Error('the host manages no blocklist map');
  const good = await kernel.createMap({ ...source.inner, name: 'kmx_good' });
  const wrong = await kernel.createMap({ ...source.inner, name: 'kmx_wrong', valueSize: source.inner.valueSize + 1 });
  t.teardown(() => {
    good.close();
    wrong.close();
  });
  await source.handle.setInner(u32(1), good);
  await t.rejects(source.handle.setInner(u32(1), wrong), { code: 'EINVAL', errno: 22 }, 'the kernel only says EINVAL');
  t.equal(source.handle.innerId(u32(1)), good.id, 'the slot keeps its map');
  t.same(
    innerMapMisfit(wrong.definition(), source.inner),
    { field: 'valueSize', found: String(source.inner.valueSize + 1), wanted: String(source.inner.valueSize) },
    'the domain names the field the kernel compared',
  );
  t.equal(innerMapMisfit(good.definition(), source.inner), null, 'and finds nothing wrong with a map that fits');
});

t.test('a pinned outer map with another inner template is refused with the field, not a bare EINVAL', async (t) => {
  const pinRoot = pinDir(t);
  const states = stateDir(t);
  {
    const first = await service(t, FIREWALL, pinRoot, states);
    first.slots.close();
    await first.host.close('keep');
  }
  // firewall_incompat differs only in blocklist's inner flags (NO_PREALLOC)
  const kernel = new KernelAdapter();
  const host = new HostService({
    objects: [{ name: 'firewall', path: FIREWALL_INCOMPAT, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: 'refuse' }],
    pinRoot,
    kernel,
    state: new FileStateStore(states),
    logger: pino({ level: 'silent' }),
  });
  t.teardown(() => host.close());
  await t.rejects(host.start(), { code: 'MIMD_CONFIG_MISMATCH', message: /innerTemplate\.flags is \[\] in the pin, \[NO_PREALLOC\] in the object/ });
});
