// The pure side of the kernel probes: which swap strategy each kernel gets,
// the HASH_OF_MAPS replace guard (refuse only occupied slots of refusing
// HASH_OF_MAPS maps on kernels without atomic replace, before the kernel is
// touched), the swap queue honouring the strategy, the report, and the
// onNonAtomicReplace configuration key.
import * as path from 'node:path';
import t from 'tap';
import {
  deriveSwapStrategy,
  kernelReport,
  mapsAtRisk,
  replaceGuard,
  waitVerdict,
  type ReplaceGuardedMap,
} from '../../daemon/src/domain/kernel-features';
import { SwapQueue } from '../../daemon/src/domain/swap-queue';
import type { KernelMap, KernelOuterMap } from '../../daemon/src/domain/ports';
import { IdentityMap } from '../helpers/fake-maps';
import { ConfigError, loadConfig } from '../../daemon/src/config/load';

t.test('strategy: batch only where a batch costs one wait (or waits are too short to tell)', async (t) => {
  // The kernels of the README table, as their probes answer.
  t.equal(deriveSwapStrategy(false, 'unknown', 4), 'concurrent', '5.10: no batch on outer maps');
  t.equal(deriveSwapStrategy(true, false, 4), 'concurrent', '6.1: one wait per element');
  t.equal(deriveSwapStrategy(true, true, 4), 'batch', '6.12: one wait per batch');
  t.equal(deriveSwapStrategy(true, 'indistinguishable', 4), 'batch', '7.x: expedited waits');
  t.equal(deriveSwapStrategy(true, 'unknown', 4), 'concurrent', 'batch works but its cost is unknown: concurrent singles are never much worse');
  t.equal(deriveSwapStrategy('unknown', 'unknown', 4), 'concurrent');
  t.equal(deriveSwapStrategy(false, 'unknown', 1), 'single', 'concurrency 1: one at a time');
  t.equal(deriveSwapStrategy(true, true, 1), 'batch', 'a batch is one update: concurrency does not matter');
});

t.test('timing verdict: the README table\'s kernels, 8-slot batches', async (t) => {
  t.equal(waitVerdict(16, 128, 8).value, false, '6.1: 16 ms against 8 x 16 ms');
  t.equal(waitVerdict(16, 17, 8).value, true, '6.12: one wait per batch');
  t.equal(waitVerdict(9, 20, 8).value, true, 'noisy, but under sqrt(8) times');
  t.equal(waitVerdict(0.06, 1.1, 8).value, 'indistinguishable', '7.x: a high ratio of tiny times');
  t.equal(waitVerdict(0.25, 0.3, 8).value, 'indistinguishable', 'expedited waits: both under a millisecond');
  t.equal(waitVerdict(0.3, 12, 8).value, false, 'cheap single updates but a batch that costs one wait each');
});

const FakeInner = IdentityMap;

/** An outer map whose slots are a Map; records kernel calls. */
class FakeOuter extends FakeInner implements KernelOuterMap {
  readonly slots = new Map<number, number>();
  readonly calls: string[] = [];
  inFlight = 0;
  maxInFlight = 0;
  constructor() {
    super(100);
  }
  innerId(key: Buffer): number | null {
    return this.slots.get(key.readUInt32LE(0)) ?? null;
  }
  async setInner(key: Buffer, inner: KernelMap): Promise<void> {
    this.calls.push(`single ${key.readUInt32LE(0)}`);
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((resolve) => setTimeout(resolve, 5));
    this.inFlight--;
    this.slots.set(key.readUInt32LE(0), inner.id);
  }
  async setInnerBatch(keys: readonly Buffer[], inners: readonly KernelMap[]): Promise<void> {
    this.calls.push(`batch ${keys.map((k) => k.readUInt32LE(0)).join(',')}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
    keys.forEach((k, i) => this.slots.set(k.readUInt32LE(0), (inners[i] as KernelMap).id));
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

function guarded(handle: KernelOuterMap, type: string, policy: 'warn' | 'refuse', name = 'policy'): ReplaceGuardedMap {
  return { handle, ref: `firewall/${name}`, type, field: `objects[0].maps.${name}`, policy };
}

t.test('guard: refuses a swap into an occupied slot of a refusing HASH_OF_MAPS, and nothing else', async (t) => {
  const hash = new FakeOuter();
  const array = new FakeOuter();
  const warned = new FakeOuter();
  hash.slots.set(7, 1);
  array.slots.set(7, 1);
  warned.slots.set(7, 1);
  const maps = [guarded(hash, 'HASH_OF_MAPS', 'refuse'), guarded(array, 'ARRAY_OF_MAPS', 'refuse', 'blocklist'), guarded(warned, 'HASH_OF_MAPS', 'warn', 'other')];

  t.equal(replaceGuard(maps, true), undefined, 'atomic replace: no guard at all');
  t.strictSame(mapsAtRisk(maps, true), []);
  t.strictSame(mapsAtRisk(maps, false).map((m) => m.ref), ['firewall/policy', 'firewall/other'], 'both HASH_OF_MAPS maps are warned about');

  for (const atomic of [false, 'unknown'] as const) {
    const guard = replaceGuard(maps, atomic);
    if (!guard) throw new Error('expected a guard');
    const err = guard(hash, u32(7));
    t.ok(err, `${String(atomic)}: occupied slot refused`);
    t.equal(err?.code, 'MIMD_NON_ATOMIC_REPLACE');
    t.equal(err?.statusCode, 409);
    t.equal(err?.field, 'slot');
    t.match(err?.message, /objects\[0\]\.maps\.policy\.onNonAtomicReplace is refuse/, 'names the configuration key');
    t.match(err?.message, /firewall\/policy slot 0x07000000 is occupied/);
    t.equal(guard(hash, u32(8)), null, 'an empty slot is filled as usual (an insert is atomic)');
    t.equal(guard(array, u32(7)), null, 'ARRAY_OF_MAPS replace is always atomic');
    t.equal(guard(warned, u32(7)), null, 'warn lets it through');
  }
});

t.test('swap queue: a refused swap never reaches the kernel; others still go', async (t) => {
  const outer = new FakeOuter();
  outer.slots.set(1, 1);
  const queue = new SwapQueue({ capacity: 8, concurrency: 2, guard: replaceGuard([guarded(outer, 'HASH_OF_MAPS', 'refuse')], false) });
  await t.rejects(queue.set(outer, u32(1), new FakeInner(2)), { code: 'MIMD_NON_ATOMIC_REPLACE' });
  t.strictSame(outer.calls, [], 'the kernel was not touched');
  t.equal(outer.slots.get(1), 1, 'the slot holds what it held');
  t.equal(queue.depth, 0, 'the refusal took no place in the queue');
  await queue.set(outer, u32(2), new FakeInner(3));
  t.equal(outer.slots.get(2), 3, 'an empty slot is filled');
});

async function burst(strategy: 'batch' | 'concurrent' | 'single'): Promise<FakeOuter> {
  const outer = new FakeOuter();
  const queue = new SwapQueue({ capacity: 64, concurrency: 4, strategy });
  await Promise.all(Array.from({ length: 6 }, (_, i) => queue.set(outer, u32(i), new FakeInner(10 + i))));
  return outer;
}

t.test('swap queue: the strategy decides batches and concurrency', async (t) => {
  const batch = await burst('batch');
  t.ok(batch.calls.some((c) => c.startsWith('batch')), 'batch: swaps that wait go in one batch');

  const concurrent = await burst('concurrent');
  t.notOk(concurrent.calls.some((c) => c.startsWith('batch')), 'concurrent: never a batch');
  t.ok(concurrent.maxInFlight > 1, 'concurrent: several single updates at once');
  t.equal(concurrent.slots.size, 6);

  const single = await burst('single');
  t.notOk(single.calls.some((c) => c.startsWith('batch')), 'single: never a batch');
  t.equal(single.maxInFlight, 1, 'single: one update at a time');
  t.equal(single.slots.size, 6);
  t.equal(new SwapQueue({ capacity: 1, concurrency: 1 }).strategy, 'batch', 'the default keeps group commit');
});

t.test('report: HASH_OF_MAPS maps with their policy and whether they are at risk', async (t) => {
  const hash = new FakeOuter();
  const array = new FakeOuter();
  const maps = [guarded(hash, 'HASH_OF_MAPS', 'refuse'), guarded(array, 'ARRAY_OF_MAPS', 'warn', 'blocklist')];
  t.strictSame(kernelReport(null, 'batch', maps), {
    features: null,
    swapStrategy: 'batch',
    hashOfMaps: [{ map: 'firewall/policy', field: 'objects[0].maps.policy.onNonAtomicReplace', policy: 'refuse', atRisk: true }],
  }, 'no probe results: not known to be atomic, so at risk');
});

t.test('config: onNonAtomicReplace is warn or refuse, and a bad value names the key', async (t) => {
  const write = (value: string) => {
    const dir = t.testdir({
      bpf: { 'firewall.bpf.o': '' },
      'override.yaml': `objects:\n  - name: firewall\n    path: bpf/firewall.bpf.o\n    maps:\n      policy:\n        formats: {}\n        onNonAtomicReplace: ${value}\n`,
    });
    return () => loadConfig(path.join(dir, 'override.yaml'), { baseDir: dir });
  };
  const config = write('refuse')();
  t.equal(config.objects[0]?.maps['policy']?.onNonAtomicReplace, 'refuse');
  t.strictSame(config.objects[0]?.maps['policy']?.formats, {}, 'formats still default');
  try {
    write('sometimes')();
    t.fail('expected a ConfigError');
  } catch (err) {
    t.ok(err instanceof ConfigError);
    t.match((err as Error).message, /objects\[0\]\.maps\.policy\.onNonAtomicReplace/);
    t.match((err as Error).message, /warn/);
  }
});
