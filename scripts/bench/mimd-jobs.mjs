// The jobs run against mimd over HTTP (its unix socket), one function each.
// Each returns plain figures; a request that fails makes the job return
// { error } rather than throw, so one broken path does not stop the run.
import { KEY_SIZE, VALUE_SIZE, binaryBody, entries, jsonBody, ndjsonBody } from './bodies.mjs';
import { HttpError } from './client.mjs';
import { nowMs, percentile } from './stats.mjs';

export const MAP = '/v1/maps/bench/outer';
export const slotPath = (slot) => `${MAP}/slots/${slot}`;
/** Slots the 64 concurrent activations and the storm use (outer map has 128). */
export const STORM_SLOTS = Array.from({ length: 64 }, (_, i) => 64 + i);
const PUT_SLOT = 0;
const ACTIVATE_SLOT = 1;
export const FILL_SLOT = 2;

const json = (value) => Buffer.from(JSON.stringify(value));
const failure = (err) => ({ error: err instanceof HttpError ? err.short : String(err?.message ?? err) });

/**
 * PUT of a 100-entry inner map into one slot, `rounds` times: latency
 * p50/p99 in ms; with `cpuSeconds` (the daemon's CPU clock), the daemon's CPU
 * time per PUT (all threads).
 */
export async function putLatency(client, rounds, cpuSeconds) {
  try {
    const times = [];
    const swapMs = [];
    let cpu0 = null;
    for (let r = 0; r < rounds + 5; r++) {
      if (r === 5 && cpuSeconds) cpu0 = cpuSeconds();
      const body = json({ entries: entries(100, r) });
      const start = nowMs();
      const res = await client.expect([200, 201], 'PUT', slotPath(PUT_SLOT), { body });
      if (r < 5) continue; // the first few warm up the JIT and the connection
      times.push(nowMs() - start);
      swapMs.push(res.json?.swapMs ?? NaN);
    }
    const cpuMsPerOp = cpu0 === null ? null : ((cpuSeconds() - cpu0) * 1000) / rounds;
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), swapMsP50: percentile(swapMs, 50), cpuMsPerOp, rounds };
  } catch (err) {
    return failure(err);
  }
}

/** Stages a 100-entry version into `slot`; returns its version number. */
async function stage(client, slot, salt) {
  const res = await client.expect([201], 'POST', `${slotPath(slot)}/versions`, { body: json({ entries: entries(100, salt) }) });
  return res.json.version;
}

const activate = (client, slot, version) => client.expect([200], 'POST', `${slotPath(slot)}/versions/${version}/activate`);

/** Two staged versions of one slot activated in turn: swap latency without building a map (and CPU per activation, as putLatency). */
export async function activateLatency(client, rounds, cpuSeconds) {
  try {
    const versions = [await stage(client, ACTIVATE_SLOT, 0), await stage(client, ACTIVATE_SLOT, 1)];
    await activate(client, ACTIVATE_SLOT, versions[0]);
    const times = [];
    const swapMs = [];
    let cpu0 = null;
    for (let r = 1; r <= rounds + 5; r++) {
      if (r === 6 && cpuSeconds) cpu0 = cpuSeconds();
      const start = nowMs();
      const res = await activate(client, ACTIVATE_SLOT, versions[r % 2]);
      if (r <= 5) continue;
      times.push(nowMs() - start);
      swapMs.push(res.json?.swapMs ?? NaN);
    }
    const cpuMsPerOp = cpu0 === null ? null : ((cpuSeconds() - cpu0) * 1000) / rounds;
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), swapMsP50: percentile(swapMs, 50), cpuMsPerOp, rounds };
  } catch (err) {
    return failure(err);
  }
}

/**
 * Two versions staged in each of the 64 storm slots; the first activated.
 * Returns { [slot]: [v0, v1] } and which index is active (0).
 */
export async function prepareStormSlots(client) {
  const versions = {};
  await Promise.all(
    STORM_SLOTS.map(async (slot) => {
      versions[slot] = [await stage(client, slot, 0), await stage(client, slot, 1)];
      await activate(client, slot, versions[slot][0]);
    }),
  );
  return versions;
}

/**
 * 64 activations on 64 distinct slots sent at once over 64 open
 * connections; wall time from the first send to the last answer, `rounds`
 * times. Leaves version index `rounds % 2` active.
 */
export async function concurrent64(client, versions, rounds) {
  try {
    await Promise.all(STORM_SLOTS.map(() => client.expect([200], 'GET', '/healthz'))); // 64 connections open
    const times = [];
    for (let r = 1; r <= rounds; r++) {
      const start = nowMs();
      await Promise.all(STORM_SLOTS.map((slot) => activate(client, slot, versions[slot][r % 2])));
      times.push(nowMs() - start);
    }
    return { p50Ms: percentile(times, 50), minMs: Math.min(...times), maxMs: Math.max(...times), rounds, active: rounds % 2 };
  } catch (err) {
    return failure(err);
  }
}

export const FORMATS = {
  json: { contentType: 'application/json', body: (n) => jsonBody(n, n), query: () => '' },
  ndjson: { contentType: 'application/x-ndjson', body: ndjsonBody, query: (n) => `?maxEntries=${n}` },
  binary: { contentType: 'application/octet-stream', body: binaryBody, query: (n) => `?maxEntries=${n}` },
};

/**
 * Fill-and-swap: one PUT of n entries in `format` into the fill slot, timed
 * from the first byte sent to the answer (the body is built beforehand).
 * `during` is called every 20 ms while the request runs (memory sampling).
 * With `tries` > 1 the PUT is repeated and the fastest kept (all times are
 * in `allMs`): on a shared machine the fastest is the least disturbed.
 */
export async function fill(client, format, n, { during, tries = 1 } = {}) {
  const f = FORMATS[format];
  let body = f.body(n);
  const bytes = Array.isArray(body) ? body.reduce((s, b) => s + b.length, 0) : body.length;
  const timer = during ? setInterval(during, 20) : null;
  const allMs = [];
  let swapMs = null;
  try {
    for (let t = 0; t < tries; t++) {
      const start = nowMs();
      const res = await client.request('PUT', slotPath(FILL_SLOT) + f.query(n), { body, contentType: f.contentType });
      const ms = nowMs() - start;
      if (res.status !== 200 && res.status !== 201) return { format, n, bytes, error: `${res.status} ${res.text.slice(0, 160)}` };
      if (res.json?.entryCount !== n) return { format, n, bytes, error: `answered entryCount ${res.json?.entryCount}, sent ${n}` };
      allMs.push(ms);
      if (ms === Math.min(...allMs)) swapMs = res.json.swapMs ?? null;
    }
    const ms = Math.min(...allMs);
    return { format, n, bytes, ms, allMs, perEntryUs: (ms * 1000) / n, entriesPerS: n / (ms / 1000), swapMs };
  } catch (err) {
    return { format, n, bytes, ...failure(err) };
  } finally {
    if (timer) clearInterval(timer);
    body = null;
  }
}

/** Streamed reads of every entry of the fill slot: NDJSON lines, or packed records of key + value bytes. */
export const DUMP_FORMATS = { ndjson: 'application/x-ndjson', binary: 'application/octet-stream' };

/** GET of the fill slot's entries as one streamed answer; checks that `n` entries came back. */
export async function dump(client, format, n) {
  try {
    const start = nowMs();
    const res = await client.request('GET', `${slotPath(FILL_SLOT)}/entries`, { headers: { accept: DUMP_FORMATS[format] } });
    const ms = nowMs() - start;
    if (res.status !== 200) return { format, n, error: `${res.status} ${res.text.slice(0, 160)}` };
    const type = String(res.headers['content-type'] ?? '');
    if (!type.startsWith(DUMP_FORMATS[format])) return { format, n, error: `answered ${type || 'no content-type'}` };
    const got = format === 'ndjson' ? res.raw.reduce((count, byte) => count + (byte === 10 ? 1 : 0), 0) : res.raw.length / (KEY_SIZE + VALUE_SIZE);
    if (got !== n) return { format, n, error: `${got} entries read back, ${n} put` };
    return { format, n, ms, bytes: res.raw.length, entriesPerS: n / (ms / 1000) };
  } catch (err) {
    return { format, n, ...failure(err) };
  }
}

/** The Prometheus samples of GET /metrics: name{labels} -> value. */
export async function scrape(client) {
  const res = await client.expect([200], 'GET', '/metrics');
  const samples = {};
  for (const line of res.text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)/.exec(line);
    if (m) samples[m[1]] = Number(m[2]);
  }
  return samples;
}
