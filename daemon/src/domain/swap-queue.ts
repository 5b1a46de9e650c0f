// The one path every outer-map update takes. Each update waits one RCU grace
// period in the kernel (synchronize_rcu, 8-16 ms before 6.19), so updates run in the addon's worker
// threads, a bounded number at a time, and callers past the bound are refused
// at once (503) rather than queued without limit.
//
// Group commit: while an update of an outer map is in the kernel, the swaps
// that arrive for other slots of the same map wait, and then go together in
// one BPF_MAP_UPDATE_BATCH, which waits for one grace period instead of one
// each. Every caller still gets its own result: the kernel stops a batch at
// its first failure and says how far it got, so that element fails alone and
// the rest is sent again. Two swaps of one slot never meet in a batch (the
// slot service runs a slot's writes one at a time), so order within a slot
// is kept.
//
// The strategy comes from the kernel feature probes (kernel-features.ts):
// 'batch' where a batch costs one grace period; 'concurrent' where batches
// are refused (5.10) or cost one wait per element (6.1), so single updates go
// several at once and share grace periods; 'single' when the configuration
// allows one update at a time. A batch refused with ENOTSUPP still falls back
// to single updates for that outer map: a safety net, should the probe and
// the map disagree.
import type { KernelMap, KernelOuterMap } from './ports';
import { mimdError, SwapQueueFullError } from './errors';
import type { ReplaceGuard, SwapStrategy } from './kernel-features';

export interface SwapQueueOptions {
  /** updates allowed to wait or run at once; beyond it, SwapQueueFullError */
  capacity: number;
  /** updates (single or batched) in flight in the kernel at once */
  concurrency: number;
  /** most swaps in one batch */
  maxBatch?: number;
  /** how updates are sent (from the kernel probe); default 'batch' */
  strategy?: SwapStrategy;
  /** refuses a swap before the kernel is touched (HASH_OF_MAPS replace on a kernel where it is not atomic) */
  guard?: ReplaceGuard | undefined;
}

export interface SwapOutcome {
  /** wall time of the kernel update that applied this swap, milliseconds */
  swapMs: number;
  /** how many swaps that update applied (1: a single update) */
  batchSize: number;
}

interface PendingSwap {
  key: Buffer;
  inner: KernelMap;
  resolve: (outcome: SwapOutcome) => void;
  reject: (err: unknown) => void;
}

/** The swaps of one outer map: at most one update of it in the kernel at a time. */
interface Lane {
  busy: boolean;
  pending: PendingSwap[];
}

const DEFAULT_MAX_BATCH = 256;

/** How a kernel without batch operations on an outer map refuses them. */
function unsupported(err: unknown): boolean {
  const code = (err as { code?: unknown }).code;
  return code === 'ENOTSUPP' || code === 'EOPNOTSUPP';
}

export class SwapQueue {
  private running = 0;
  private queued = 0;
  private readonly waiting: (() => void)[] = [];
  private readonly lanes = new WeakMap<KernelOuterMap, Lane>();
  /** outer maps the kernel refused a batch update for */
  private readonly noBatch = new WeakSet<KernelOuterMap>();
  private readonly maxBatch: number;
  readonly strategy: SwapStrategy;

  constructor(private readonly options: SwapQueueOptions) {
    this.maxBatch = Math.max(1, Math.floor(options.maxBatch ?? DEFAULT_MAX_BATCH));
    this.strategy = options.strategy ?? 'batch';
  }

  /** Number of updates waiting or in flight. */
  get depth(): number {
    return this.queued;
  }

  /** Puts `inner` into the slot `key` of `outer`, batched with concurrent swaps of the same outer map. */
  set(outer: KernelOuterMap, key: Buffer, inner: KernelMap): Promise<SwapOutcome> {
    try {
      const refusal = this.options.guard?.(outer, key);
      if (refusal) throw refusal;
      this.admit();
    } catch (err) {
      return Promise.reject(err);
    }
    this.queued++;
    let lane = this.lanes.get(outer);
    if (!lane) {
      lane = { busy: false, pending: [] };
      this.lanes.set(outer, lane);
    }
    const promise = new Promise<SwapOutcome>((resolve, reject) => lane.pending.push({ key, inner, resolve, reject }));
    this.pump(outer, lane);
    return promise.finally(() => {
      this.queued--;
    });
  }

  /** Empties the slot `key` of `outer`; resolves whether it held a map. */
  async clear(outer: KernelOuterMap, key: Buffer): Promise<SwapOutcome & { held: boolean }> {
    this.admit();
    this.queued++;
    try {
      await this.acquire();
      const started = process.hrtime.bigint();
      try {
        const held = await outer.delete(key);
        return { swapMs: elapsedMs(started), batchSize: 1, held };
      } finally {
        this.release();
      }
    } finally {
      this.queued--;
    }
  }

  private admit(): void {
    if (this.queued >= this.options.capacity) {
      throw mimdError(SwapQueueFullError, `swap queue full (${this.options.capacity} updates waiting): retry later`, {
        retryAfter: 1,
      });
    }
  }

  /** Starts the next update of an outer map unless one is in the kernel. */
  private pump(outer: KernelOuterMap, lane: Lane): void {
    if (lane.busy || lane.pending.length === 0) return;
    lane.busy = true;
    void (async () => {
      await this.acquire();
      // Everything that arrived while waiting for a place goes in this update.
      const batch = lane.pending.splice(0, this.maxBatch);
      try {
        await this.apply(outer, batch);
      } finally {
        lane.busy = false;
        this.pump(outer, lane);
      }
    })();
  }

  /** Applies a batch; called holding one place, which it gives back. */
  private async apply(outer: KernelOuterMap, batch: PendingSwap[]): Promise<void> {
    let rest = batch;
    let holding = true;
    try {
      while (rest.length > 1 && this.strategy === 'batch' && !this.noBatch.has(outer)) {
        const started = process.hrtime.bigint();
        try {
          await outer.setInnerBatch(
            rest.map((s) => s.key),
            rest.map((s) => s.inner),
          );
          const outcome = { swapMs: elapsedMs(started), batchSize: rest.length };
          for (const swap of rest) swap.resolve(outcome);
          return;
        } catch (err) {
          const reported = (err as { processed?: unknown }).processed;
          if (typeof reported !== 'number') {
            // Failed before the kernel saw it: no element is to blame; each gets its own try.
            break;
          }
          // A failed batch cannot have applied every element: a count that
          // says so is the one sent, left as it was by a refusal of the whole.
          const processed = reported >= rest.length ? 0 : Math.max(0, Math.floor(reported));
          if (processed === 0 && unsupported(err)) {
            // This kernel cannot batch outer maps (5.10): single updates from now on.
            this.noBatch.add(outer);
            break;
          }
          const outcome = { swapMs: elapsedMs(started), batchSize: processed };
          for (const swap of rest.slice(0, processed)) swap.resolve(outcome);
          rest[processed]?.reject(err);
          rest = rest.slice(processed + 1);
        }
      }
      if (rest.length === 0) return;
      if (rest.length === 1) {
        await this.single(outer, rest[0] as PendingSwap);
        return;
      }
      if (this.strategy === 'single') {
        for (const swap of rest) await this.single(outer, swap);
        return;
      }
      // Several single updates: each takes a place of its own, so that
      // `concurrency` bounds them like any other update.
      this.release();
      holding = false;
      await Promise.all(
        rest.map(async (swap) => {
          await this.acquire();
          try {
            await this.single(outer, swap);
          } finally {
            this.release();
          }
        }),
      );
    } finally {
      if (holding) this.release();
    }
  }

  private async single(outer: KernelOuterMap, swap: PendingSwap): Promise<void> {
    const started = process.hrtime.bigint();
    try {
      await outer.setInner(swap.key, swap.inner);
      swap.resolve({ swapMs: elapsedMs(started), batchSize: 1 });
    } catch (err) {
      swap.reject(err);
    }
  }

  private async acquire(): Promise<void> {
    if (this.running < this.options.concurrency) {
      this.running++;
      return;
    }
    // release() hands its place over: `running` stays counted for us.
    await new Promise<void>((resolve) => this.waiting.push(resolve));
  }

  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running--;
  }
}

function elapsedMs(started: bigint): number {
  return Number(process.hrtime.bigint() - started) / 1e6;
}
