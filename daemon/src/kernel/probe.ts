// Feature probes: what this kernel does on mimd's swap path, found by doing
// it, never by reading a version string. Each probe is a tiny real operation
// on throwaway maps and programs, all closed again before it returns (even
// when it fails), so probing leaves nothing behind in the kernel.
//
// Probes run at start (main.ts) and from the CLI (probe-cli.ts) that the
// kernel matrix runs in each guest. They need CAP_BPF + CAP_NET_ADMIN (or
// root), raw instructions only (no BTF, no object file): 5.10 to 7.x.
import * as os from 'node:os';
import { BpfMap } from './map';
import { BpfProgram } from './program';
import { MapFlag, MapType } from './constants';
import { interfaceIndex } from './netdev';
import * as I from './insns';
import {
  deriveSwapStrategy,
  waitVerdict,
  LINK_TYPE_OF,
  LINK_TYPES,
  type AtomicReplaceProbe,
  type FeatureProbe,
  type KernelFeatures,
  type LinkTypeName,
  type WaitProbe,
} from '../domain/kernel-features';
import type { AttachKind } from '../domain/ports';

export type { KernelFeatures } from '../domain/kernel-features';

// enum bpf_prog_type / bpf_attach_type values the probes use.
const PROG_XDP = 6;
const PROG_SCHED_CLS = 3;
const PROG_TRACEPOINT = 5;
const PROG_RAW_TRACEPOINT = 17;
const ATTACH_XDP = 37;
const ATTACH_PERF_EVENT = 41;
const ATTACH_TCX_INGRESS = 46;
const XDP_FLAGS_HW_MODE = 1 << 3;

export interface ProbeOptions {
  /** the kinds of attachment configured; their link types are probed (default: all four) */
  attachKinds?: readonly AttachKind[];
  /** swapQueue.concurrency: with 1, concurrent single updates become one at a time */
  concurrency?: number;
  /** slots in the timing probe's batch */
  batchSlots?: number;
  /** rounds of the timing probe (medians are taken) */
  rounds?: number;
  /** how long the lookup race runs at most, ms */
  raceMs?: number;
}

/** Closes what a probe made, last made first, whatever happens. */
class Scope {
  private readonly owned: { close(): void }[] = [];
  add<T extends { close(): void }>(thing: T): T {
    this.owned.push(thing);
    return thing;
  }
  close(): void {
    for (const thing of this.owned.reverse()) {
      try {
        thing.close();
      } catch {
        // closing is best effort; nothing else holds these
      }
    }
    this.owned.length = 0;
  }
}

async function scoped<T>(body: (scope: Scope) => Promise<T>): Promise<T> {
  const scope = new Scope();
  try {
    return await body(scope);
  } finally {
    scope.close();
  }
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0);
  return b;
}

function codeOf(err: unknown): string {
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : err instanceof Error ? err.message : String(err);
}

function unexpected<T>(value: T, err: unknown, what: string): FeatureProbe<T> & { errno: string } {
  return { value, errno: codeOf(err), detail: `${what} failed unexpectedly: ${err instanceof Error ? err.message : String(err)}` };
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const started = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - started) / 1e6;
}

const arrayTemplate = (flags = 0, maxEntries = 1): Promise<BpfMap> =>
  BpfMap.create({ type: MapType.ARRAY, name: 'mimd_probe_in', keySize: 4, valueSize: 4, maxEntries, flags });

async function outerArray(scope: Scope, slots: number): Promise<{ outer: BpfMap; inners: BpfMap[] }> {
  const template = scope.add(await arrayTemplate());
  const outer = scope.add(
    await BpfMap.create({ type: MapType.ARRAY_OF_MAPS, name: 'mimd_probe_out', keySize: 4, valueSize: 4, maxEntries: slots, innerMap: template }),
  );
  const inners = [scope.add(await arrayTemplate()), scope.add(await arrayTemplate())];
  return { outer, inners };
}

function packed(slots: number, inner: BpfMap): { keys: Buffer; values: Buffer } {
  return {
    keys: Buffer.concat(Array.from({ length: slots }, (_, i) => u32(i))),
    values: Buffer.concat(Array.from({ length: slots }, () => u32(inner.fd))),
  };
}

/** Does BPF_MAP_UPDATE_BATCH work on an ARRAY_OF_MAPS? (5.10: ENOTSUPP) */
export function probeBatchOuterMaps(): Promise<FeatureProbe> {
  return scoped(async (scope) => {
    const { outer, inners } = await outerArray(scope, 2);
    const { keys, values } = packed(2, inners[0] as BpfMap);
    try {
      await outer.updateBatch(keys, values);
      return { value: true, detail: 'BPF_MAP_UPDATE_BATCH of 2 slots of an ARRAY_OF_MAPS succeeded' };
    } catch (err) {
      const code = codeOf(err);
      if (code === 'ENOTSUPP' || code === 'EOPNOTSUPP' || code === 'EINVAL') {
        return { value: false, errno: code, detail: `BPF_MAP_UPDATE_BATCH on an ARRAY_OF_MAPS refused with ${code}: swaps go one slot per update` };
      }
      throw err;
    }
  }).catch((err: unknown) => unexpected<FeatureProbe['value']>('unknown', err, 'the batch probe'));
}

/**
 * Does a batch of k slots wait for one RCU grace period, or k? Times single
 * updates against k-slot batches, interleaved, and compares the medians:
 * see waitVerdict() for how they are read.
 */
export function probeOneWaitPerBatch(slots = 8, rounds = 5): Promise<WaitProbe> {
  const base = { slots, rounds, singleMs: null, batchMs: null };
  return scoped(async (scope): Promise<WaitProbe> => {
    const { outer, inners } = await outerArray(scope, slots);
    const batches = inners.map((inner) => packed(slots, inner));
    // The first updates allocate and fault in: not measured.
    await outer.updateBatch(batches[0]!.keys, batches[0]!.values);
    const single: number[] = [];
    const batch: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const inner = inners[r % 2] as BpfMap;
      const b = batches[(r + 1) % 2]!;
      single.push(await timed(() => outer.update(u32(0), u32(inner.fd))));
      batch.push(await timed(() => outer.updateBatch(b.keys, b.values)));
    }
    const singleMs = round3(median(single));
    const batchMs = round3(median(batch));
    const numbers = `single update ${singleMs} ms, ${slots}-slot batch ${batchMs} ms (medians of ${rounds})`;
    const verdict = waitVerdict(singleMs, batchMs, slots);
    return { ...base, singleMs, batchMs, value: verdict.value, detail: `${numbers}: ${verdict.why}` };
  }).catch((err: unknown) => ({ ...base, ...unexpected<WaitProbe['value']>('unknown', err, 'the timing probe') }));
}

/** Is BPF_F_INNER_MAP accepted: an ARRAY inner map of another max_entries than its template? */
export function probeInnerMapFlag(): Promise<FeatureProbe> {
  return scoped(async (scope): Promise<FeatureProbe> => {
    let template: BpfMap;
    try {
      template = scope.add(await arrayTemplate(MapFlag.INNER_MAP, 1));
    } catch (err) {
      if (codeOf(err) !== 'EINVAL') throw err;
      return { value: false, errno: 'EINVAL', detail: 'an ARRAY map with BPF_F_INNER_MAP was refused (EINVAL)' };
    }
    const outer = scope.add(
      await BpfMap.create({ type: MapType.ARRAY_OF_MAPS, name: 'mimd_probe_out', keySize: 4, valueSize: 4, maxEntries: 1, innerMap: template }),
    );
    const inner = scope.add(await arrayTemplate(MapFlag.INNER_MAP, 4));
    try {
      await outer.update(u32(0), u32(inner.fd));
    } catch (err) {
      if (codeOf(err) !== 'EINVAL') throw err;
      return { value: false, errno: 'EINVAL', detail: 'the flag was accepted but an inner map of 4 entries into a template of 1 was refused (EINVAL)' };
    }
    return { value: true, detail: 'an ARRAY inner map of 4 entries went into an outer map whose BPF_F_INNER_MAP template has 1' };
  }).catch((err: unknown) => unexpected<FeatureProbe['value']>('unknown', err, 'the BPF_F_INNER_MAP probe'));
}

const RETURN_0 = [I.movImm(I.R0, 0), I.exit()];
const RETURN_XDP_PASS = [I.movImm(I.R0, 2), I.exit()];

/**
 * Asks the kernel for a link it cannot complete and reads the refusal:
 * a kernel without the link type refuses the attach type itself (EINVAL);
 * one with it gets as far as the target and refuses that instead. Nothing
 * gets attached.
 */
async function probeLinkType(kind: LinkTypeName): Promise<FeatureProbe> {
  return scoped(async (scope): Promise<FeatureProbe> => {
    const attempt = (fn: () => { close(): void }): string | null => {
      try {
        fn().close();
        return null;
      } catch (err) {
        return codeOf(err);
      }
    };
    let code: string | null;
    let expected: string[];
    let what: string;
    switch (kind) {
      case 'xdp': {
        let lo: number;
        try {
          lo = interfaceIndex('lo');
        } catch (err) {
          return { value: 'unknown', detail: `no loopback interface to probe with: ${(err as Error).message}` };
        }
        const prog = scope.add(await BpfProgram.load({ type: PROG_XDP, insns: I.program(RETURN_XDP_PASS) }));
        // Hardware offload mode on lo: no driver op for it, so the link is
        // refused at the device (EOPNOTSUPP) after the link type was accepted.
        code = attempt(() => prog.linkCreate(lo, ATTACH_XDP, XDP_FLAGS_HW_MODE));
        expected = ['EOPNOTSUPP', 'EBUSY', 'EEXIST'];
        what = 'BPF_LINK_CREATE (BPF_XDP, offload mode on lo)';
        break;
      }
      case 'tcx': {
        const prog = scope.add(await BpfProgram.load({ type: PROG_SCHED_CLS, insns: I.program(RETURN_0) }));
        code = attempt(() => prog.linkCreate(0, ATTACH_TCX_INGRESS, 0));
        expected = ['ENODEV'];
        what = 'BPF_LINK_CREATE (BPF_TCX_INGRESS, ifindex 0)';
        break;
      }
      case 'perf_event': {
        const prog = scope.add(await BpfProgram.load({ type: PROG_TRACEPOINT, insns: I.program(RETURN_0) }));
        code = attempt(() => prog.linkCreate(-1, ATTACH_PERF_EVENT, 0));
        expected = ['EBADF'];
        what = 'BPF_LINK_CREATE (BPF_PERF_EVENT, perf event fd -1)';
        break;
      }
      case 'raw_tracepoint': {
        const prog = scope.add(await BpfProgram.load({ type: PROG_RAW_TRACEPOINT, insns: I.program(RETURN_0) }));
        code = attempt(() => prog.rawTracepointOpen('mimd_probe_no_such_tracepoint'));
        expected = ['ENOENT'];
        what = 'BPF_RAW_TRACEPOINT_OPEN (a name no kernel has)';
        break;
      }
    }
    if (code === null) return { value: true, detail: `${what} succeeded (and was closed at once)` };
    if (expected.includes(code)) return { value: true, errno: code, detail: `${what}: ${code}, past the link type to its target` };
    if (code === 'EINVAL') return { value: false, errno: code, detail: `${what}: EINVAL, the link type is not known to this kernel` };
    return { value: 'unknown', errno: code, detail: `${what}: ${code}, not an answer the probe knows` };
  }).catch((err: unknown) => unexpected<FeatureProbe['value']>('unknown', err, `the ${kind} link probe`));
}

export async function probeLinkTypes(kinds: readonly AttachKind[] = ['xdp', 'tc', 'tracepoint', 'raw_tracepoint']): Promise<Partial<Record<LinkTypeName, FeatureProbe>>> {
  const wanted = new Set(kinds.map((k) => LINK_TYPE_OF[k]));
  const result: Partial<Record<LinkTypeName, FeatureProbe>> = {};
  for (const type of LINK_TYPES) if (wanted.has(type)) result[type] = await probeLinkType(type);
  return result;
}

const RACE_KEYS = 16;

/** Key order as BPF_MAP_GET_NEXT_KEY walks the map: bucket by bucket, each bucket's list in order. */
function keyOrder(map: BpfMap): string {
  return [...map.keys()].map((k) => k.readUInt32LE(0)).join(',');
}

/**
 * Replaces every key of a hash map once, in iteration order (so each bucket
 * head first), and says whether that moved a key within its bucket: the
 * insert-new-then-unlink-old replace of hash maps, which a concurrent lookup
 * can miss. One batch where the kernel takes it, else one key at a time,
 * stopping at the first move. Exported for the kernel test's control case (a
 * plain HASH map, which replaces that way on every kernel).
 */
export async function replaceRelinks(map: BpfMap, value: Buffer): Promise<{ relinks: boolean; replaces: number }> {
  const before = keyOrder(map);
  const ordered = before.split(',').map((k) => u32(Number(k)));
  try {
    await map.updateBatch(Buffer.concat(ordered), Buffer.concat(ordered.map(() => value)), 'exist');
    return { relinks: keyOrder(map) !== before, replaces: ordered.length };
  } catch {
    // No batch updates of this map here: one key at a time.
    let replaces = 0;
    for (const key of ordered) {
      await map.update(key, value, 'exist');
      replaces++;
      if (keyOrder(map) !== before) return { relinks: true, replaces };
    }
    return { relinks: false, replaces };
  }
}

/**
 * An XDP program that looks up every key of `outer` once per run and adds
 * the lookups that found no inner map, and the runs, to counters[0] and
 * counters[1] (u64 each).
 */
function lookupProgram(outerFd: number, countersFd: number): Buffer {
  const code: I.Insn[] = [I.movImm(I.R7, 0)];
  for (let key = 0; key < RACE_KEYS; key++) {
    code.push(
      I.storeImm32(I.R10, -4, key),
      I.loadMapFd(I.R1, outerFd),
      I.movReg(I.R2, I.R10),
      I.addImm(I.R2, -4),
      I.call(I.HELPER_MAP_LOOKUP_ELEM),
      I.jneImm(I.R0, 0, 1),
      I.addImm(I.R7, 1),
    );
  }
  const tail = [I.movImm(I.R1, 1), I.atomicAdd64(I.R0, I.R7, 0), I.atomicAdd64(I.R0, I.R1, 8)];
  code.push(
    I.storeImm32(I.R10, -4, 0),
    I.loadMapFd(I.R1, countersFd),
    I.movReg(I.R2, I.R10),
    I.addImm(I.R2, -4),
    I.call(I.HELPER_MAP_LOOKUP_ELEM),
    I.jeqImm(I.R0, 0, I.slots(tail)),
    ...tail,
    ...RETURN_XDP_PASS,
  );
  return I.program(code);
}

/**
 * Is replacing an existing HASH_OF_MAPS key atomic for a concurrent lookup?
 * Two looks at it:
 * - structure: before 6.16 a replace inserts a new element at the head of
 *   the key's bucket and then unlinks the old one, so a lookup already past
 *   the head misses the key; 6.16+ swaps the pointer in place. The probe
 *   fills 16 keys into 16 buckets (some bucket then holds two keys, but for a
 *   chance of about 1e-6), replaces them in iteration order and reads the
 *   order again: a changed order is the insert-and-unlink replace.
 * - race (two CPUs or more): a program looks every key up, many times, in
 *   BPF_PROG_TEST_RUN on one CPU while the keys are replaced from another,
 *   and counts the lookups that found no inner map.
 * Any missed lookup or a moved key: not atomic. Keys kept in place and no
 * miss: atomic. A probe that fails (no HASH_OF_MAPS for this caller, say)
 * answers unknown, which mimd treats as not atomic.
 */
export function probeAtomicHashOfMapsReplace(raceMs = 300): Promise<AtomicReplaceProbe> {
  const base = { relinks: null, lookups: 0, missed: 0, replaces: 0 };
  return scoped(async (scope): Promise<AtomicReplaceProbe> => {
    const template = scope.add(await arrayTemplate());
    const outer = scope.add(
      await BpfMap.create({ type: MapType.HASH_OF_MAPS, name: 'mimd_probe_hom', keySize: 4, valueSize: 4, maxEntries: RACE_KEYS, innerMap: template }),
    );
    const inners = [scope.add(await arrayTemplate()), scope.add(await arrayTemplate())];
    const keys = Array.from({ length: RACE_KEYS }, (_, i) => u32(i));
    for (const key of keys) await outer.update(key, u32(inners[0]!.fd), 'noexist');

    const structural = await replaceRelinks(outer, u32(inners[1]!.fd));
    const relinks = structural.relinks;
    let replaces = structural.replaces;

    // Race: only meaningful with a second CPU to replace from.
    const cpus = onlineCpus();
    let lookups = 0;
    let missed = 0;
    let raceNote: string;
    if (cpus < 2) {
      raceNote = 'lookup race not run: one CPU online';
    } else {
      const race = await raceLookups(scope, outer, keys, inners, raceMs);
      replaces += race.replaces;
      ({ lookups, missed } = race);
      raceNote = race.error
        ? `lookup race not run to the end: ${race.error}`
        : `${missed} of ${lookups} program lookups found no inner map while ${race.replaces} replaces ran`;
    }
    const structure = relinks
      ? 'a replace moved the key to the head of its bucket (insert new, then unlink old): a lookup already past the head misses it'
      : `${RACE_KEYS} keys replaced in iteration order stayed in place (the pointer is swapped in the element)`;
    const result = { relinks, lookups, missed, replaces };
    const detail = `${structure}; ${raceNote}`;
    return { ...result, value: !(missed > 0 || relinks), detail };
  }).catch((err: unknown) => ({ ...base, ...unexpected<AtomicReplaceProbe['value']>('unknown', err, 'the HASH_OF_MAPS replace probe') }));
}

/**
 * Runs the lookup program in BPF_PROG_TEST_RUN (off the event loop) while two
 * chains of updates replace the keys, for `raceMs`. Never throws: a failure
 * (no BPF_PROG_TEST_RUN for this caller, say) ends the race and is reported,
 * and everything it started has settled before it returns.
 */
async function raceLookups(
  scope: Scope,
  outer: BpfMap,
  keys: Buffer[],
  inners: BpfMap[],
  raceMs: number,
): Promise<{ lookups: number; missed: number; replaces: number; error: string | null }> {
  let replaces = 0;
  let error: string | null = null;
  const fail = (err: unknown): void => {
    error ??= `${codeOf(err)}: ${err instanceof Error ? err.message : String(err)}`;
  };
  try {
    const counters = scope.add(await BpfMap.create({ type: MapType.ARRAY, name: 'mimd_probe_cnt', keySize: 4, valueSize: 16, maxEntries: 1 }));
    const prog = scope.add(await BpfProgram.load({ type: PROG_XDP, insns: lookupProgram(outer.fd, counters.fd) }));
    const packet = Buffer.alloc(64);
    const deadline = Date.now() + raceMs;
    const running = (): boolean => error === null && Date.now() < deadline;
    const runner = (async () => {
      while (running()) await prog.testRun(packet, 20_000);
    })().catch(fail);
    const replacer = (offset: number) =>
      (async () => {
        for (let i = offset; running(); i += 2) {
          await outer.update(keys[i % RACE_KEYS]!, u32(inners[(i >> 4) % 2]!.fd), 'exist');
          replaces++;
        }
      })().catch(fail);
    await Promise.all([runner, replacer(0), replacer(1)]);
    const value = counters.lookup(u32(0));
    const missed = value ? Number(value.readBigUInt64LE(0)) : 0;
    const lookups = value ? Number(value.readBigUInt64LE(8)) * RACE_KEYS : 0;
    return { lookups, missed, replaces, error };
  } catch (err) {
    fail(err);
    return { lookups: 0, missed: 0, replaces, error };
  }
}

function onlineCpus(): number {
  return typeof os.availableParallelism === 'function' ? os.availableParallelism() : os.cpus().length;
}

/** Runs every probe, one after the other (they time grace periods: no overlap). */
export async function probeKernel(options: ProbeOptions = {}): Promise<KernelFeatures> {
  const started = process.hrtime.bigint();
  const batchOuterMaps = await probeBatchOuterMaps();
  const oneWaitPerBatch: WaitProbe =
    batchOuterMaps.value === true
      ? await probeOneWaitPerBatch(options.batchSlots, options.rounds)
      : { value: 'unknown', detail: 'not measured: no batch updates of outer maps', singleMs: null, batchMs: null, slots: 0, rounds: 0 };
  const innerMapFlag = await probeInnerMapFlag();
  const linkTypes = await probeLinkTypes(options.attachKinds);
  const atomicHashOfMapsReplace = await probeAtomicHashOfMapsReplace(options.raceMs);
  return {
    release: os.release(),
    cpus: onlineCpus(),
    batchOuterMaps,
    oneWaitPerBatch,
    innerMapFlag,
    linkTypes,
    atomicHashOfMapsReplace,
    swapStrategy: deriveSwapStrategy(batchOuterMaps.value, oneWaitPerBatch.value, options.concurrency ?? 4),
    probeMs: Math.round(Number(process.hrtime.bigint() - started) / 1e6),
  };
}
