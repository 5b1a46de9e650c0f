// What the running kernel can do on the swap path, as the feature probes
// (kernel/probe.ts) found it, and what mimd makes of it: the swap strategy
// and the HASH_OF_MAPS replace policy. Pure logic: no kernel, no I/O.
import type { AttachKind, KernelOuterMap } from './ports';
import { mimdError, NonAtomicReplaceError, type MimdError } from './errors';

/** How the swap queue sends outer-map updates. */
export type SwapStrategy = 'batch' | 'concurrent' | 'single';
export const SWAP_STRATEGIES: readonly SwapStrategy[] = ['batch', 'concurrent', 'single'];

/** The kernel's link type behind each kind of attachment. */
export const LINK_TYPE_OF: Readonly<Record<AttachKind, LinkTypeName>> = {
  xdp: 'xdp',
  tc: 'tcx',
  tracepoint: 'perf_event',
  raw_tracepoint: 'raw_tracepoint',
};
export type LinkTypeName = 'xdp' | 'tcx' | 'perf_event' | 'raw_tracepoint';
export const LINK_TYPES: readonly LinkTypeName[] = ['xdp', 'tcx', 'perf_event', 'raw_tracepoint'];

/** 'unknown': the probe could not decide (its detail says why). */
export type Verdict = boolean | 'unknown';

export interface FeatureProbe<T = Verdict> {
  value: T;
  /** what the probe did and saw, for people */
  detail: string;
  /** the kernel's answer when it refused (ENOTSUPP, EINVAL, ...) */
  errno?: string;
}

export interface WaitProbe extends FeatureProbe<boolean | 'indistinguishable' | 'unknown'> {
  /** median wall time of one single-slot update, ms */
  singleMs: number | null;
  /** median wall time of one batch of `slots` slots, ms */
  batchMs: number | null;
  slots: number;
  rounds: number;
}

export interface AtomicReplaceProbe extends FeatureProbe {
  /** a replace moved the key in its bucket (insert new + unlink old): null when not seen either way */
  relinks: boolean | null;
  /** lookups a program made while keys were replaced, and how many found no inner map */
  lookups: number;
  missed: number;
  replaces: number;
}

export interface KernelFeatures {
  /** uname release: for people reading the report; no decision uses it */
  release: string;
  /** CPUs online while probing (the lookup race needs two) */
  cpus: number;
  batchOuterMaps: FeatureProbe;
  oneWaitPerBatch: WaitProbe;
  innerMapFlag: FeatureProbe;
  /** the link types behind the configured kinds of attachment */
  linkTypes: Partial<Record<LinkTypeName, FeatureProbe>>;
  atomicHashOfMapsReplace: AtomicReplaceProbe;
  swapStrategy: SwapStrategy;
  /** wall time of all probes, ms */
  probeMs: number;
}

/** Below this difference between a batch and one update, which wait count it pays does not matter. */
export const INDISTINGUISHABLE_MS = 2;

/**
 * Reads the timing probe: the median of single-slot updates against that of
 * `slots`-slot batches. About 1x is one wait per batch, about `slots`x one per
 * slot; the geometric middle (sqrt(slots)) divides them. When even the batch
 * is under a millisecond (expedited waits) or costs less than
 * INDISTINGUISHABLE_MS more than one update (7.x: 0.05 ms against 1 ms), the
 * wait count cannot be told or does not matter: 'indistinguishable'.
 */
export function waitVerdict(singleMs: number, batchMs: number, slots: number): { value: boolean | 'indistinguishable'; why: string } {
  const r = (n: number): number => Math.round(n * 1000) / 1000;
  const ratio = batchMs / Math.max(singleMs, 0.001);
  const threshold = Math.sqrt(slots);
  if (batchMs < 1) return { value: 'indistinguishable', why: 'waits too short to tell one per batch from one per slot (expedited grace periods)' };
  if (ratio < threshold) return { value: true, why: `ratio ${r(ratio)} < ${r(threshold)}, one wait per batch` };
  if (batchMs - singleMs < INDISTINGUISHABLE_MS) {
    return { value: 'indistinguishable', why: `ratio ${r(ratio)}, but the batch costs under ${INDISTINGUISHABLE_MS} ms more than one update` };
  }
  return { value: false, why: `ratio ${r(ratio)} >= ${r(threshold)}, one wait per slot` };
}

/**
 * The fastest correct way to send swaps on this kernel:
 * - batch: batches of outer-map updates work and cost one grace period per
 *   batch (or the waits are too short to tell apart, 6.19+);
 * - concurrent: no batches (5.10), or one wait per element (6.1): single
 *   updates, several at once, which share grace periods;
 * - single: as concurrent, but the configuration allows one update at a time.
 */
export function deriveSwapStrategy(batch: Verdict, oneWait: WaitProbe['value'], concurrency: number): SwapStrategy {
  if (batch === true && (oneWait === true || oneWait === 'indistinguishable')) return 'batch';
  return concurrency > 1 ? 'concurrent' : 'single';
}

export type NonAtomicReplacePolicy = 'warn' | 'refuse';

export interface ReplaceGuardedMap {
  handle: KernelOuterMap;
  /** firewall/blocklist */
  ref: string;
  type: string;
  /** objects[0].maps.blocklist */
  field: string;
  policy: NonAtomicReplacePolicy;
}

/** The HASH_OF_MAPS maps a kernel without atomic replace puts at risk (warned about at start). */
export function mapsAtRisk(maps: readonly ReplaceGuardedMap[], atomic: Verdict): ReplaceGuardedMap[] {
  if (atomic === true) return [];
  return maps.filter((m) => m.type === 'HASH_OF_MAPS');
}

/** Refuses, before the kernel is touched, a swap into an occupied slot; null lets it through. */
export type ReplaceGuard = (outer: KernelOuterMap, key: Buffer) => MimdError | null;

/**
 * With `refuse`, a swap into an occupied slot of a HASH_OF_MAPS map is
 * refused on a kernel whose replace is not atomic (or not known to be):
 * a program's lookup could find no inner map for that key meanwhile. An
 * empty slot is filled as usual (an insert is atomic), and clearing a slot
 * is always allowed: the gap is then what the client asked for.
 */
export function replaceGuard(maps: readonly ReplaceGuardedMap[], atomic: Verdict): ReplaceGuard | undefined {
  const refusing = new Map<KernelOuterMap, ReplaceGuardedMap>();
  for (const map of mapsAtRisk(maps, atomic)) if (map.policy === 'refuse') refusing.set(map.handle, map);
  if (refusing.size === 0) return undefined;
  return (outer, key) => {
    const map = refusing.get(outer);
    if (!map || outer.innerId(key) === null) return null;
    const why = atomic === 'unknown' ? 'is not known to be atomic' : 'is not atomic';
    return mimdError(
      NonAtomicReplaceError,
      `slot: ${map.ref} slot 0x${key.toString('hex')} is occupied, and replacing a HASH_OF_MAPS key on this kernel ${why} ` +
        `(a program's lookup can find no inner map meanwhile); ${map.field}.onNonAtomicReplace is refuse. ` +
        'Delete the slot first to accept the gap, or use an ARRAY_OF_MAPS map',
      { field: 'slot' },
    );
  };
}

/** GET /v1/kernel: what the probes found, the strategy in use, and the HASH_OF_MAPS maps' replace policy. */
export interface KernelReport {
  /** null when the probes could not run at all (mimd then batches, falling back on ENOTSUPP) */
  features: KernelFeatures | null;
  /** what the swap queue does */
  swapStrategy: SwapStrategy;
  hashOfMaps: {
    /** object/map */
    map: string;
    /** objects[i].maps.<name>.onNonAtomicReplace */
    field: string;
    policy: NonAtomicReplacePolicy;
    /** replace is not atomic (or not known to be) on this kernel */
    atRisk: boolean;
  }[];
}

export function kernelReport(features: KernelFeatures | null, swapStrategy: SwapStrategy, maps: readonly ReplaceGuardedMap[]): KernelReport {
  const atomic = features?.atomicHashOfMapsReplace.value ?? 'unknown';
  const atRisk = new Set(mapsAtRisk(maps, atomic));
  return {
    features,
    swapStrategy,
    hashOfMaps: maps
      .filter((m) => m.type === 'HASH_OF_MAPS')
      .map((m) => ({ map: m.ref, field: `${m.field}.onNonAtomicReplace`, policy: m.policy, atRisk: atRisk.has(m) })),
  };
}
