// The one error handler: every status the API can answer, the error body
// `{ code, message, field?, errno? }`, Retry-After on 503, hidden details on
// unexpected 5xx (but logged), and Fastify's own refusals (size, media type,
// JSON, unknown route) in the same shape.
import t from 'tap';
import {
  BadInputError,
  KernelError,
  KernelNoSpaceError,
  NoRollbackTargetError,
  NotFoundError,
  NotReadyError,
  OuterMapFullError,
  PreconditionFailedError,
  SwapQueueFullError,
  TemplateViolationError,
  badInput,
  fromKernel,
  mimdError,
  templateViolation,
} from '../../daemon/src/domain/errors';
import { FakeSlots, json, testApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const PUT_BODY = { entries: [{ key: '0x7f000002', value: 1 }] };

t.test('domain errors keep their status, code, message, field and errno', async (t) => {
  const cases = [
    { err: badInput('entries[3].key', 'expected 4 bytes, got 5'), status: 400, body: { code: 'MIMD_BAD_INPUT', message: 'entries[3].key: expected 4 bytes, got 5', field: 'entries[3].key' } },
    { err: new NotFoundError('no map firewall/nope'), status: 404, body: { code: 'MIMD_NOT_FOUND', message: 'no map firewall/nope' } },
    { err: new OuterMapFullError('policy is full (64 slots)'), status: 409, body: { code: 'MIMD_OUTER_MAP_FULL', message: 'policy is full (64 slots)' } },
    { err: new NoRollbackTargetError('nothing to roll back to'), status: 409, body: { code: 'MIMD_NO_ROLLBACK_TARGET', message: 'nothing to roll back to' } },
    { err: mimdError(PreconditionFailedError, 'active version is 4', { field: 'If-Match' }), status: 412, body: { code: 'MIMD_PRECONDITION_FAILED', message: 'active version is 4', field: 'If-Match' } },
    { err: templateViolation('maxEntries', 'the template allows 65536, got 70000'), status: 422, body: { code: 'MIMD_TEMPLATE_VIOLATION', message: 'maxEntries: the template allows 65536, got 70000', field: 'maxEntries' } },
    { err: fromKernel(Object.assign(new Error('Cannot allocate memory'), { code: 'ENOMEM' }), 'create inner map'), status: 507, body: { code: 'MIMD_KERNEL_NO_SPACE', message: 'create inner map: Cannot allocate memory', errno: 'ENOMEM' } },
    { err: fromKernel(Object.assign(new Error('Invalid argument'), { code: 'EINVAL' }), 'swap slot 0'), status: 500, body: { code: 'MIMD_KERNEL_ERROR', message: 'swap slot 0: Invalid argument', errno: 'EINVAL' } },
  ];
  for (const c of cases) {
    const { app, slots } = testApp(t);
    slots.fail('putSlot', c.err);
    const res = await app.inject({ method: 'PUT', url: SLOT, payload: PUT_BODY });
    t.equal(res.statusCode, c.status, `${c.body.code}: status`);
    t.same(json(res), c.body, `${c.body.code}: body`);
    t.strictSame(Object.keys(json(res)).sort(), Object.keys(c.body).sort(), `${c.body.code}: no other keys`);
    t.equal(res.headers['content-type'], 'application/json; charset=utf-8');
    t.notOk(res.headers.etag, `${c.body.code}: no ETag on an error`);
  }
});

t.test('503 carries Retry-After from retryAfter, or 1 when the error does not say', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('putSlot', mimdError(SwapQueueFullError, 'swap queue full (1000 waiting)', { retryAfter: 2.5 }));
  const full = await app.inject({ method: 'PUT', url: SLOT, payload: PUT_BODY });
  t.equal(full.statusCode, 503);
  t.equal(full.headers['retry-after'], '3', 'rounded up to whole seconds');
  t.same(json(full), { code: 'MIMD_SWAP_QUEUE_FULL', message: 'swap queue full (1000 waiting)' });

  slots.fail('getSlot', new NotReadyError('objects are still loading'));
  const starting = await app.inject({ method: 'GET', url: SLOT });
  t.equal(starting.statusCode, 503);
  t.equal(starting.headers['retry-after'], '1');
  t.same(json(starting), { code: 'MIMD_NOT_READY', message: 'objects are still loading' });
});

t.test('an unexpected error is a 500 without details, and is logged with its stack', async (t) => {
  const { app, slots, logs } = testApp(t);
  slots.fail('listMaps', new TypeError("Cannot read properties of undefined (reading 'fd')"));
  const res = await app.inject({ method: 'GET', url: '/v1/maps' });
  t.equal(res.statusCode, 500);
  t.strictSame(json(res), { code: 'MIMD_INTERNAL', message: 'internal error' });
  const line = logs.find((l) => l.msg === 'request failed');
  t.ok(line, 'logged');
  t.equal(line?.level, 50, 'at error level');
  const err = line?.err as { type: string; message: string; stack: string };
  t.equal(err.type, 'TypeError');
  t.match(err.message, /reading 'fd'/);
  t.match(err.stack, /TypeError/);
});

t.test('a non-MIMD error with a 5xx status is hidden too', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('listMaps', Object.assign(new Error('secret path /root/x'), { statusCode: 502 }));
  const res = await app.inject({ method: 'GET', url: '/v1/maps' });
  t.equal(res.statusCode, 502);
  t.strictSame(json(res), { code: 'MIMD_INTERNAL', message: 'internal error' });
});

t.test('a 4xx domain error is logged at info, not error', async (t) => {
  const { app, slots, logs } = testApp(t);
  slots.fail('getSlot', new NotFoundError('no slot 9'));
  await app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist/slots/9' });
  const line = logs.find((l) => (l.err as { code?: string } | undefined)?.code === 'MIMD_NOT_FOUND');
  t.equal(line?.level, 30);
  t.notOk(logs.some((l) => (l.level as number) >= 50));
});

t.test('a body over the limit is 413 MIMD_BODY_TOO_LARGE, and the service is not called', async (t) => {
  const { app, slots } = testApp(t, { bodyLimit: 64 });
  const entries = Array.from({ length: 20 }, (_, i) => ({ key: i, value: 1 }));
  const res = await app.inject({ method: 'PUT', url: SLOT, payload: { entries } });
  t.equal(res.statusCode, 413);
  t.same(json(res), { code: 'MIMD_BODY_TOO_LARGE', message: 'Request body is too large' });
  t.same(slots.callsBesidesAudit(), [], 'the service is not called (but by the audit record)');
});

t.test('a body that is not JSON is 415 naming Content-Type', async (t) => {
  const { app, slots } = testApp(t);
  for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
    const res = await app.inject({ method: 'PUT', url: SLOT, payload: 'entries=1', headers: { 'content-type': type } });
    t.equal(res.statusCode, 415, type);
    t.strictSame(json(res), { code: 'MIMD_UNSUPPORTED_MEDIA_TYPE', message: 'unsupported media type: the API takes application/json (and, for PUT of a slot and POST of a version, application/x-ndjson or application/octet-stream)', field: 'Content-Type' }, type);
  }
  t.same(slots.callsBesidesAudit(), [], 'the service is not called (but by the audit record)');
});

t.test('malformed JSON is 400 MIMD_BAD_INPUT naming the body', async (t) => {
  const { app, slots } = testApp(t);
  const bad = await app.inject({ method: 'PUT', url: SLOT, payload: '{"entries": [', headers: { 'content-type': 'application/json' } });
  t.equal(bad.statusCode, 400);
  t.has(json(bad), { code: 'MIMD_BAD_INPUT', field: 'body' });
  t.match(json(bad).message, /not valid JSON/);

  const empty = await app.inject({ method: 'PUT', url: SLOT, payload: '', headers: { 'content-type': 'application/json' } });
  t.equal(empty.statusCode, 400);
  t.has(json(empty), { code: 'MIMD_BAD_INPUT', field: 'body' });

  const poisoned = await app.inject({
    method: 'PUT',
    url: SLOT,
    payload: '{"entries": [], "__proto__": {"admin": true}}',
    headers: { 'content-type': 'application/json' },
  });
  t.equal(poisoned.statusCode, 400, 'prototype poisoning refused');
  t.same(slots.callsBesidesAudit(), [], 'the service is not called (but by the audit record)');
});

t.test('an unknown route is 404 MIMD_NOT_FOUND', async (t) => {
  const { app } = testApp(t);
  for (const [method, url] of [
    ['GET', '/v1/nope'],
    ['GET', '/maps'],
    ['POST', '/v1/maps'],
    ['GET', '/v2/maps'],
    ['GET', '/v1/maps/firewall/blocklist/slots/0/versions/2'],
  ] as const) {
    const res = await app.inject({ method, url });
    t.equal(res.statusCode, 404, `${method} ${url}`);
    t.same(json(res), { code: 'MIMD_NOT_FOUND', message: `no route ${method} ${url}` });
  }
});

t.test('a domain error class used bare still renders', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('clearSlot', new BadInputError('slot: expected a decimal index or 0x..., got "x"'));
  const res = await app.inject({ method: 'DELETE', url: '/v1/maps/firewall/blocklist/slots/x' });
  t.equal(res.statusCode, 400);
  t.same(json(res), { code: 'MIMD_BAD_INPUT', message: 'slot: expected a decimal index or 0x..., got "x"' });
  t.notOk('field' in json(res));
});

t.test('classes not otherwise exercised map to their statuses', async (t) => {
  const { app, slots } = testApp(t);
  for (const [err, status] of [
    [new KernelNoSpaceError('no space'), 507],
    [new KernelError('EPERM'), 500],
    [new TemplateViolationError('too many entries'), 422],
  ] as const) {
    slots.fail('listSlots', err);
    const res = await app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist/slots' });
    t.equal(res.statusCode, status);
    t.equal(json(res).code, err.code);
    t.equal(json(res).message, err.message, 'a domain 5xx shows its message');
  }
});

t.test('health probes', async (t) => {
  const slots = new FakeSlots();
  const { app } = testApp(t, { slots });
  const live = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(live.statusCode, 200);
  t.strictSame(json(live), { status: 'ok' });

  const ready = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(ready.statusCode, 200);
  t.strictSame(json(ready), { status: 'ready' });

  slots.isReady = false;
  const starting = await app.inject({ method: 'GET', url: '/readyz' });
  t.equal(starting.statusCode, 503);
  t.strictSame(json(starting), { status: 'starting' });
  const stillLive = await app.inject({ method: 'GET', url: '/healthz' });
  t.equal(stillLive.statusCode, 200, 'liveness does not depend on readiness');

  t.equal((await app.inject({ method: 'GET', url: '/v1/healthz' })).statusCode, 404, 'probes are at the root only');
});
