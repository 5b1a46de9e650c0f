// Prometheus metrics (prom-client) on GET /metrics. Counters and the swap
// histogram are fed by the app's response hook (the same place audit records
// are made); per-slot gauges are read from the slot service at scrape time,
// so they are never stale and cost nothing between scrapes.
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { SlotsApi } from '../domain/slots-api';
import type { AuditAction } from './audit';

const LOOP_RESOLUTION_MS = 1;

const SWAP_ACTIONS: ReadonlySet<AuditAction> = new Set(['put', 'activate', 'rollback', 'clear']);

export class Metrics {
  readonly registry = new Registry();
  private readonly swaps: Counter<'map' | 'action' | 'result'>;
  private readonly swapSeconds: Histogram<'map'>;
  private readonly errors: Counter<'code'>;
  private readonly loopDelay: IntervalHistogram;

  constructor(slots: SlotsApi) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'mimd_' });
    this.swaps = new Counter({
      name: 'mimd_swaps_total',
      help: 'Changes of what is in a slot (put, activate, rollback, clear), by outer map and result',
      labelNames: ['map', 'action', 'result'],
      registers,
    });
    this.swapSeconds = new Histogram({
      name: 'mimd_swap_duration_seconds',
      help: 'Time in the outer-map update (the kernel waits out one RCU grace period per update)',
      labelNames: ['map'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers,
    });
    this.errors = new Counter({
      name: 'mimd_errors_total',
      help: 'Requests answered with an error, by MIMD_ code',
      labelNames: ['code'],
      registers,
    });
    this.loopDelay = monitorEventLoopDelay({ resolution: LOOP_RESOLUTION_MS });
    this.loopDelay.enable();
    const delay = this.loopDelay;
    new Gauge({
      name: 'mimd_event_loop_delay_seconds',
      help: 'Event-loop delay since the last scrape, by quantile',
      labelNames: ['quantile'],
      registers,
      collect() {
        // A sample is the time between two timer turns: the resolution itself is not delay.
        for (const q of [0.5, 0.9, 0.99, 1]) this.set({ quantile: String(q) }, Math.max(0, delay.percentile(q * 100) / 1e9 - LOOP_RESOLUTION_MS / 1000));
        delay.reset();
      },
    });
    new Gauge({
      name: 'mimd_slot_entries',
      help: 'Entries of the active inner map of each slot',
      labelNames: ['map', 'slot'],
      registers,
      collect() {
        this.reset();
        for (const { map, slot, entryCount } of slotRows(slots)) if (entryCount !== null) this.set({ map, slot }, entryCount);
      },
    });
    new Gauge({
      name: 'mimd_slot_active_version',
      help: 'Active version of each slot (0: none)',
      labelNames: ['map', 'slot'],
      registers,
      collect() {
        this.reset();
        for (const { map, slot, activeVersion } of slotRows(slots)) this.set({ map, slot }, activeVersion ?? 0);
      },
    });
    new Gauge({
      name: 'mimd_slot_drift',
      help: '1 when the slot does not hold what mimd installed',
      labelNames: ['map', 'slot'],
      registers,
      collect() {
        this.reset();
        for (const { map, slot, drift } of slotRows(slots)) this.set({ map, slot }, drift ? 1 : 0);
      },
    });
  }

  /** One answered request: counts swaps and errors. */
  observe(action: AuditAction, map: string | null, status: number, code: string | null, swapMs: number | null): void {
    if (code !== null) this.errors.inc({ code });
    if (!SWAP_ACTIONS.has(action) || map === null) return;
    this.swaps.inc({ map, action, result: status < 400 ? 'ok' : 'error' });
    if (status < 400 && swapMs !== null) this.swapSeconds.observe({ map }, swapMs / 1000);
  }

  close(): void {
    this.loopDelay.disable();
    this.registry.clear();
  }
}

function slotRows(slots: SlotsApi): { map: string; slot: string; entryCount: number | null; activeVersion: number | null; drift: boolean }[] {
  const rows = [];
  for (const outer of slots.listMaps()) {
    const map = `${outer.object}/${outer.name}`;
    for (const s of slots.listSlots(outer.object, outer.name)) {
      rows.push({ map, slot: typeof s.slot === 'string' ? s.slot : JSON.stringify(s.slot), entryCount: s.entryCount, activeVersion: s.activeVersion, drift: s.drift });
    }
  }
  return rows;
}
