// The one path every outer-map update takes. Each update waits one RCU grace
// period in the kernel (KERNEL-NOTES), so updates run in the addon's worker
// threads, a bounded number at a time; callers past the bound are refused at
// once (503) rather than queued without limit. Batching concurrent swaps into
// one BPF_MAP_UPDATE_BATCH later is a change to this file alone.
import type { KernelMap, KernelOuterMap } from './ports';
import { mimdError, SwapQueueFullError } from './errors';

export interface SwapQueueOptions {
  /** updates allowed to wait or run at once; beyond it, SwapQueueFullError */
  capacity: number;
  /** updates in flight in the kernel at once */
  concurrency: number;
}

export interface SwapOutcome {
  /** wall time of the kernel update, milliseconds */
  swapMs: number;
}

export class SwapQueue {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(private readonly options: SwapQueueOptions) {}

  /** Number of updates waiting or in flight. */
  get depth(): number {
    return this.running + this.waiting.length;
  }

  /** Puts `inner` into the slot `key` of `outer`. */
  set(outer: KernelOuterMap, key: Buffer, inner: KernelMap): Promise<SwapOutcome> {
    return this.run(() => outer.setInner(key, inner));
  }

  /** Empties the slot `key` of `outer`; resolves whether it held a map. */
  clear(outer: KernelOuterMap, key: Buffer): Promise<SwapOutcome & { held: boolean }> {
    let held = false;
    return this.run(async () => {
      held = await outer.delete(key);
    }).then((outcome) => ({ ...outcome, held }));
  }

  private async run(update: () => Promise<void>): Promise<SwapOutcome> {
    if (this.depth >= this.options.capacity) {
      throw mimdError(SwapQueueFullError, `swap queue full (${this.options.capacity} updates waiting): retry later`, {
        retryAfter: 1,
      });
    }
    await this.acquire();
    const started = process.hrtime.bigint();
    try {
      await update();
      return { swapMs: Number(process.hrtime.bigint() - started) / 1e6 };
    } finally {
      this.release();
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
