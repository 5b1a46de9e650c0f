// Limits: entries per request (413), changes per principal per window (429
// with Retry-After; reads never limited), a full swap queue (503 with
// Retry-After), and a request that takes too long (cut off). Limits are read
// on every request, so that SIGHUP changes them for the next one.
import t from 'tap';
import * as net from 'node:net';
import { once } from 'node:events';
import { NotReadyError, SwapQueueFullError, mimdError } from '../../daemon/src/domain/errors';
import type { Limits } from '../../daemon/src/http/app';
import { TOKENS, bearer, json, testApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const entries = (n: number) => Array.from({ length: n }, (_, i) => ({ key: i, value: 1 }));
const limits = (maxEntries: number, max = 10_000, windowMs = 60_000): Limits => ({ maxEntries, rateLimit: { max, windowMs } });

t.test('413 MIMD_TOO_MANY_ENTRIES above maxEntries, naming the field; the service is not called', async (t) => {
  const { app, slots } = testApp(t, { limits: limits(3) });
  const put = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: entries(4) } });
  t.equal(put.statusCode, 413);
  t.strictSame(json(put), {
    code: 'MIMD_TOO_MANY_ENTRIES',
    message: 'entries: 4 entries in one request; at most 3 (api.maxEntries)',
    field: 'entries',
  });

  const stage = await app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: { entries: entries(5) } });
  t.equal(stage.statusCode, 413);
  t.equal(json(stage).field, 'entries');
  t.match(json(stage).message, /^entries: 5 entries in one request; at most 3/);

  const patch = await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: entries(2), delete: [7, 8] } });
  t.equal(patch.statusCode, 413, 'upserts and deletes count together');
  t.strictSame(json(patch), { code: 'MIMD_TOO_MANY_ENTRIES', message: 'upsert: 4 entries in one request; at most 3 (api.maxEntries)', field: 'upsert' });

  t.strictSame(slots.changes(), []);
  t.strictSame(slots.callsBesidesAudit(), []);
});

t.test('at the limit is allowed', async (t) => {
  const { app, slots } = testApp(t, { limits: limits(3) });
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: { entries: entries(3) } })).statusCode, 200);
  t.equal((await app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: { entries: entries(3) } })).statusCode, 201);
  t.equal((await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: entries(1), delete: [1, 2] } })).statusCode, 200);
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] } })).statusCode, 200, 'an empty slot content');
  t.equal(slots.changes().length, 4);
});

t.test('a PATCH of only deletions over the limit names delete', async (t) => {
  const { app } = testApp(t, { limits: limits(1) });
  const res = await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: [1, 2, 3] } });
  t.equal(res.statusCode, 413);
  t.equal(json(res).field, 'delete', 'the field the request has');
  t.match(json(res).message, /3 entries in one request; at most 1/);
});

t.test('maxEntries is read per request: changing what limits() returns changes the answer (SIGHUP)', async (t) => {
  const { app, slots, setLimits } = testApp(t, { limits: limits(10) });
  const body = { entries: entries(5) };
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: body })).statusCode, 200, 'under 10');
  setLimits(limits(4));
  const refused = await app.inject({ method: 'PUT', url: SLOT, payload: body });
  t.equal(refused.statusCode, 413, 'over 4');
  t.match(json(refused).message, /at most 4/);
  setLimits(limits(5));
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: body })).statusCode, 200, 'at 5');
  t.equal(slots.changes().length, 2);
});

t.test('429 MIMD_RATE_LIMITED with Retry-After after rateLimit.max changes in the window', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp', limits: limits(100, 3, 60_000) });
  const writer = bearer(TOKENS.writer);
  const changes = [
    { method: 'PUT' as const, url: SLOT, payload: { entries: entries(1) } },
    { method: 'POST' as const, url: `${SLOT}/rollback` },
    { method: 'DELETE' as const, url: SLOT },
  ];
  for (const r of changes) t.ok((await app.inject({ ...r, headers: writer })).statusCode < 300, `${r.method} within the limit`);
  for (const r of [...changes, { method: 'PATCH' as const, url: `${SLOT}/entries`, payload: { delete: [1] } }]) {
    const res = await app.inject({ ...r, headers: writer });
    t.equal(res.statusCode, 429, `${r.method} over the limit`);
    t.equal(json(res).code, 'MIMD_RATE_LIMITED');
    t.match(json(res).message, /^writer made more than 3 changes in the window; retry in /);
    const retryAfter = Number(res.headers['retry-after']);
    t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After in whole seconds within the window: ${res.headers['retry-after']}`);
  }
  t.equal(slots.changes().length, 3, 'the limited changes did not reach the service');
});

t.test('the limit is per principal: another token, or the socket peer, is not limited', async (t) => {
  const tcp = testApp(t, { transport: 'tcp', limits: limits(100, 1) });
  const body = { entries: entries(1) };
  t.equal((await tcp.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.writer) })).statusCode, 200);
  t.equal((await tcp.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.writer) })).statusCode, 429);
  t.equal((await tcp.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.admin) })).statusCode, 200, 'admin has its own count');
  t.equal((await tcp.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.blocklist) })).statusCode, 200, 'so has blocklist');
  t.equal((await tcp.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.admin) })).statusCode, 429);

  const unix = testApp(t, { transport: 'unix', socketScope: 'write', limits: limits(100, 1) });
  t.equal((await unix.app.inject({ method: 'PUT', url: SLOT, payload: body })).statusCode, 200, 'the peer');
  t.equal((await unix.app.inject({ method: 'PUT', url: SLOT, payload: body })).statusCode, 429, 'the peer again');
  t.equal((await unix.app.inject({ method: 'PUT', url: SLOT, payload: body, headers: bearer(TOKENS.writer) })).statusCode, 200, 'a token on the socket counts apart from the peer');
});

t.test('reads are never limited, and do not count', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp', limits: limits(100, 2) });
  const reader = bearer(TOKENS.writer);
  for (let i = 0; i < 20; i++) {
    for (const url of [SLOT, `${SLOT}/versions`, `${SLOT}/entries`, '/v1/maps', '/metrics']) {
      const res = await app.inject({ method: 'GET', url, headers: reader });
      if (res.statusCode !== 200) t.fail(`GET ${url}: ${res.statusCode}`);
    }
  }
  t.equal(slots.calls.filter((c) => c.method === 'getSlot').length, 20, 'every read reached the service');
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: reader })).statusCode, 200, 'first change after 100 reads');
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: reader })).statusCode, 200, 'second change');
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: reader })).statusCode, 429, 'third change');
  const read = await app.inject({ method: 'GET', url: SLOT, headers: reader });
  t.equal(read.statusCode, 200, 'reads still answered while changes are limited');
});

t.test('rateLimit.max is read per request (SIGHUP)', async (t) => {
  const { app, setLimits } = testApp(t, { transport: 'tcp', limits: limits(100, 1) });
  const put = () => app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: bearer(TOKENS.writer) });
  t.equal((await put()).statusCode, 200);
  t.equal((await put()).statusCode, 429);
  setLimits(limits(100, 3));
  t.equal((await put()).statusCode, 200, 'a higher limit lets the next change in');
  t.equal((await put()).statusCode, 429, 'up to the new limit');
});

t.test('a new window lets changes in again', async (t) => {
  const { app } = testApp(t, { transport: 'tcp', limits: limits(100, 1, 200) });
  const put = () => app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: bearer(TOKENS.writer) });
  t.equal((await put()).statusCode, 200);
  t.equal((await put()).statusCode, 429);
  await new Promise((resolve) => setTimeout(resolve, 500));
  t.equal((await put()).statusCode, 200, 'after the window');
});

t.test('503 keeps Retry-After: from the error, or 1', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('putSlot', mimdError(SwapQueueFullError, 'swap queue full (1024 waiting)', { retryAfter: 2.2 }));
  const full = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] } });
  t.equal(full.statusCode, 503);
  t.equal(full.headers['retry-after'], '3');
  t.equal(json(full).code, 'MIMD_SWAP_QUEUE_FULL');

  slots.fail('activate', mimdError(SwapQueueFullError, 'full', { retryAfter: 0.01 }));
  const soon = await app.inject({ method: 'POST', url: `${SLOT}/versions/2/activate` });
  t.equal(soon.headers['retry-after'], '1', 'at least a second');

  slots.fail('clearSlot', new NotReadyError('loading'));
  const starting = await app.inject({ method: 'DELETE', url: SLOT });
  t.equal(starting.statusCode, 503);
  t.equal(starting.headers['retry-after'], '1');
});

t.test('a request whose body does not arrive in requestTimeoutMs is cut off', async (t) => {
  const { app } = testApp(t, { requestTimeoutMs: 1000 });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as net.AddressInfo;
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const started = Date.now();
  let answer = '';
  socket.on('data', (chunk: Buffer) => {
    answer += chunk.toString('latin1');
  });
  socket.on('error', () => {});
  // Headers promise a body that never comes (a slow client holding a connection and a request).
  socket.write(`PUT ${SLOT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{"entries": [`);
  const timer = setTimeout(() => socket.destroy(), 3000);
  await once(socket, 'close');
  clearTimeout(timer);
  const elapsed = Date.now() - started;
  // Node 20 enforces requestTimeout on a stalled body only when headersTimeout
  // is not above it, and checks only every connectionsCheckingInterval (30 s).
  t.ok(elapsed < 3000, `mimd closed it: after ${elapsed} ms`);
  t.ok(answer === '' || /^HTTP\/1\.1 408/.test(answer), `no answer, or 408: ${JSON.stringify(answer.slice(0, 40))}`);
});
