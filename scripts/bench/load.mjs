// GET throughput (autocannon) while a swap storm runs, and the daemon's
// event-loop delay over that window (mimd_event_loop_delay_seconds is reset by
// each scrape: one scrape just before, one at the end).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { MAP, scrape } from './mimd-jobs.mjs';
import { median } from './stats.mjs';

const STORM = path.join(path.dirname(fileURLToPath(import.meta.url)), 'storm.mjs');
const GET_PATH = `${MAP}/slots/0`;

/**
 * autocannon against GET of a slot (reads the slot's map id from the kernel)
 * for `seconds`; with the daemon's CPU use over that time (percent of one
 * CPU, all its threads).
 */
export async function getThroughput(daemon, seconds, connections = 32, urlPath = GET_PATH) {
  const cpu0 = daemon.cpuSeconds();
  const result = await autocannon({ url: `http://mimd${urlPath}`, socketPath: daemon.socket, connections, duration: seconds, pipelining: 1 });
  const cpu = daemon.cpuSeconds() - cpu0;
  return {
    daemonCpuPct: (100 * cpu) / seconds,
    // CPU the daemon spent per answered GET (with whatever else it did meanwhile, e.g. the storm)
    daemonCpuUsPerRequest: result.requests.total ? (cpu * 1e6) / result.requests.total : null,
    path: urlPath,
    connections,
    seconds,
    reqPerS: result.requests.average,
    total: result.requests.total,
    non2xx: result.non2xx,
    errors: result.errors,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
  };
}

/** Storm processes running, for the cleanup on failure or signal (killed by pid). */
export const stormChildren = new Set();

/** Runs the storm process for `ms`; resolves with its JSON result. */
function runStorm(socketPath, ms, versions, activeIndex) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STORM, socketPath, String(ms), JSON.stringify(versions), String(activeIndex)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    stormChildren.add(child);
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => {
      stormChildren.delete(child);
      if (code !== 0) return reject(new Error(`storm exited ${code}`));
      try {
        resolve(JSON.parse(out));
      } catch (err) {
        reject(err);
      }
    });
  });
}

const quantile = (samples, name, q) => samples[`${name}{quantile="${q}"}`] ?? null;

/** The event-loop delay figures of a scrape (mimd's gauge, reset by each scrape, and prom-client's). */
function eventLoopOf(metrics) {
  return {
    p50Ms: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '0.5')),
    p99Ms: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '0.99')),
    maxMs: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '1')),
    // prom-client's default metric; its name has carried mimd_ and mimd_process_ prefixes
    promClientLagP99Ms: secToMs(metrics.mimd_nodejs_eventloop_lag_p99_seconds ?? metrics.mimd_process_nodejs_eventloop_lag_p99_seconds ?? null),
  };
}

/**
 * The event-loop delay in one-second windows for `seconds` (each scrape
 * resets mimd's gauge, so a scrape a second closes a window). On a shared
 * machine one window can catch a stall of the whole VM; the median window's
 * p99 is the figure, the worst window is shown beside it.
 */
async function eventLoopWindows(client, seconds) {
  await scrape(client);
  const windows = [];
  for (let i = 0; i < seconds; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    windows.push(eventLoopOf(await scrape(client)));
  }
  const p99s = windows.map((w) => w.p99Ms).filter((v) => v !== null);
  return {
    p99Ms: median(p99s),
    worstP99Ms: p99s.length ? Math.max(...p99s) : null,
    maxMs: Math.max(...windows.map((w) => w.maxMs ?? 0)),
    promClientLagP99Ms: median(windows.map((w) => w.promClientLagP99Ms).filter((v) => v !== null)),
    windows,
  };
}

/** The event-loop delay of the daemon doing nothing: what waiting for a CPU on this machine adds by itself (the control). */
export async function idleEventLoop(daemon, seconds) {
  return eventLoopWindows(daemon.client, seconds);
}

/** The storm alone for `seconds`, nothing else asking: its swap rate and the event-loop delay it causes. */
export async function stormAlone(daemon, versions, activeIndex, seconds) {
  const storm = runStorm(daemon.socket, seconds * 1000 + 1000, versions, activeIndex);
  await new Promise((r) => setTimeout(r, 500)); // let the storm get going
  const eventLoop = await eventLoopWindows(daemon.client, seconds);
  const swaps = await storm;
  return { storm: { ...swaps, swapsPerS: swaps.swaps / swaps.seconds }, eventLoop };
}

/**
 * The storm on the 64 storm slots for `seconds` + a margin, autocannon on
 * GET for `seconds` inside it, the event-loop delay in windows meanwhile.
 */
export async function getDuringStorm(daemon, versions, activeIndex, seconds) {
  const storm = runStorm(daemon.socket, seconds * 1000 + 1500, versions, activeIndex);
  await new Promise((r) => setTimeout(r, 500)); // let the storm get going
  const [get, eventLoop] = await Promise.all([getThroughput(daemon, seconds), eventLoopWindows(daemon.client, seconds)]);
  const swaps = await storm;
  return { get, storm: { ...swaps, swapsPerS: swaps.swaps / swaps.seconds }, eventLoop };
}

const secToMs = (s) => (s === null || s === undefined ? null : s * 1000);
