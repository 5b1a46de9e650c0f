// GET throughput (autocannon) while a swap storm runs, and the daemon's
// event-loop delay over that window (mimd_event_loop_delay_seconds is reset by
// each scrape: one scrape just before, one at the end).
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { MAP, scrape } from './mimd-jobs.mjs';

const STORM = path.join(path.dirname(fileURLToPath(import.meta.url)), 'storm.mjs');
const GET_PATH = `${MAP}/slots/0`;

/**
 * autocannon against GET of a slot (reads the slot's map id from the kernel)
 * for `seconds`; with the daemon's CPU use over that time (percent of one
 * CPU, all its threads).
 */
export async function getThroughput(daemon, seconds, connections = 32) {
  const cpu0 = daemon.cpuSeconds();
  const result = await autocannon({ url: `http://mimd${GET_PATH}`, socketPath: daemon.socket, connections, duration: seconds, pipelining: 1 });
  const daemonCpuPct = (100 * (daemon.cpuSeconds() - cpu0)) / seconds;
  return {
    daemonCpuPct,
    path: GET_PATH,
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

/** Runs the storm process for `ms`; resolves with its JSON result. */
function runStorm(socketPath, ms, versions, activeIndex) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [STORM, socketPath, String(ms), JSON.stringify(versions), String(activeIndex)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.on('error', reject);
    child.on('exit', (code) => {
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

/**
 * The storm on the 64 storm slots for `seconds` + a margin, autocannon on
 * GET for `seconds` inside it; metrics scraped just before and at the end.
 */
export async function getDuringStorm(daemon, versions, activeIndex, seconds) {
  const client = daemon.client;
  await scrape(client); // resets the delay histograms: what follows is the storm's
  const storm = runStorm(daemon.socket, seconds * 1000 + 1500, versions, activeIndex);
  await new Promise((r) => setTimeout(r, 500)); // let the storm get going
  const get = await getThroughput(daemon, seconds);
  const metrics = await scrape(client);
  const swaps = await storm;
  return {
    get,
    storm: { ...swaps, swapsPerS: swaps.swaps / swaps.seconds },
    eventLoop: {
      p50Ms: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '0.5')),
      p99Ms: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '0.99')),
      maxMs: secToMs(quantile(metrics, 'mimd_event_loop_delay_seconds', '1')),
      // prom-client's default metric; its name has carried mimd_ and mimd_process_ prefixes
      promClientLagP99Ms: secToMs(metrics.mimd_nodejs_eventloop_lag_p99_seconds ?? metrics.mimd_process_nodejs_eventloop_lag_p99_seconds ?? null),
    },
  };
}

const secToMs = (s) => (s === null || s === undefined ? null : s * 1000);
