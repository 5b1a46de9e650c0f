// SwapQueue against a fake outer map that records every kernel call: swaps
// that arrive while an update of the same outer map is in flight go in one
// batch, every caller gets its own result, a failing element fails alone and
// the rest is sent again, a kernel that cannot batch gets single updates, and
// the bounds (concurrency, capacity, maxBatch) hold across outer maps.
import t from 'tap';
import { SwapQueue, type SwapOutcome, type SwapQueueOptions } from '../../daemon/src/domain/swap-queue';
import type { KernelMap, KernelOuterMap, MapShape } from '../../daemon/src/domain/ports';
import { IdentityMap, notUsed } from '../helpers/fake-maps';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Call {
  kind: 'batch' | 'single' | 'delete';
  /** slot numbers, in the order the call carried them */
  slots: number[];
}

/** Updates in the kernel at once, over every fake outer map that shares it. */
class InFlight {
  now = 0;
  max = 0;
  enter(): void {
    this.now++;
    this.max = Math.max(this.max, this.now);
  }
  leave(): void {
    this.now--;
  }
}

/** An update held open in the fake kernel until released. */
interface Hold {
  /** resolves once the held call is in the kernel */
  readonly started: Promise<void>;
  release(): void;
}

interface KernelFailure {
  code: string;
  errno: number;
}

function kernelError(failure: KernelFailure, syscall: string, extra: Record<string, unknown> = {}): Error {
  return Object.assign(new Error(`${syscall}: ${failure.code}`), { code: failure.code, errno: failure.errno, syscall, ...extra });
}

const slotOf = (key: Buffer): number => key.readUInt32LE(0);

function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value);
  return b;
}

/** An inner map: only its identity matters to the queue. */
const FakeInner = IdentityMap;
type FakeInner = IdentityMap;

/**
 * An outer map whose slots are a Map, applying a batch in order and stopping
 * at the first failing element as the kernel does (the error carries
 * `processed`). Every call takes one turn of the event loop, or waits for a
 * hold, so that calls overlap as real ones do.
 */
class FakeOuter implements KernelOuterMap {
  readonly keySize = 4;
  readonly valueSize = 4;
  readonly calls: Call[] = [];
  /** slot -> id of the inner map in it */
  readonly slots = new Map<number, number>();
  private readonly failures = new Map<number, KernelFailure>();
  private readonly holds: { started: () => void; released: Promise<void> }[] = [];
  /**
   * errno name the kernel answers every batch update with before it looks at
   * any element: ENOTSUPP from a kernel without batch ops on outer maps,
   * EPERM for a frozen outer map.
   */
  refuseBatch: 'ENOTSUPP' | 'EOPNOTSUPP' | 'EPERM' | null = null;
  /**
   * What `processed` says then. 'zero' is the contract of KernelOuterMap;
   * 'untouched' is what libbpf reports today: the kernel returns before it
   * writes batch.count back, so the count sent comes back unchanged.
   */
  refusalCount: 'zero' | 'untouched' = 'zero';

  constructor(
    readonly id: number,
    private readonly inFlight: InFlight,
  ) {}

  /** Every update of `slot` fails with this error (in a batch and alone). */
  failSlot(slot: number, failure: KernelFailure = { code: 'EINVAL', errno: 22 }): void {
    this.failures.set(slot, failure);
  }

  /** The next call that reaches this map stays in the kernel until released. */
  holdNext(): Hold {
    let started!: () => void;
    let release!: () => void;
    const startedP = new Promise<void>((resolve) => (started = resolve));
    const released = new Promise<void>((resolve) => (release = resolve));
    this.holds.push({ started, released });
    return { started: startedP, release };
  }

  private async kernel<T>(call: Call, work: () => T): Promise<T> {
    this.calls.push(call);
    this.inFlight.enter();
    try {
      const hold = this.holds.shift();
      if (hold) {
        hold.started();
        await hold.released;
      } else {
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
      return work();
    } finally {
      this.inFlight.leave();
    }
  }

  setInner(key: Buffer, inner: KernelMap): Promise<void> {
    const slot = slotOf(key);
    return this.kernel({ kind: 'single', slots: [slot] }, () => {
      const failure = this.failures.get(slot);
      if (failure) throw kernelError(failure, 'bpf_map_update_elem');
      this.slots.set(slot, inner.id);
    });
  }

  setInnerBatch(keys: readonly Buffer[], inners: readonly KernelMap[]): Promise<void> {
    const slots = keys.map(slotOf);
    return this.kernel({ kind: 'batch', slots }, () => {
      if (this.refuseBatch) {
        const errno = { ENOTSUPP: 524, EOPNOTSUPP: 95, EPERM: 1 }[this.refuseBatch];
        const processed = this.refusalCount === 'zero' ? 0 : slots.length;
        throw kernelError({ code: this.refuseBatch, errno }, 'bpf_map_update_batch', { processed });
      }
      slots.forEach((slot, i) => {
        const failure = this.failures.get(slot);
        if (failure) throw kernelError(failure, 'bpf_map_update_batch', { processed: i });
        this.slots.set(slot, inners[i]!.id);
      });
    });
  }

  delete(key: Buffer): Promise<boolean> {
    const slot = slotOf(key);
    return this.kernel({ kind: 'delete', slots: [slot] }, () => this.slots.delete(slot));
  }

  innerId(key: Buffer): number | null {
    return this.slots.get(slotOf(key)) ?? null;
  }

  lookup(key: Buffer): Buffer | null {
    const id = this.innerId(key);
    return id === null ? null : u32(id);
  }

  update = notUsed('update (setInner is the way into a slot)');
  nextKey = notUsed('nextKey');
  definition = notUsed('definition') as () => MapShape;
  writeEntries = notUsed('writeEntries');
  readAll = notUsed('readAll');
  pin = notUsed('pin');
  close = notUsed('close');
}

let nextId = 1000;
const inner = (): FakeInner => new FakeInner(nextId++);

function setup(options: Partial<SwapQueueOptions> = {}, maps = 1) {
  const inFlight = new InFlight();
  const outers = Array.from({ length: maps }, (_, i) => new FakeOuter(i + 1, inFlight));
  const queue = new SwapQueue({ capacity: 1024, concurrency: 4, ...options });
  return { queue, inFlight, outers, outer: outers[0]! };
}

/** Lets the event loop turn: work that should not start has every chance to. */
async function turns(n = 20): Promise<void> {
  for (let i = 0; i < n; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** Waits, turn by turn, until `condition` holds; fails the test if it never does. */
async function until(t: Test, condition: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 1000 && !condition(); i++) await new Promise<void>((resolve) => setImmediate(resolve));
  if (!condition()) t.fail(`never happened: ${what}`);
}

type Settled = { ok: true; outcome: SwapOutcome } | { ok: false; err: Error & { code?: string } };

function settle(promise: Promise<SwapOutcome>): Promise<Settled> {
  return promise.then(
    (outcome) => ({ ok: true as const, outcome }),
    (err: Error) => ({ ok: false as const, err }),
  );
}

/**
 * Puts a swap of slot 99 in flight and holds it there, queues `slots` behind
 * it, then lets it go: everything queued arrived while an update of the map
 * was in the kernel. Returns each queued swap's result, the inner maps it
 * carried, and the calls made after the held one.
 */
async function behindHeldSwap(t: Test, queue: SwapQueue, outer: FakeOuter, slots: number[]) {
  const hold = outer.holdNext();
  const first = queue.set(outer, u32(99), inner());
  await hold.started;
  const callsBefore = outer.calls.length;
  const inners = slots.map(() => inner());
  const results = slots.map((slot, i) => settle(queue.set(outer, u32(slot), inners[i]!)));
  await turns();
  t.equal(outer.calls.length, callsBefore, 'nothing else of this outer map enters the kernel while its update is in flight');
  hold.release();
  t.match(await first, { batchSize: 1 }, 'the swap that found the map idle went alone');
  return { results: await Promise.all(results), inners, calls: outer.calls.slice(callsBefore) };
}

t.test('swaps that arrive while one is in flight go together in one batch, each with its own result', async (t) => {
  const { queue, outer } = setup();
  const { results, inners, calls } = await behindHeldSwap(t, queue, outer, [0, 1, 2, 3, 4]);
  t.same(calls, [{ kind: 'batch', slots: [0, 1, 2, 3, 4] }], 'one batch update, in arrival order');
  results.forEach((r, i) => {
    t.ok(r.ok, `swap ${i} resolved`);
    if (!r.ok) return;
    t.equal(r.outcome.batchSize, 5, `swap ${i}: batchSize is the whole batch`);
    t.ok(Number.isFinite(r.outcome.swapMs) && r.outcome.swapMs >= 0, `swap ${i}: swapMs is a duration`);
  });
  t.same(
    [0, 1, 2, 3, 4].map((slot) => outer.slots.get(slot)),
    inners.map((m) => m.id),
    'every slot holds the inner map its caller asked for',
  );
  t.equal(queue.depth, 0);
});

t.test('swaps of one outer map issued together go in one batch; an idle map takes a lone swap as a single update', async (t) => {
  const { queue, outer } = setup();
  const alone = await queue.set(outer, u32(7), inner());
  t.same(alone, { swapMs: alone.swapMs, batchSize: 1 });
  t.same(outer.calls, [{ kind: 'single', slots: [7] }], 'a batch of one is a plain update');

  const outcomes = await Promise.all([1, 2, 3].map((slot) => queue.set(outer, u32(slot), inner())));
  t.same(outer.calls.slice(1), [{ kind: 'batch', slots: [1, 2, 3] }]);
  t.same(outcomes.map((o) => o.batchSize), [3, 3, 3]);
});

t.test('a failing element fails alone; those before and after it land, with the right number of kernel calls', async (t) => {
  const cases: { failing: number; calls: number[][] }[] = [
    { failing: 0, calls: [[0, 1, 2, 3, 4], [1, 2, 3, 4]] },
    { failing: 2, calls: [[0, 1, 2, 3, 4], [3, 4]] },
    { failing: 3, calls: [[0, 1, 2, 3, 4], [4]] },
    { failing: 4, calls: [[0, 1, 2, 3, 4]] },
  ];
  for (const c of cases) {
    await t.test(`element ${c.failing} of 5 fails`, async (t) => {
      const { queue, outer } = setup();
      const old = inner();
      outer.slots.set(c.failing, old.id);
      outer.failSlot(c.failing);
      const { results, inners, calls } = await behindHeldSwap(t, queue, outer, [0, 1, 2, 3, 4]);
      t.same(calls.map((call) => call.slots), c.calls, 'the rest after the failure is sent again, without it');
      t.equal(calls[0]?.kind, 'batch');
      const failed = results[c.failing];
      t.match(failed, { ok: false, err: { code: 'EINVAL', errno: 22 } }, 'the failing swap gets the kernel error');
      t.equal(outer.slots.get(c.failing), old.id, 'the failing slot keeps its map');
      for (const i of [0, 1, 2, 3, 4].filter((i) => i !== c.failing)) {
        const r = results[i]!;
        t.ok(r.ok, `swap ${i} landed`);
        t.equal(outer.slots.get(i), inners[i]!.id, `slot ${i} holds its new map`);
        // landed before the failure: the failed batch applied c.failing of them; after: the resent rest
        const expected = i < c.failing ? c.failing : 4 - c.failing;
        if (r.ok) t.equal(r.outcome.batchSize, expected, `swap ${i}: batchSize counts the update that applied it`);
      }
      t.equal(queue.depth, 0);
    });
  }
});

t.test('several failures in one batch: each fails alone with its own error, the others land', async (t) => {
  const { queue, outer } = setup();
  outer.failSlot(1, { code: 'EINVAL', errno: 22 });
  outer.failSlot(2, { code: 'E2BIG', errno: 7 });
  outer.failSlot(5, { code: 'ENOMEM', errno: 12 });
  const slots = [0, 1, 2, 3, 4, 5, 6, 7];
  const { results, inners, calls } = await behindHeldSwap(t, queue, outer, slots);
  t.same(
    calls.map((c) => c.slots),
    [[0, 1, 2, 3, 4, 5, 6, 7], [2, 3, 4, 5, 6, 7], [3, 4, 5, 6, 7], [6, 7]],
    'four kernel calls: one per failure, plus the last that goes through',
  );
  t.match(results[1], { ok: false, err: { code: 'EINVAL' } });
  t.match(results[2], { ok: false, err: { code: 'E2BIG' } });
  t.match(results[5], { ok: false, err: { code: 'ENOMEM' } });
  const batchSizes: Record<number, number> = { 0: 1, 3: 2, 4: 2, 6: 2, 7: 2 };
  for (const [slot, size] of Object.entries(batchSizes).map(([s, n]) => [Number(s), n] as const)) {
    t.match(results[slot], { ok: true, outcome: { batchSize: size } }, `swap ${slot} landed with batchSize ${size}`);
    t.equal(outer.slots.get(slot), inners[slot]!.id);
  }
  t.same([1, 2, 5].map((s) => outer.slots.has(s)), [false, false, false], 'no failing slot changed');
  t.equal(queue.depth, 0);
});

t.test('an error of the whole map (processed 0 each time) reaches every caller', async (t) => {
  const { queue, outer } = setup();
  for (const slot of [0, 1, 2]) outer.failSlot(slot, { code: 'EPERM', errno: 1 });
  const { results } = await behindHeldSwap(t, queue, outer, [0, 1, 2]);
  t.same(
    results.map((r) => (r.ok ? 'ok' : r.err.code)),
    ['EPERM', 'EPERM', 'EPERM'],
  );
  t.same([0, 1, 2].map((s) => outer.slots.has(s)), [false, false, false]);
  t.equal(queue.depth, 0);
});

for (const refusal of ['ENOTSUPP', 'EOPNOTSUPP'] as const) {
  t.test(`a kernel that answers ${refusal} to batch updates gets single updates from then on`, async (t) => {
    const { queue, outers } = setup({}, 2);
    const [old, other] = outers as [FakeOuter, FakeOuter];
    old.refuseBatch = refusal;
    old.failSlot(3);

    const first = await behindHeldSwap(t, queue, old, [0, 1, 2, 3, 4]);
    t.same(
      first.calls,
      [
        { kind: 'batch', slots: [0, 1, 2, 3, 4] },
        { kind: 'single', slots: [0] },
        { kind: 'single', slots: [1] },
        { kind: 'single', slots: [2] },
        { kind: 'single', slots: [3] },
        { kind: 'single', slots: [4] },
      ],
      'the refused batch is sent again as single updates',
    );
    t.match(first.results[3], { ok: false, err: { code: 'EINVAL' } }, 'a failing swap still fails alone');
    for (const i of [0, 1, 2, 4]) {
      t.match(first.results[i], { ok: true, outcome: { batchSize: 1 } }, `swap ${i} landed as a single update`);
      t.equal(old.slots.get(i), first.inners[i]!.id);
    }
    t.notOk(
      first.results.some((r) => !r.ok && r.err.code === refusal),
      'no caller sees the refusal',
    );

    const second = await behindHeldSwap(t, queue, old, [5, 6, 7]);
    t.same(
      second.calls.map((c) => c.kind),
      ['single', 'single', 'single'],
      'no batch is tried again on that outer map',
    );
    t.same([5, 6, 7].map((s) => old.slots.get(s)), second.inners.map((m) => m.id), 'every later swap lands');

    const elsewhere = await behindHeldSwap(t, queue, other, [0, 1]);
    t.same(elsewhere.calls, [{ kind: 'batch', slots: [0, 1] }], 'another outer map still gets batches');
    t.equal(queue.depth, 0);
  });
}

t.test('a batch refused before the kernel looked at any element lands nothing, even when processed says all', async (t) => {
  // libbpf copies batch.count back whatever happened; the kernel writes it
  // only from inside its element loop. A refusal before the loop (EPERM for
  // a frozen outer map, ENOTSUPP without batch ops) so comes back with
  // processed equal to the count sent: "4 of 4 elements written".
  for (const refusal of ['EPERM', 'ENOTSUPP'] as const) {
    const { queue, outer } = setup();
    outer.refuseBatch = refusal;
    outer.refusalCount = 'untouched';
    if (refusal === 'EPERM') for (const slot of [0, 1, 2, 3]) outer.failSlot(slot, { code: 'EPERM', errno: 1 });
    const { results } = await behindHeldSwap(t, queue, outer, [0, 1, 2, 3]);
    const landed = [0, 1, 2, 3].filter((s) => outer.slots.has(s));
    const reported = results.map((r) => (r.ok ? 'landed' : r.err.code));
    const truth = [0, 1, 2, 3].map((s) => (outer.slots.has(s) ? 'landed' : refusal === 'EPERM' ? 'EPERM' : 'missing'));
    t.same(reported, truth, `${refusal}: every caller is told what happened to its slot (in the kernel: ${landed.length} of 4 landed)`);
    t.equal(queue.depth, 0);
  }
});

t.test('single updates on a kernel that cannot batch stay within the concurrency bound', async (t) => {
  const { queue, outer, inFlight } = setup({ concurrency: 2 });
  outer.refuseBatch = 'ENOTSUPP';
  const { results } = await behindHeldSwap(t, queue, outer, [0, 1, 2, 3, 4, 5]);
  t.ok(results.every((r) => r.ok), 'every swap landed');
  // Bug (swap-queue.ts apply): after the refusal every pending swap of the
  // lane runs as its own setInner at once, under one place of `concurrency`.
  t.ok(inFlight.max <= 2, `at most 2 updates in the kernel at once (saw ${inFlight.max})`);
});

t.test('an error that does not say how far the batch got fails no swap that was not at fault', async (t) => {
  // An error thrown before the syscall (an argument check in the kernel
  // layer, an fd that cannot be duplicated) carries no `processed`.
  const { queue, outer } = setup();
  const setInnerBatch = outer.setInnerBatch.bind(outer);
  outer.setInnerBatch = async (keys, inners) => {
    if (keys.some((k) => slotOf(k) === 2)) throw new TypeError('inner: not a map of this kernel layer');
    return setInnerBatch(keys, inners);
  };
  // The same check refuses it alone, as the kernel layer's does.
  const setInner = outer.setInner.bind(outer);
  outer.setInner = async (key: Buffer, inner: Parameters<typeof setInner>[1]) => {
    if (slotOf(key) === 2) throw new TypeError('inner: not a map of this kernel layer');
    return setInner(key, inner);
  };
  const { results } = await behindHeldSwap(t, queue, outer, [0, 1, 2, 3]);
  t.same(
    results.map((r) => (r.ok ? 'ok' : r.err.name)),
    ['ok', 'ok', 'TypeError', 'ok'],
    'only the swap at fault fails: without `processed` each swap gets a try of its own',
  );
  t.equal(queue.depth, 0);
});

t.test('different outer maps are independent lanes: one held in the kernel does not stop another', async (t) => {
  const { queue, outers } = setup({ concurrency: 2 }, 2);
  const [a, b] = outers as [FakeOuter, FakeOuter];
  const hold = a.holdNext();
  const held = queue.set(a, u32(0), inner());
  await hold.started;
  const bInners = [inner(), inner(), inner()];
  const bOutcomes = await Promise.all([0, 1, 2].map((slot, i) => queue.set(b, u32(slot), bInners[i]!)));
  t.same([0, 1, 2].map((s) => b.slots.get(s)), bInners.map((m) => m.id), "b's swaps landed while a's update was held");
  t.same(bOutcomes.map((o) => o.batchSize), [3, 3, 3], "b's swaps went in a batch of their own");
  t.same(a.calls, [{ kind: 'single', slots: [0] }], 'a saw only its own update');
  t.same(a.slots.size, 0, "a's update has not completed");
  hold.release();
  t.match(await held, { batchSize: 1 });
  t.equal(queue.depth, 0);
});

t.test('concurrency bounds the updates in flight across all outer maps', async (t) => {
  const { queue, outers, inFlight } = setup({ concurrency: 2 }, 3);
  const holds = outers.map((o) => o.holdNext());
  const swaps = outers.map((o) => queue.set(o, u32(0), inner()));
  await until(t, () => inFlight.now === 2, 'two updates in the kernel');
  await turns();
  t.equal(inFlight.now, 2, 'the third outer map waits for a place');
  t.same(outers.map((o) => o.calls.length), [1, 1, 0]);
  t.equal(queue.depth, 3, 'the waiting swap counts in the depth');

  holds[0]!.release();
  await holds[2]!.started;
  t.same(outers.map((o) => o.calls.length), [1, 1, 1], 'a released place goes to the waiting map');
  t.equal(inFlight.max, 2);
  holds[1]!.release();
  holds[2]!.release();
  await Promise.all(swaps);

  // A storm over many maps with calls that overlap: never more than the bound.
  const storm = new InFlight();
  const many = Array.from({ length: 6 }, (_, i) => new FakeOuter(10 + i, storm));
  const q = new SwapQueue({ capacity: 1024, concurrency: 3, maxBatch: 2 });
  await Promise.all(many.flatMap((o) => [0, 1, 2, 3, 4].map((slot) => q.set(o, u32(slot), inner()))));
  t.equal(storm.max, 3, 'the storm reached the bound and never passed it');
  t.ok(many.every((o) => o.slots.size === 5), 'every swap of the storm landed');
  t.equal(q.depth, 0);
});

t.test('capacity: past it, MIMD_SWAP_QUEUE_FULL with retryAfter; waiting and running swaps both count', async (t) => {
  const { queue, outers } = setup({ capacity: 3, concurrency: 1 }, 2);
  const [a, b] = outers as [FakeOuter, FakeOuter];
  const hold = a.holdNext();
  const running = queue.set(a, u32(0), inner());
  await hold.started;
  const waiting = [queue.set(a, u32(1), inner()), queue.set(b, u32(0), inner())];
  t.equal(queue.depth, 3);

  const full = { code: 'MIMD_SWAP_QUEUE_FULL', statusCode: 503, retryAfter: 1 };
  await t.rejects(async () => queue.set(b, u32(1), inner()), full, 'a fourth swap is refused');
  await t.rejects(async () => queue.clear(b, u32(0)), full, 'so is a clear');
  t.equal(queue.depth, 3, 'refused requests take no place');
  t.same(b.calls, [], 'a refused swap never reaches the kernel');

  hold.release();
  await Promise.all([running, ...waiting]);
  t.equal(queue.depth, 0);
  t.match(await queue.set(b, u32(1), inner()), { batchSize: 1 }, 'room again once the queue drained');
});

t.test('maxBatch splits a big burst into batches of at most maxBatch, in arrival order', async (t) => {
  const { queue, outer } = setup({ maxBatch: 4 });
  const slots = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9];
  const { results, inners, calls } = await behindHeldSwap(t, queue, outer, slots);
  t.same(calls, [
    { kind: 'batch', slots: [0, 1, 2, 3] },
    { kind: 'batch', slots: [4, 5, 6, 7] },
    { kind: 'batch', slots: [8, 9] },
  ]);
  t.same(
    results.map((r) => (r.ok ? r.outcome.batchSize : r.err.code)),
    [4, 4, 4, 4, 4, 4, 4, 4, 2, 2],
  );
  t.same(slots.map((s) => outer.slots.get(s)), inners.map((m) => m.id));
  t.equal(queue.depth, 0);
});

t.test('two swaps of one slot in a burst are applied in arrival order', async (t) => {
  const { queue, outer } = setup();
  const { results, inners, calls } = await behindHeldSwap(t, queue, outer, [0, 1, 0]);
  t.ok(results.every((r) => r.ok));
  t.same(calls.flatMap((c) => c.slots), [0, 1, 0]);
  t.equal(outer.slots.get(0), inners[2]!.id, 'the later swap of slot 0 wins');
});

t.test('clear() takes a place under the concurrency bound like any update', async (t) => {
  const { queue, outers } = setup({ concurrency: 1 }, 2);
  const [a, b] = outers as [FakeOuter, FakeOuter];
  b.slots.set(0, 77);
  const hold = a.holdNext();
  const swap = queue.set(a, u32(0), inner());
  await hold.started;
  const cleared = queue.clear(b, u32(0));
  await turns();
  t.same(b.calls, [], 'the delete waits while the only place is taken');
  t.equal(queue.depth, 2);
  hold.release();
  const outcome = await cleared;
  t.same(b.calls, [{ kind: 'delete', slots: [0] }]);
  t.match(outcome, { held: true, batchSize: 1 });
  t.ok(Number.isFinite(outcome.swapMs));
  t.equal(b.slots.has(0), false);
  t.match(await queue.clear(b, u32(0)), { held: false }, 'clearing an empty slot says so');
  await swap;

  // ... and a swap waits for a clear that holds the only place.
  const clearHold = b.holdNext();
  b.slots.set(1, 78);
  const clearing = queue.clear(b, u32(1));
  await clearHold.started;
  const after = queue.set(a, u32(1), inner());
  await turns();
  t.same(a.calls.length, 1, 'the swap waits for the clear');
  clearHold.release();
  await Promise.all([clearing, after]);
  t.equal(a.calls.length, 2);
  t.equal(queue.depth, 0);
});

t.test('depth counts what waits or runs, and returns to 0 after successes and failures', async (t) => {
  const { queue, outer } = setup({ concurrency: 1 });
  t.equal(queue.depth, 0);
  outer.failSlot(2);
  const hold = outer.holdNext();
  const first = settle(queue.set(outer, u32(0), inner()));
  await hold.started;
  const rest = [1, 2, 3].map((slot) => settle(queue.set(outer, u32(slot), inner())));
  const clearing = queue.clear(outer, u32(9)).then(
    (o) => o.held,
    () => 'failed',
  );
  t.equal(queue.depth, 5);
  hold.release();
  const settled = await Promise.all([first, ...rest]);
  t.same(
    settled.map((r) => r.ok),
    [true, true, false, true],
  );
  t.equal(await clearing, false);
  t.equal(queue.depth, 0);
});
