// GET /metrics: Prometheus text; swap counters and latency fed by answered
// requests, errors by code, per-slot gauges read from the slot service at
// scrape time, event-loop delay.
import t from 'tap';
import { NotFoundError, OuterMapFullError, SwapQueueFullError, mimdError } from '../../daemon/src/domain/errors';
import { BLOCKLIST, SLOT_SUMMARY, SWAP, TOKENS, bearer, testApp, type TestApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const BODY = { entries: [{ key: 1, value: 1 }] };

/** Samples of a Prometheus text exposition: `name{a="x",b="y"}` (labels as written) to value. */
function parse(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$/.exec(line);
    if (!match) throw new Error(`not a sample line: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

async function scrape(t: Test, test: TestApp): Promise<{ text: string; samples: Map<string, number> }> {
  const res = await test.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200, 'scraped');
  return { text: res.body, samples: parse(res.body) };
}

const swaps = (action: string, result: string, map = 'firewall/blocklist') => `mimd_swaps_total{map="${map}",action="${action}",result="${result}"}`;

t.test('GET /metrics is Prometheus text with every metric described', async (t) => {
  const app = testApp(t);
  const res = await app.app.inject({ method: 'GET', url: '/metrics' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4; charset=utf-8$/);
  for (const [name, type] of [
    ['mimd_swaps_total', 'counter'],
    ['mimd_swap_duration_seconds', 'histogram'],
    ['mimd_errors_total', 'counter'],
    ['mimd_slot_entries', 'gauge'],
    ['mimd_slot_active_version', 'gauge'],
    ['mimd_slot_drift', 'gauge'],
    ['mimd_event_loop_delay_seconds', 'gauge'],
  ]) {
    t.match(res.body, new RegExp(`^# HELP ${name} \\S`, 'm'), `${name} has help`);
    t.match(res.body, new RegExp(`^# TYPE ${name} ${type}$`, 'm'), `${name} is a ${type}`);
  }
  t.match(res.body, /^mimd_\w*process_resident_memory_bytes \d+/m, 'process metrics');
  t.match(res.body, /^mimd_process_resident_memory_bytes \d+/m, 'process metrics named mimd_process_*');
  t.doesNotThrow(() => parse(res.body), 'every other line is a sample');
});

t.test('a PUT counts a swap and its duration; nothing before', async (t) => {
  const app = testApp(t);
  const before = await scrape(t, app);
  t.notOk(before.samples.has(swaps('put', 'ok')), 'no swap yet');
  t.notOk(before.samples.has('mimd_swap_duration_seconds_count{map="firewall/blocklist"}'));

  t.equal((await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY })).statusCode, 200);
  const after = await scrape(t, app);
  t.equal(after.samples.get(swaps('put', 'ok')), 1);
  t.equal(after.samples.get('mimd_swap_duration_seconds_count{map="firewall/blocklist"}'), 1);
  t.equal(after.samples.get('mimd_swap_duration_seconds_sum{map="firewall/blocklist"}'), SWAP.swapMs / 1000, 'swapMs in seconds');
  t.equal(after.samples.get('mimd_swap_duration_seconds_bucket{le="0.00005",map="firewall/blocklist"}'), 1, '42 µs is in the 50 µs bucket');
  t.equal(after.samples.get('mimd_swap_duration_seconds_bucket{le="0.00001",map="firewall/blocklist"}') ?? 0, 0);

  await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY });
  t.equal((await scrape(t, app)).samples.get(swaps('put', 'ok')), 2, 'counts up');
});

t.test('activate, rollback and clear are swaps; stage and patch are not', async (t) => {
  const app = testApp(t);
  app.slots.on('clearSlot', async () => ({ slot: 0, previousVersion: 2, previousMapId: 57 }));
  await app.app.inject({ method: 'POST', url: `${SLOT}/versions/3/activate` });
  await app.app.inject({ method: 'POST', url: `${SLOT}/rollback` });
  await app.app.inject({ method: 'DELETE', url: SLOT });
  await app.app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: BODY });
  await app.app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: [1] } });
  const { samples, text } = await scrape(t, app);
  t.equal(samples.get(swaps('activate', 'ok')), 1);
  t.equal(samples.get(swaps('rollback', 'ok')), 1);
  t.equal(samples.get(swaps('clear', 'ok')), 1);
  t.notMatch(text, /action="stage"/);
  t.notMatch(text, /action="patch"/);
  t.equal(samples.get('mimd_swap_duration_seconds_count{map="firewall/blocklist"}'), 2, 'durations of the swaps that report one (clear does not)');
});

t.test('swaps on maps mimd does not have get no series: label values come only from known maps', async (t) => {
  const app = testApp(t);
  for (let i = 0; i < 5; i++) await app.app.inject({ method: 'PUT', url: `/v1/maps/junk${i}/map${i}/slots/0`, payload: BODY, headers: { authorization: 'Bearer nope' } });
  const { text } = await scrape(t, app);
  t.notMatch(text, /junk/, 'no series for URLs of unknown maps');
});

t.test('a failed swap counts as an error, by code; no duration', async (t) => {
  const app = testApp(t);
  app.slots.fail('putSlot', new OuterMapFullError('full'));
  t.equal((await app.app.inject({ method: 'PUT', url: '/v1/maps/firewall/blocklist/slots/3', payload: BODY })).statusCode, 409);
  app.slots.fail('activate', mimdError(SwapQueueFullError, 'queue full', { retryAfter: 1 }));
  await app.app.inject({ method: 'POST', url: `${SLOT}/versions/3/activate` });
  await app.app.inject({ method: 'POST', url: `${SLOT}/versions/3/activate` });
  const { samples } = await scrape(t, app);
  t.equal(samples.get(swaps('put', 'error')), 1);
  t.equal(samples.get(swaps('activate', 'error')), 2);
  t.equal(samples.get('mimd_errors_total{code="MIMD_OUTER_MAP_FULL"}'), 1);
  t.equal(samples.get('mimd_errors_total{code="MIMD_SWAP_QUEUE_FULL"}'), 2);
  t.notOk(samples.has('mimd_swap_duration_seconds_count{map="firewall/policy"}'), 'no duration for a failed swap');
});

t.test('errors of reads, refusals and validation count by code too', async (t) => {
  const app = testApp(t, { transport: 'tcp' });
  app.slots.fail('getSlot', new NotFoundError('no slot 9'));
  await app.app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist/slots/9', headers: bearer(TOKENS.reader) });
  await app.app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist' });
  await app.app.inject({ method: 'GET', url: '/v1/maps', headers: bearer('unknown-token-0123456789abcdef') });
  await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.reader) });
  await app.app.inject({ method: 'PUT', url: SLOT, payload: { entries: 'x' }, headers: bearer(TOKENS.writer) });
  const res = await app.app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) });
  const samples = parse(res.body);
  t.equal(samples.get('mimd_errors_total{code="MIMD_NOT_FOUND"}'), 1);
  t.equal(samples.get('mimd_errors_total{code="MIMD_UNAUTHORIZED"}'), 2);
  t.equal(samples.get('mimd_errors_total{code="MIMD_FORBIDDEN"}'), 1);
  t.equal(samples.get('mimd_errors_total{code="MIMD_BAD_INPUT"}'), 1);
});

t.test('reads of a slot are not swaps', async (t) => {
  const app = testApp(t, { transport: 'tcp' });
  const reader = bearer(TOKENS.reader);
  t.equal((await app.app.inject({ method: 'GET', url: SLOT, headers: reader })).statusCode, 200);
  t.equal((await app.app.inject({ method: 'GET', url: SLOT })).statusCode, 401);
  app.slots.fail('getSlot', new NotFoundError('no slot 9'));
  t.equal((await app.app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist/slots/9', headers: reader })).statusCode, 404);
  t.equal((await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: reader })).statusCode, 403);
  const text = (await app.app.inject({ method: 'GET', url: '/metrics', headers: reader })).body;
  const samples = parse(text);
  t.equal(samples.get(swaps('put', 'ok')) ?? 0, 0, 'a successful GET of a slot is no swap');
  t.equal(samples.get(swaps('put', 'error')), 1, 'only the refused PUT is a failed swap');
});

t.test('slot gauges reflect the slot service at scrape time', async (t) => {
  const app = testApp(t);
  const first = (await scrape(t, app)).samples;
  t.equal(first.get('mimd_slot_entries{map="firewall/blocklist",slot="0"}'), SLOT_SUMMARY.entryCount);
  t.equal(first.get('mimd_slot_active_version{map="firewall/blocklist",slot="0"}'), 2);
  t.equal(first.get('mimd_slot_drift{map="firewall/blocklist",slot="0"}'), 0);

  const policy = { ...BLOCKLIST, name: 'policy', type: 'HASH_OF_MAPS' };
  app.slots.on('listMaps', () => [BLOCKLIST, policy]);
  app.slots.on('listSlots', (_object, map) =>
    map === 'blocklist'
      ? [
          { ...SLOT_SUMMARY, entryCount: 500, activeVersion: 7, drift: true },
          { ...SLOT_SUMMARY, slot: 3, activeVersion: null, mapId: null, entryCount: null, drift: false },
        ]
      : [{ ...SLOT_SUMMARY, slot: '0x0a000000', activeVersion: 1, entryCount: 2 }, { ...SLOT_SUMMARY, slot: { prefixlen: 8 }, activeVersion: 1, entryCount: 4 }],
  );
  const second = (await scrape(t, app)).samples;
  t.equal(second.get('mimd_slot_entries{map="firewall/blocklist",slot="0"}'), 500);
  t.equal(second.get('mimd_slot_active_version{map="firewall/blocklist",slot="0"}'), 7);
  t.equal(second.get('mimd_slot_drift{map="firewall/blocklist",slot="0"}'), 1);
  t.notOk(second.has('mimd_slot_entries{map="firewall/blocklist",slot="3"}'), 'an empty slot has no entry count');
  t.equal(second.get('mimd_slot_active_version{map="firewall/blocklist",slot="3"}'), 0, 'no active version: 0');
  t.equal(second.get('mimd_slot_entries{map="firewall/policy",slot="0x0a000000"}'), 2, 'a string slot as it is');
  t.equal(second.get('mimd_slot_entries{map="firewall/policy",slot="{\\"prefixlen\\":8}"}'), 4, 'a struct slot as JSON');

  app.slots.on('listMaps', () => []);
  const third = await scrape(t, app);
  t.notMatch(third.text, /^mimd_slot_(entries|active_version|drift)\{/m, 'slots that went away leave no series');
});

t.test('event-loop delay is reported by quantile', async (t) => {
  const app = testApp(t);
  // Let the histogram take a few samples.
  await new Promise((resolve) => setTimeout(resolve, 50));
  const { samples } = await scrape(t, app);
  for (const q of ['0.5', '0.9', '0.99', '1']) {
    const value = samples.get(`mimd_event_loop_delay_seconds{quantile="${q}"}`);
    t.ok(value !== undefined && value >= 0 && value < 10, `quantile ${q}: ${value}`);
  }
});

t.test('a busy event loop shows as delay', async (t) => {
  const app = testApp(t);
  await scrape(t, app);
  // Block the loop for 120 ms between two timer turns.
  await new Promise<void>((resolve) =>
    setTimeout(() => {
      const until = Date.now() + 120;
      while (Date.now() < until);
      resolve();
    }, 5),
  );
  await new Promise((resolve) => setTimeout(resolve, 20));
  const { samples } = await scrape(t, app);
  const max = samples.get('mimd_event_loop_delay_seconds{quantile="1"}') ?? 0;
  t.ok(max >= 0.1, `the worst delay since the last scrape: ${max} s`);
});

t.test('requests that were not let in add no series: labels stay bounded', async (t) => {
  const app = testApp(t, { transport: 'tcp' });
  for (let i = 0; i < 20; i++) {
    const res = await app.app.inject({ method: 'PUT', url: `/v1/maps/junk${i}/map${i}/slots/0`, payload: BODY });
    if (res.statusCode !== 401) t.fail(`expected 401, got ${res.statusCode}`);
  }
  const samples = parse((await app.app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) })).body);
  t.equal(samples.get('mimd_errors_total{code="MIMD_UNAUTHORIZED"}'), 20, 'counted as errors');
  const junk = [...samples.keys()].filter((k) => k.includes('junk'));
  t.strictSame(junk, [], 'no series named after a map an unauthenticated client made up');
});
