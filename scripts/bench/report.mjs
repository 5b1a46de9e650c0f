// Turns the raw figures into rows (value, the floor figure it is compared
// with, the ratio, the issue's target, met or not), prints them as a table
// and writes everything to a JSON file.
import * as fs from 'node:fs';
import * as path from 'node:path';

const SIZES_LABEL = (n) => (n >= 1e6 ? `${n / 1e6}M` : n >= 1e3 ? `${n / 1e3}k` : String(n));
const fmt = (v, digits = 2) => (v === null || v === undefined || Number.isNaN(v) ? '-' : Number(v).toFixed(digits));
const fmtMs = (ms) => (ms === null || ms === undefined ? '-' : ms < 1 ? `${(ms * 1000).toFixed(0)} µs` : ms < 1000 ? `${ms.toFixed(2)} ms` : `${(ms / 1000).toFixed(2)} s`);

/**
 * Rows from the results. A row: { group, figure, value (text), vs (the floor
 * figure, text), ratio (text), target (text), met (true/false/null), raw }.
 */
export function buildRows(r) {
  const rows = [];
  const floor = r.floor;
  const floorSwapMs = floor.swapP50Us / 1000;
  const floorSwapP99Ms = floor.swapP99Us / 1000;
  const floorRate = (n) => n / (floor.fillUs[n] / 1e6);
  const add = (group, figure, value, extra = {}) => rows.push({ group, figure, value, vs: '', ratio: '', target: '', met: null, ...extra });
  const timeVs = (ms, refMs, refName) => ({ vs: `${refName} ${fmtMs(refMs)}`, ratio: ms === null || ms === undefined ? '-' : `${fmt(ms / refMs)}×` });
  const err = (group, figure, e) => add(group, figure, `failed: ${shortError(e)}`, { met: false });

  // The floor itself
  add('floor', 'single swap p50 / p99', `${fmtMs(floorSwapMs)} / ${fmtMs(floorSwapP99Ms)}`);
  add('floor', 'create + 100 entries + swap p50', fmtMs(floor.put100P50Us / 1000));
  add('floor', '64-slot batch swap p50', fmtMs(floor.batch64P50Us / 1000), timeVs(floor.batch64P50Us / 1000, floorSwapMs, 'swap'));
  for (const n of r.sizes) add('floor', `fill ${SIZES_LABEL(n)}`, `${fmtMs(floor.fillUs[n] / 1000)}, ${fmt(floor.fillUs[n] / n, 3)} µs/entry, ${fmt(floorRate(n) / 1e6)} M/s`);
  if (r.floorEnd) {
    const n = r.sizes.at(-1);
    add('floor', 'run again at the end (drift of the machine)', `swap p50 ${fmtMs(r.floorEnd.swapP50Us / 1000)}, fill ${SIZES_LABEL(n)} ${fmtMs(r.floorEnd.fillUs[n] / 1000)}`);
  }
  // The kernel's own growth, to read mimd's linearity rows against.
  const floorMarginals = marginalsOf(r.sizes, r.sizes.map((n) => ({ ms: floor.fillUs[n] / 1000 })));
  if (floorMarginals.length >= 2) {
    add('floor', `µs per added entry ${floorMarginals.map((x) => `${SIZES_LABEL(x.from)}→${SIZES_LABEL(x.to)}`).join(', ')}`, floorMarginals.map((x) => fmt(x.usPerEntry, 3)).join(', '), {
      ratio: `last/prev ${fmt(floorMarginals.at(-1).usPerEntry / floorMarginals.at(-2).usPerEntry)}`,
    });
  }

  // bpftool
  const b = r.bpftool;
  if (b.error) err('bpftool', 'all jobs', b.error);
  else {
    add('bpftool', 'one swap (one process) p50', fmtMs(b.swap.p50Ms), timeVs(b.swap.p50Ms, floorSwapMs, 'swap'));
    add('bpftool', 'create + 100 entries + swap (batch file) p50', fmtMs(b.put100.p50Ms), timeVs(b.put100.p50Ms, floorSwapMs, 'swap'));
    add('bpftool', '64 slots (batch file, 64 updates) p50', fmtMs(b.slots64.p50Ms), timeVs(b.slots64.p50Ms, floorSwapMs, 'swap'));
    for (const n of r.sizes) {
      const f = b.fills[n];
      if (!f) continue;
      add('bpftool', `fill-and-swap ${SIZES_LABEL(n)}`, `${fmtMs(f.ms)}, ${fmt((f.ms * 1000) / n, 3)} µs/entry`, {
        vs: `fill ${fmtMs(floor.fillUs[n] / 1000)}`,
        ratio: `${fmt((100 * floor.fillUs[n]) / 1000 / f.ms, 1)}% of rate`,
      });
    }
  }

  // mimd: swaps
  const m = r.mimd;
  if (!m) {
    err('mimd', 'all jobs', r.error ?? 'did not run');
    return rows;
  }
  const swapRow = (figure, res, key, refMs, refName, target, limit) => {
    if (res?.error) return err('mimd', figure, res.error);
    const ms = res[key];
    add('mimd', figure, fmtMs(ms), { ...timeVs(ms, refMs, refName), ...(target ? { target, met: ms / refMs <= limit } : {}) });
  };
  swapRow('PUT 100 entries p50', m.put, 'p50Ms', floorSwapMs, 'swap', '≤ 1.25× swap', 1.25);
  swapRow('PUT 100 entries p99', m.put, 'p99Ms', floorSwapP99Ms, 'swap p99');
  swapRow("PUT: of which mimd's swapMs p50 (its own timing)", m.put, 'swapMsP50', floorSwapMs, 'swap');
  swapRow('PUT: mimd CPU per request (all threads)', m.put, 'cpuMsPerOp', floorSwapMs, 'swap');
  if (!m.put?.error) add('mimd', 'PUT 100 entries p50, vs the same job in C', fmtMs(m.put.p50Ms), timeVs(m.put.p50Ms, floor.put100P50Us / 1000, 'create+100+swap'));
  swapRow('activate staged version p50', m.activate, 'p50Ms', floorSwapMs, 'swap', '≤ 1.25× swap', 1.25);
  swapRow('activate staged version p99', m.activate, 'p99Ms', floorSwapP99Ms, 'swap p99');
  swapRow("activate: of which mimd's swapMs p50", m.activate, 'swapMsP50', floorSwapMs, 'swap');
  swapRow('activate: mimd CPU per request (all threads)', m.activate, 'cpuMsPerOp', floorSwapMs, 'swap');
  swapRow('64 concurrent activations, 64 slots (p50 of rounds)', m.concurrent64, 'p50Ms', floorSwapMs, 'swap', '≤ 3× swap', 3);
  if (!m.concurrent64?.error) add('mimd', '64 concurrent activations vs batch floor', fmtMs(m.concurrent64.p50Ms), timeVs(m.concurrent64.p50Ms, floor.batch64P50Us / 1000, 'batch64'));

  // mimd: fills
  const largest = r.sizes.at(-1);
  for (const format of ['json', 'ndjson', 'binary']) {
    for (const n of r.sizes) {
      const f = m.fills.find((x) => x.format === format && x.n === n);
      if (!f) continue;
      const figure = `fill-and-swap ${format} ${SIZES_LABEL(n)}`;
      if (f.error) {
        err('mimd', figure, f.error);
        continue;
      }
      const pct = (100 * f.entriesPerS) / floorRate(n);
      const limit = n === 1_000_000 ? { binary: 50, ndjson: 20 }[format] : undefined;
      add('mimd', figure, `${fmtMs(f.ms)}, ${fmt(f.perEntryUs, 3)} µs/entry`, {
        vs: `fill ${fmtMs(floor.fillUs[n] / 1000)}`,
        ratio: `${fmt(pct, 1)}% of rate`,
        ...(limit ? { target: `≥ ${limit}% of rate`, met: pct >= limit } : {}),
      });
    }
    // Linearity: the cost of each added entry between sizes, which the fixed
    // per-request cost (HTTP, swap, state file) does not blur.
    const marginals = marginalsOf(
      r.sizes,
      r.sizes.map((n) => m.fills.find((x) => x.format === format && x.n === n && !x.error)),
    );
    if (marginals.length >= 2) {
      // Linear: the last step's cost per added entry at most 1.5 times the one
      // before, allowing for the kernel's own growth (the floor's hash maps
      // get dearer per entry as they grow, from cache misses).
      const growth = marginals.at(-1).usPerEntry / marginals.at(-2).usPerEntry;
      const floorGrowth = floorMarginals.length >= 2 ? Math.max(1, floorMarginals.at(-1).usPerEntry / floorMarginals.at(-2).usPerEntry) : 1;
      const judged = largest === 1_000_000;
      add('mimd', `${format}: µs per added entry ${marginals.map((x) => `${SIZES_LABEL(x.from)}→${SIZES_LABEL(x.to)}`).join(', ')}`, marginals.map((x) => fmt(x.usPerEntry, 3)).join(', '), {
        ratio: `last/prev ${fmt(growth)}`,
        target: judged ? `linear: ≤ 1.5 × floor's ${fmt(floorGrowth)}` : '',
        met: judged ? growth <= 1.5 * floorGrowth : null,
      });
    }
  }

  // mimd: load
  const load = m.load;
  if (load?.error) err('mimd', 'GET under swap storm', load.error);
  else if (load) {
    if (m.getBaseline) add('mimd', `GET slot, no storm (autocannon, ${m.getBaseline.connections} conns)`, `${fmt(m.getBaseline.reqPerS, 0)} req/s`, {
        vs: `p99 ${m.getBaseline.latencyP99Ms} ms, mimd CPU ${fmt(m.getBaseline.daemonCpuPct, 0)}%, ${fmt(m.getBaseline.daemonCpuUsPerRequest, 0)} µs CPU/req`,
      });
    if (m.getHealthz) add('mimd', 'GET /healthz, no storm (HTTP stack alone)', `${fmt(m.getHealthz.reqPerS, 0)} req/s`, {
        vs: `p99 ${m.getHealthz.latencyP99Ms} ms, mimd CPU ${fmt(m.getHealthz.daemonCpuPct, 0)}%, ${fmt(m.getHealthz.daemonCpuUsPerRequest, 0)} µs CPU/req`,
      });
    add('mimd', `GET slot during swap storm (${load.get.seconds} s)`, `${fmt(load.get.reqPerS, 0)} req/s`, {
      vs: `p99 ${load.get.latencyP99Ms} ms, non-2xx ${load.get.non2xx}, mimd CPU ${fmt(load.get.daemonCpuPct, 0)}%`,
      target: '≥ 10000 req/s',
      met: load.get.reqPerS >= 10000 && load.get.non2xx === 0,
    });
    if (m.idleEventLoop) {
      add('mimd', 'event-loop delay p99, idle daemon (the machine\'s own noise)', fmtMs(m.idleEventLoop.p99Ms), {
        vs: loopDetail(m.idleEventLoop),
      });
    }
    if (m.stormAlone && !m.stormAlone.error) {
      const a = m.stormAlone;
      add('mimd', `swap storm alone (${fmt(a.storm.seconds, 0)} s, 64 slots, no GETs)`, `${fmt(a.storm.swapsPerS, 0)} swaps/s`, {
        vs: `p50 ${fmtMs(a.storm.p50Ms)}, p99 ${fmtMs(a.storm.p99Ms)}`,
      });
      add('mimd', 'event-loop delay p99, storm alone', fmtMs(a.eventLoop.p99Ms), {
        vs: loopDetail(a.eventLoop),
        target: '≤ 10 ms',
        met: a.eventLoop.p99Ms !== null && a.eventLoop.p99Ms <= 10,
      });
    }
    add('mimd', 'swap storm with the GETs: activations (64 slots)', `${fmt(load.storm.swapsPerS, 0)} swaps/s`, {
      vs: `p50 ${fmtMs(load.storm.p50Ms)}, p99 ${fmtMs(load.storm.p99Ms)}`,
      ratio: Object.keys(load.storm.errors).length ? `errors ${JSON.stringify(load.storm.errors)}` : '',
    });
    add('mimd', 'event-loop delay p99 during storm + GETs', fmtMs(load.eventLoop.p99Ms), {
      vs: loopDetail(load.eventLoop),
      target: '≤ 10 ms',
      met: load.eventLoop.p99Ms !== null && load.eventLoop.p99Ms <= 10,
    });
  }

  // mimd: memory
  const mem = m.memory;
  if (mem?.error) err('mimd', 'peak RSS', mem.error);
  else if (mem) {
    const mb = (kb) => `${fmt(kb / 1024, 0)} MB`;
    add('mimd', 'RSS after start (fresh daemon)', mb(mem.startRssKb));
    const is1M = mem.n === 1_000_000;
    add('mimd', `peak RSS during ${SIZES_LABEL(mem.n)} NDJSON upload (VmHWM)`, mem.ndjsonError ? `failed: ${shortError(mem.ndjsonError)}` : mb(mem.ndjsonHwmKb), {
      target: is1M ? '≤ 300 MB' : '(target is for 1M)',
      met: is1M && !mem.ndjsonError ? mem.ndjsonHwmKb / 1024 <= 300 : mem.ndjsonError ? false : null,
    });
    add('mimd', `peak RSS after ${SIZES_LABEL(mem.n)} binary upload too (VmHWM)`, mem.binaryError ? `failed: ${shortError(mem.binaryError)}` : mb(mem.binaryHwmKb));
    for (const d of m.dumps ?? []) {
      if (d.error) err('mimd', `read back ${SIZES_LABEL(d.n)} as ${d.format} (streamed GET)`, d.error);
      else add('mimd', `read back ${SIZES_LABEL(d.n)} as ${d.format} (streamed GET)`, `${fmtMs(d.ms)}, ${fmt(d.entriesPerS / 1e6)} M/s`);
    }
    if (mem.dumpHwmKb) add('mimd', 'peak RSS after the reads too (VmHWM)', mb(mem.dumpHwmKb));
    if (mem.mainHwmKb) add('mimd', 'peak RSS of the main daemon over its run (incl. JSON fills)', mb(mem.mainHwmKb));
  }
  return rows;
}

/** Beside an event-loop figure (the median 1-s window's p99): the worst window, the longest delay, prom-client's view. */
function loopDetail(e) {
  const worst = e.worstP99Ms === undefined ? '' : `worst 1-s window p99 ${fmtMs(e.worstP99Ms)}, `;
  return `${worst}max ${fmtMs(e.maxMs)}; prom-client p99 ${fmtMs(e.promClientLagP99Ms)}`;
}

/** The cost of each entry added between consecutive sizes: { from, to, usPerEntry }, where both sizes have a time. */
function marginalsOf(sizes, done) {
  const out = [];
  for (let i = 1; i < sizes.length; i++) {
    if (done[i] && done[i - 1]) out.push({ from: sizes[i - 1], to: sizes[i], usPerEntry: ((done[i].ms - done[i - 1].ms) * 1000) / (sizes[i] - sizes[i - 1]) });
  }
  return out;
}

/** An error as the table shows it: `415 MIMD_UNSUPPORTED_MEDIA_TYPE` for an API error; the JSON file has all of it. */
export function shortError(e) {
  const text = String(e).replace(/\s+/g, ' ');
  const api = /^(\d{3}) .*"code":"([A-Z_]+)"/.exec(text);
  return api ? `${api[1]} ${api[2]}` : text.slice(0, 100);
}

/** The rows as a fixed-width text table. */
export function formatTable(rows) {
  const head = ['', 'figure', 'value', 'floor figure', 'ratio', 'target', 'met'];
  const cells = rows.map((r) => [r.group, r.figure, r.value, r.vs, r.ratio, r.target, r.met === null ? '' : r.met ? 'met' : 'NOT MET']);
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((c) => String(c[i]).length)));
  const line = (c) => c.map((x, i) => String(x).padEnd(widths[i])).join(' | ').trimEnd();
  return [line(head), widths.map((w) => '-'.repeat(w)).join('-|-'), ...cells.map(line)].join('\n');
}

/** Writes the results and rows to <dir>/bench-<timestamp>.json; returns the path. */
export function writeResults(dir, results, rows) {
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `bench-${results.startedAt.replace(/[:.]/g, '-')}.json`);
  fs.writeFileSync(file, JSON.stringify({ ...results, rows }, null, 2) + '\n');
  return file;
}
