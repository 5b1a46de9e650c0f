// Group commit against the real kernel, for both outer maps of the firewall
// (policy: HASH_OF_MAPS, 64 slots; blocklist: ARRAY_OF_MAPS, 4 slots):
// concurrent activations on every slot all land and take fewer kernel updates
// than swaps; one inner map of the wrong shape in a batch fails alone with the
// kernel's EINVAL; and writes to one slot keep their request order while other
// slots are swapped around them. What is in a slot is read back through a
// handle of the test's own (lookups of the outer map by id), not through the
// queue or the service.
import t from 'tap';
import pino from 'pino';
import { HostService } from '../../daemon/src/domain/host';
import { SlotsService } from '../../daemon/src/domain/slots-service';
import { SwapQueue, type SwapOutcome } from '../../daemon/src/domain/swap-queue';
import type { EntryPageBuffers, KernelMap, KernelOuterMap, MapShape, MapSpec, UpdateMode } from '../../daemon/src/domain/ports';
import type { Entry, SwapResult } from '../../daemon/src/domain/slots-api';
import { KernelAdapter } from '../../daemon/src/kernel/adapter';
import { BpfMap } from '../../daemon/src/kernel';
import { FileStateStore } from '../../daemon/src/state/file-store';
import { FIREWALL_OBJECT, pinDir, stateDir, u32 } from '../helpers/sandbox';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

// As config/default.yaml declares them.
const FIREWALL_MAPS = { blocklist: { formats: { key: 'ipv4' as const } }, policy: { formats: { key: 'cidr' as const } } };

/**
 * An outer map that passes every call to the real one and writes down each
 * update that goes to the kernel: how many slots it carried. It can hold the
 * first update back until a condition holds, so that the swaps meant to meet
 * in one batch have all reached the queue whatever the scheduling.
 */
class RecordingOuter implements KernelOuterMap {
  readonly id: number;
  readonly keySize: number;
  readonly valueSize: number;
  /** slots carried by each update that went to the kernel, in order */
  updates: number[] = [];
  private gate: (() => boolean) | null = null;

  constructor(private readonly real: KernelOuterMap) {
    this.id = real.id;
    this.keySize = real.keySize;
    this.valueSize = real.valueSize;
  }

  /** The next update waits until `ready()` holds (checked each turn of the event loop, for at most 30 s). */
  holdNextUntil(ready: () => boolean): void {
    this.gate = ready;
  }

  private async pass(slots: number): Promise<void> {
    this.updates.push(slots);
    const ready = this.gate;
    if (!ready) return;
    this.gate = null;
    const giveUp = Date.now() + 30_000;
    while (!ready() && Date.now() < giveUp) await new Promise<void>((resolve) => setImmediate(resolve));
  }

  async setInner(key: Buffer, inner: KernelMap, mode?: UpdateMode): Promise<void> {
    await this.pass(1);
    return this.real.setInner(key, inner, mode);
  }

  async setInnerBatch(keys: readonly Buffer[], inners: readonly KernelMap[]): Promise<void> {
    await this.pass(keys.length);
    return this.real.setInnerBatch(keys, inners);
  }

  innerId(key: Buffer): number | null {
    return this.real.innerId(key);
  }
  lookup(key: Buffer): Buffer | null {
    return this.real.lookup(key);
  }
  update(key: Buffer, value: Buffer, mode?: UpdateMode): Promise<void> {
    return this.real.update(key, value, mode);
  }
  delete(key: Buffer): Promise<boolean> {
    return this.real.delete(key);
  }
  nextKey(key: Buffer | null): Buffer | null {
    return this.real.nextKey(key);
  }
  definition(): MapShape {
    return this.real.definition();
  }
  writeEntries(keys: Buffer, values: Buffer): Promise<void> {
    return this.real.writeEntries(keys, values);
  }
  readAll(pageEntries: number): AsyncIterable<EntryPageBuffers> {
    return this.real.readAll(pageEntries);
  }
  pin(path: string): void {
    this.real.pin(path);
  }
  close(): void {
    this.real.close();
  }
}

interface OuterCase {
  name: 'policy' | 'blocklist';
  type: string;
  /** every slot of the map, as the URL spells it */
  slots: string[];
  /** the content of a version: one entry that says which request made it */
  entry(n: number): Entry;
}

const CASES: OuterCase[] = [
  {
    name: 'policy',
    type: 'HASH_OF_MAPS',
    slots: Array.from({ length: 64 }, (_, i) => String(i + 1)),
    entry: (n) => ({ key: `10.${n >> 8}.${n & 255}.0/24`, value: { verdict: n % 2 ? 'drop' : 'pass' } }),
  },
  {
    name: 'blocklist',
    type: 'ARRAY_OF_MAPS',
    slots: ['0', '1', '2', '3'],
    entry: (n) => ({ key: `10.0.${n >> 8}.${n & 255}`, value: 1 }),
  },
];

interface Fixture {
  slots: SlotsService;
  swaps: SwapQueue;
  kernel: KernelAdapter;
  /** the handle the service and the queue use, recording updates */
  outer: RecordingOuter;
  /** the inner map id in a slot, read through a handle of the test's own */
  inSlot(slot: string): number | null;
  /** a new inner map of the template's shape, with `valueSize` changed if asked */
  innerMap(valueSize?: number): Promise<KernelMap>;
  /** BPF_MAP_FREEZE on the outer map: user space can no longer update it */
  freezeOuter(): void;
}

async function setup(t: Test, c: OuterCase): Promise<Fixture> {
  const pinRoot = pinDir(t);
  const state = new FileStateStore(stateDir(t));
  const logger = pino({ level: 'silent' });
  const kernel = new KernelAdapter();
  const host = new HostService({
    objects: [{ name: 'firewall', path: FIREWALL_OBJECT, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: 'refuse' }],
    pinRoot,
    kernel,
    state,
    logger,
  });
  await host.start();
  t.teardown(() => host.close());

  let outer: RecordingOuter | undefined;
  const maps = host.managedMaps().map((source) => {
    if (source.name !== c.name) return source;
    outer = new RecordingOuter(source.handle);
    return { ...source, handle: outer };
  });
  const swaps = new SwapQueue({ capacity: 1024, concurrency: 4 });
  const slots = new SlotsService({ maps, kernel, swaps, retain: 3, pinRoot, state, logger, ready: () => host.running });
  t.teardown(() => slots.close());
  if (!outer) throw new Error(`the host manages no ${c.name}`);

  const view = slots.getMap('firewall', c.name);
  t.equal(view.type, c.type);
  t.equal(view.maxEntries, c.slots.length, `${c.name} has ${c.slots.length} slots`);
  const reader = BpfMap.fromId(view.mapId);
  t.teardown(() => reader.close());

  const template = view.innerTemplate;
  const made: KernelMap[] = [];
  t.teardown(() => made.forEach((m) => m.close()));
  return {
    slots,
    swaps,
    kernel,
    outer,
    inSlot: (slot) => reader.lookup(u32(Number(slot)))?.readUInt32LE(0) ?? null,
    innerMap: async (valueSize = template.valueSize) => {
      const spec: MapSpec = { name: 'gc_test', type: template.type, keySize: template.keySize, valueSize, maxEntries: template.maxEntries, flags: template.flags };
      const map = await kernel.createMap(spec);
      made.push(map);
      return map;
    },
    freezeOuter: () => reader.freeze(),
  };
}

for (const c of CASES) {
  t.test(`${c.name}: concurrent activations on all ${c.slots.length} slots all land, in fewer kernel updates than swaps`, async (t) => {
    const f = await setup(t, c);
    // Something in every slot first: the activations replace it.
    const first = await Promise.all(c.slots.map((slot, i) => f.slots.putSlot('firewall', c.name, slot, { entries: [c.entry(i)] })));
    t.same(c.slots.map(f.inSlot), first.map((r) => r.mapId), 'every slot holds its first version');
    const staged = await Promise.all(c.slots.map((slot, i) => f.slots.stageVersion('firewall', c.name, slot, { entries: [c.entry(1000 + i)] })));
    t.same(c.slots.map(f.inSlot), first.map((r) => r.mapId), 'staging touched no slot');

    f.outer.updates = [];
    // Whatever the scheduling, the first update waits until every activation is in the queue.
    f.outer.holdNextUntil(() => f.swaps.depth === c.slots.length);
    const activated = await Promise.all(c.slots.map((slot, i) => f.slots.activate('firewall', c.name, slot, staged[i]!.version)));

    t.same(
      activated.map((r) => [r.version, r.previousVersion, r.mapId]),
      staged.map((v) => [2, 1, v.mapId]),
      'every activation answered with its own version',
    );
    t.same(c.slots.map(f.inSlot), staged.map((v) => v.mapId), 'every slot holds its new inner map');
    t.ok(
      c.slots.every((slot, i) => f.inSlot(slot) !== first[i]!.mapId),
      'no slot still holds its old inner map',
    );
    t.equal(
      f.outer.updates.reduce((a, b) => a + b, 0),
      c.slots.length,
      'the kernel updates carried every swap once',
    );
    t.ok(f.outer.updates.length < c.slots.length, `fewer kernel updates (${f.outer.updates.length}) than swaps (${c.slots.length})`);
    t.ok(Math.max(...f.outer.updates) > 1, `a batch carried several swaps (updates: ${f.outer.updates.join(', ')})`);
    t.same(
      c.slots.map((slot) => f.slots.getSlot('firewall', c.name, slot).activeVersion),
      c.slots.map(() => 2),
      'the service records version 2 active everywhere',
    );
    t.equal(f.swaps.depth, 0);
  });

  t.test(`${c.name}: an inner map of the wrong shape fails alone with EINVAL, the others in its batch land`, async (t) => {
    const f = await setup(t, c);
    const slots = c.slots.slice(0, Math.min(c.slots.length, 12));
    const bad = Math.floor(slots.length / 2);
    const badSlot = slots[bad]!;
    // The bad slot holds a good map before: it must keep it.
    const before = await f.innerMap();
    await f.swaps.set(f.outer, u32(Number(badSlot)), before);
    t.equal(f.inSlot(badSlot), before.id);

    const inners = await Promise.all(slots.map((_, i) => f.innerMap(i === bad ? 8 : undefined)));
    f.outer.updates = [];
    f.outer.holdNextUntil(() => f.swaps.depth === slots.length);
    const results = await Promise.all(
      slots.map((slot, i) =>
        f.swaps.set(f.outer, u32(Number(slot)), inners[i]!).then(
          (outcome): SwapOutcome | Error => outcome,
          (err: Error) => err,
        ),
      ),
    );

    const failed = results[bad];
    t.type(failed, Error, 'the bad swap fails');
    t.match(failed, { code: 'EINVAL', errno: 22 }, "with the kernel's EINVAL");
    t.equal(f.inSlot(badSlot), before.id, 'the bad slot keeps the map it had');
    slots.forEach((slot, i) => {
      if (i === bad) return;
      t.notOk(results[i] instanceof Error, `slot ${slot}: the swap succeeded`);
      t.equal(f.inSlot(slot), inners[i]!.id, `slot ${slot} holds its new inner map`);
    });
    const outcomes = results.filter((r): r is SwapOutcome => !(r instanceof Error));
    t.ok(outcomes.some((o) => o.batchSize > 1), `swaps landed in batches (batch sizes: ${outcomes.map((o) => o.batchSize).join(', ')})`);
    t.ok(f.outer.updates.length < slots.length, `fewer kernel updates (${f.outer.updates.length}) than swaps (${slots.length})`);
    t.equal(f.swaps.depth, 0);
  });

  t.test(`${c.name}: a batch the kernel refuses as a whole (frozen outer map: EPERM) fails every swap in it`, async (t) => {
    const f = await setup(t, c);
    const slots = c.slots.slice(0, 4);
    const inners = await Promise.all(slots.map(() => f.innerMap()));
    f.freezeOuter();
    await t.rejects(f.outer.setInner(u32(Number(slots[0])), inners[0]!), { code: 'EPERM' }, 'a single update of a frozen outer map is refused');
    f.outer.updates = [];
    f.outer.holdNextUntil(() => f.swaps.depth === slots.length);
    const results = await Promise.all(
      slots.map((slot, i) =>
        f.swaps.set(f.outer, u32(Number(slot)), inners[i]!).then(
          (outcome) => `landed in a batch of ${outcome.batchSize}`,
          (err: Error & { code?: string }) => err.code,
        ),
      ),
    );
    t.same(slots.map(f.inSlot), slots.map(() => null), 'the kernel put nothing in any slot');
    t.ok(Math.max(...f.outer.updates) > 1, 'the swaps met in a batch');
    // libbpf hands back batch.count as sent when the kernel refuses before
    // its element loop: the addon must report 0 processed, not 4 of 4.
    t.same(results, slots.map(() => 'EPERM'), 'every caller is told its swap failed');
    t.equal(f.swaps.depth, 0);
  });

  t.test(`${c.name}: PUTs to one slot keep their order while other slots are swapped around them`, async (t) => {
    const f = await setup(t, c);
    const [hot, ...others] = c.slots.slice(0, 9) as [string, ...string[]];
    const ROUNDS = 12;
    const hotPuts: Promise<SwapResult>[] = [];
    const otherPuts = new Map<string, Promise<SwapResult>[]>(others.map((s) => [s, []]));
    let n = 0;
    // Interleaved in request order: hot, three others, hot, three others, ...
    const lastHotEntry: Entry[] = [];
    for (let round = 0, next = 0; round < ROUNDS; round++) {
      const entry = c.entry(n++);
      lastHotEntry[0] = entry;
      hotPuts.push(f.slots.putSlot('firewall', c.name, hot, { entries: [entry], labels: { round: String(round) } }));
      for (let k = 0; k < 3; k++) {
        const other = others[next++ % others.length]!;
        otherPuts.get(other)!.push(f.slots.putSlot('firewall', c.name, other, { entries: [c.entry(n++)] }));
      }
    }
    const results = await Promise.all(hotPuts);
    t.same(
      results.map((r) => r.version),
      Array.from({ length: ROUNDS }, (_, i) => i + 1),
      'versions are numbered in request order',
    );
    t.same(
      results.map((r) => r.previousVersion),
      [null, ...Array.from({ length: ROUNDS - 1 }, (_, i) => i + 1)],
      'each PUT replaced the one requested before it',
    );
    t.same(
      results.map((r, i) => r.previousMapId === (i === 0 ? null : results[i - 1]!.mapId)),
      results.map(() => true),
      'each swap found the previous request in the kernel slot',
    );
    const last = results[ROUNDS - 1]!;
    t.equal(f.inSlot(hot), last.mapId, "the slot holds the last request's inner map");
    const detail = f.slots.getSlot('firewall', c.name, hot);
    t.equal(detail.activeVersion, ROUNDS);
    t.same(detail.versions.find((v) => v.version === ROUNDS)?.labels, { round: String(ROUNDS - 1) });
    t.same(
      f.slots.readEntries('firewall', c.name, hot, { limit: 10 }).entries,
      lastHotEntry,
      "the slot's map holds the last request's entries",
    );
    for (const [slot, puts] of otherPuts) {
      const done = await Promise.all(puts);
      t.same(
        done.map((r) => r.version),
        done.map((_, i) => i + 1),
        `slot ${slot}: versions in request order`,
      );
      t.equal(f.inSlot(slot), done[done.length - 1]!.mapId, `slot ${slot} holds its last request's map`);
    }
    t.comment(`kernel updates: ${f.outer.updates.length} for ${n} swaps (batch sizes ${f.outer.updates.join(' ')})`);
    t.equal(f.swaps.depth, 0);
  });
}
