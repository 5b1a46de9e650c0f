// Audit: exactly one record per request that would change something, whatever
// its outcome (let in or not, valid or not, done or refused), with who did it,
// what, where, what was there before and after, and how it ended. Reads leave
// no record.
import t from 'tap';
import { once } from 'node:events';
import * as net from 'node:net';
import {
  KernelError,
  NotFoundError,
  OuterMapFullError,
  PreconditionFailedError,
  SwapQueueFullError,
  fromKernel,
  mimdError,
} from '../../daemon/src/domain/errors';
import type { AuditRecord } from '../../daemon/src/http/audit';
import { actorOf, auditAction, outcomeOf } from '../../daemon/src/http/audit';
import type { ReloadResult } from '../../daemon/src/http/app';
import { CLEARED, PATCHED, PEER_UID, STAGED_3, SWAP, TOKENS, bearer, json, testApp, type TestApp } from '../helpers/fake-slots';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const BODY = { entries: [{ key: 1, value: 1 }] };
const RELOADED: ReloadResult = { tokens: 4, limits: { maxEntries: 10, rateLimit: { max: 5, windowMs: 1000 } } };

const TCP_ACTOR = (id: string | null) => ({ id, kind: id === null ? null : 'token', transport: 'tcp', uid: null, address: '127.0.0.1' });
const PEER_ACTOR = { id: `uid:${PEER_UID}`, kind: 'peer', transport: 'unix', uid: PEER_UID, address: null };

/** Nothing before or after: what a record says when the answer says nothing of versions. */
const NO_CHANGE = { oldVersion: null, newVersion: null, oldMapId: null, newMapId: null, entryCount: null, digest: null };
/** What a failed change to slot 0 says was there: the fake's SLOT_DETAIL, left as it was. */
const LEFT_AS_IT_WAS = { ...NO_CHANGE, oldVersion: 2, oldMapId: 57 };

interface Inject {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE' | 'OPTIONS';
  url: string;
  payload?: object | string;
  headers?: Record<string, string>;
}

/** Sends one request and returns the only audit record it made (failing the test if not exactly one). */
async function recordOf(t: Test, test: TestApp, request: Inject): Promise<{ status: number; record: AuditRecord }> {
  const before = test.audit.length;
  const res = await test.app.inject(request);
  const made = test.audit.slice(before);
  t.equal(made.length, 1, `${request.method} ${request.url} (${res.statusCode}): one record`);
  const record = made[0]!;
  t.equal(record.status, res.statusCode, 'the record has the status of the answer');
  t.ok(Number.isFinite(Date.parse(record.time)), 'time is an ISO date');
  t.match(record.requestId, /^req-/, 'the request id, as in the log');
  t.equal(record.method, request.method);
  t.equal(record.url, request.url);
  return { status: res.statusCode, record };
}

/** The fields of a record a test states (time and requestId vary). */
function stated(record: AuditRecord): Omit<AuditRecord, 'time' | 'requestId' | 'method' | 'url'> {
  const { time: _time, requestId: _id, method: _method, url: _url, ...rest } = record;
  return rest;
}

t.test('each successful change: one record with before, after, count and digest', async (t) => {
  const app = testApp(t, { transport: 'tcp', reload: async () => RELOADED });
  const writer = bearer(TOKENS.writer);
  const cases: { request: Inject; status: number; expected: Omit<AuditRecord, 'time' | 'requestId' | 'method' | 'url'> }[] = [
    {
      request: { method: 'PUT', url: SLOT, payload: BODY, headers: writer },
      status: 200,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'put',
        map: 'firewall/blocklist',
        slot: '0',
        oldVersion: 2,
        newVersion: 3,
        oldMapId: 57,
        newMapId: 60,
        entryCount: 1,
        digest: SWAP.digest,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'POST', url: `${SLOT}/versions`, payload: BODY, headers: writer },
      status: 201,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'stage',
        map: 'firewall/blocklist',
        slot: '0',
        ...NO_CHANGE,
        newVersion: 3,
        newMapId: 60,
        entryCount: STAGED_3.entryCount,
        digest: STAGED_3.digest,
        result: 'ok',
        status: 201,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'POST', url: `${SLOT}/versions/3/activate`, headers: writer },
      status: 200,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'activate',
        map: 'firewall/blocklist',
        slot: '0',
        oldVersion: 2,
        newVersion: 3,
        oldMapId: 57,
        newMapId: 60,
        entryCount: 1,
        digest: SWAP.digest,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'POST', url: `${SLOT}/rollback`, headers: writer },
      status: 200,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'rollback',
        map: 'firewall/blocklist',
        slot: '0',
        oldVersion: 2,
        newVersion: 1,
        oldMapId: 57,
        newMapId: 60,
        entryCount: 1,
        digest: SWAP.digest,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: BODY.entries, delete: [2] }, headers: writer },
      status: 200,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'patch',
        map: 'firewall/blocklist',
        slot: '0',
        ...NO_CHANGE,
        oldVersion: PATCHED.version,
        newVersion: PATCHED.version,
        entryCount: PATCHED.entryCount,
        digest: PATCHED.digest,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'DELETE', url: SLOT, headers: writer },
      status: 200,
      expected: {
        actor: TCP_ACTOR('writer'),
        action: 'clear',
        map: 'firewall/blocklist',
        slot: '0',
        ...NO_CHANGE,
        oldVersion: CLEARED.previousVersion,
        oldMapId: CLEARED.previousMapId,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
    {
      request: { method: 'POST', url: '/v1/reload', headers: bearer(TOKENS.admin) },
      status: 200,
      expected: {
        actor: TCP_ACTOR('admin'),
        action: 'reload',
        map: null,
        slot: null,
        ...NO_CHANGE,
        result: 'ok',
        status: 200,
        code: null,
        errno: null,
      } as AuditRecord,
    },
  ];
  for (const c of cases) {
    const { status, record } = await recordOf(t, app, c.request);
    t.equal(status, c.status, `${c.request.method} ${c.request.url}: status`);
    t.strictSame(stated(record), c.expected, `${c.request.method} ${c.request.url}: record`);
  }
  t.equal(app.audit.length, cases.length, 'one record each, no more');
});

t.test('on the unix socket the actor is the peer uid, or the token with the uid', async (t) => {
  const app = testApp(t, { transport: 'unix', socketScope: 'write' });
  const { record } = await recordOf(t, app, { method: 'PUT', url: SLOT, payload: BODY });
  t.strictSame(record.actor, PEER_ACTOR);
  const withToken = await recordOf(t, app, { method: 'DELETE', url: SLOT, headers: bearer(TOKENS.admin) });
  t.strictSame(withToken.record.actor, { id: 'admin', kind: 'token', transport: 'unix', uid: PEER_UID, address: null });
  const refused = await recordOf(t, app, { method: 'DELETE', url: SLOT, headers: bearer('unknown-token-0123456789abcdef') });
  t.equal(refused.status, 401);
  t.strictSame(refused.record.actor, { id: null, kind: null, transport: 'unix', uid: PEER_UID, address: null }, 'not let in: still the uid');
});

t.test('each refused or failed change: one record with the code, and what the slot still holds', async (t) => {
  const cases: {
    name: string;
    setup?: (app: TestApp) => void;
    request: Inject;
    options?: Parameters<typeof testApp>[1];
    status: number;
    code: string;
    errno?: string;
    actor?: ReturnType<typeof TCP_ACTOR>;
    action?: AuditRecord['action'];
    before?: typeof NO_CHANGE;
  }[] = [
    { name: '401 no token', request: { method: 'PUT', url: SLOT, payload: BODY }, status: 401, code: 'MIMD_UNAUTHORIZED', actor: TCP_ACTOR(null) },
    {
      name: '401 unknown token',
      request: { method: 'DELETE', url: SLOT, headers: bearer('unknown-token-0123456789abcdef') },
      status: 401,
      code: 'MIMD_UNAUTHORIZED',
      actor: TCP_ACTOR(null),
      action: 'clear',
    },
    {
      name: '403 read token',
      request: { method: 'POST', url: `${SLOT}/rollback`, headers: bearer(TOKENS.reader) },
      status: 403,
      code: 'MIMD_FORBIDDEN',
      actor: TCP_ACTOR('reader'),
      action: 'rollback',
    },
    {
      name: '403 another map',
      request: { method: 'PUT', url: '/v1/maps/firewall/policy/slots/0', payload: BODY, headers: bearer(TOKENS.blocklist) },
      status: 403,
      code: 'MIMD_FORBIDDEN',
      actor: TCP_ACTOR('blocklist'),
    },
    {
      name: '400 validation',
      request: { method: 'PUT', url: SLOT, payload: { entries: [{ key: 1 }] }, headers: bearer(TOKENS.writer) },
      status: 400,
      code: 'MIMD_BAD_INPUT',
    },
    {
      name: '400 malformed JSON',
      request: { method: 'PATCH', url: `${SLOT}/entries`, payload: '{"upsert": [', headers: { ...bearer(TOKENS.writer), 'content-type': 'application/json' } },
      status: 400,
      code: 'MIMD_BAD_INPUT',
      action: 'patch',
    },
    {
      name: '404 no such version',
      setup: (app) => void app.slots.fail('activate', new NotFoundError('slot 0 has no version 9')),
      request: { method: 'POST', url: `${SLOT}/versions/9/activate`, headers: bearer(TOKENS.writer) },
      status: 404,
      code: 'MIMD_NOT_FOUND',
      action: 'activate',
    },
    {
      name: '404 no such map: nothing to say of the slot',
      setup: (app) => {
        app.slots.fail('putSlot', new NotFoundError('no map firewall/nope'));
        app.slots.fail('getSlot', new NotFoundError('no map firewall/nope'));
      },
      request: { method: 'PUT', url: '/v1/maps/firewall/nope/slots/0', payload: BODY, headers: bearer(TOKENS.writer) },
      status: 404,
      code: 'MIMD_NOT_FOUND',
      before: NO_CHANGE,
    },
    {
      name: '409 outer map full',
      setup: (app) => void app.slots.fail('putSlot', new OuterMapFullError('full')),
      request: { method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.writer) },
      status: 409,
      code: 'MIMD_OUTER_MAP_FULL',
    },
    {
      name: '412 precondition',
      setup: (app) => void app.slots.fail('clearSlot', mimdError(PreconditionFailedError, 'active is 3', { field: 'If-Match' })),
      request: { method: 'DELETE', url: SLOT, headers: { ...bearer(TOKENS.writer), 'if-match': '"2"' } },
      status: 412,
      code: 'MIMD_PRECONDITION_FAILED',
      action: 'clear',
    },
    {
      name: '413 body too large',
      options: { bodyLimit: 64 },
      request: { method: 'PUT', url: SLOT, payload: { entries: Array.from({ length: 20 }, (_, i) => ({ key: i, value: 1 })) }, headers: bearer(TOKENS.writer) },
      status: 413,
      code: 'MIMD_BODY_TOO_LARGE',
    },
    {
      name: '413 too many entries',
      options: { limits: { maxEntries: 1, rateLimit: { max: 100, windowMs: 60_000 } } },
      request: { method: 'PUT', url: SLOT, payload: { entries: [{ key: 1, value: 1 }, { key: 2, value: 1 }] }, headers: bearer(TOKENS.writer) },
      status: 413,
      code: 'MIMD_TOO_MANY_ENTRIES',
    },
    {
      name: '415 media type',
      request: { method: 'PUT', url: SLOT, payload: 'entries=1', headers: { ...bearer(TOKENS.writer), 'content-type': 'text/plain' } },
      status: 415,
      code: 'MIMD_UNSUPPORTED_MEDIA_TYPE',
    },
    {
      name: '503 swap queue full',
      setup: (app) => void app.slots.fail('putSlot', mimdError(SwapQueueFullError, 'queue full', { retryAfter: 2 })),
      request: { method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.writer) },
      status: 503,
      code: 'MIMD_SWAP_QUEUE_FULL',
    },
    {
      name: '500 kernel refusal with errno',
      setup: (app) => void app.slots.fail('activate', fromKernel(Object.assign(new Error('Invalid argument'), { code: 'EINVAL' }), 'swap slot 0')),
      request: { method: 'POST', url: `${SLOT}/versions/3/activate`, headers: bearer(TOKENS.writer) },
      status: 500,
      code: 'MIMD_KERNEL_ERROR',
      errno: 'EINVAL',
      action: 'activate',
    },
    {
      name: '507 kernel without memory',
      setup: (app) => void app.slots.fail('stageVersion', fromKernel(Object.assign(new Error('Cannot allocate memory'), { code: 'ENOMEM' }), 'create inner map')),
      request: { method: 'POST', url: `${SLOT}/versions`, payload: BODY, headers: bearer(TOKENS.writer) },
      status: 507,
      code: 'MIMD_KERNEL_NO_SPACE',
      errno: 'ENOMEM',
      action: 'stage',
    },
    {
      name: '500 a bug',
      setup: (app) => void app.slots.fail('patchEntries', new TypeError('x is undefined')),
      request: { method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: [1] }, headers: bearer(TOKENS.writer) },
      status: 500,
      code: 'MIMD_INTERNAL',
      action: 'patch',
    },
    {
      name: '500 a domain 5xx without errno',
      setup: (app) => void app.slots.fail('clearSlot', new KernelError('state write failed')),
      request: { method: 'DELETE', url: SLOT, headers: bearer(TOKENS.writer) },
      status: 500,
      code: 'MIMD_KERNEL_ERROR',
      action: 'clear',
    },
    {
      name: '404 a change to no route',
      request: { method: 'POST', url: '/v1/maps', payload: BODY, headers: bearer(TOKENS.writer) },
      status: 404,
      code: 'MIMD_NOT_FOUND',
      action: 'unknown',
      before: NO_CHANGE,
    },
    {
      name: '401 a change to no route without a token',
      request: { method: 'DELETE', url: '/v1/everything' },
      status: 401,
      code: 'MIMD_UNAUTHORIZED',
      actor: TCP_ACTOR(null),
      action: 'unknown',
      before: NO_CHANGE,
    },
    {
      name: '403 reload without admin',
      options: { reload: async () => RELOADED },
      request: { method: 'POST', url: '/v1/reload', headers: bearer(TOKENS.writer) },
      status: 403,
      code: 'MIMD_FORBIDDEN',
      action: 'reload',
      before: NO_CHANGE,
    },
    {
      name: '500 reload that failed',
      options: {
        reload: async () => {
          throw new Error('config: api.tokens[0].sha256: expected ...');
        },
      },
      request: { method: 'POST', url: '/v1/reload', headers: bearer(TOKENS.admin) },
      status: 500,
      code: 'MIMD_INTERNAL',
      actor: TCP_ACTOR('admin'),
      action: 'reload',
      before: NO_CHANGE,
    },
  ];
  for (const c of cases) {
    const app = testApp(t, { transport: 'tcp', ...c.options });
    c.setup?.(app);
    const { status, record } = await recordOf(t, app, c.request);
    t.equal(status, c.status, `${c.name}: status`);
    const map = c.request.url.startsWith('/v1/maps/') ? c.request.url.split('/').slice(3, 5).join('/') : null;
    t.strictSame(
      stated(record),
      {
        actor: c.actor ?? TCP_ACTOR('writer'),
        action: c.action ?? 'put',
        map,
        slot: map === null ? null : '0',
        ...(c.before ?? LEFT_AS_IT_WAS),
        result: 'error',
        status: c.status,
        code: c.code,
        errno: c.errno ?? null,
      },
      c.name,
    );
    // Refused before the handler: no change reached the service. Failed in the service: the one call that failed.
    t.equal(app.slots.changes().length, c.setup ? 1 : 0, `${c.name}: calls that change something`);
  }
});

t.test('429 rate limited: one record too', async (t) => {
  const app = testApp(t, { transport: 'tcp', limits: { maxEntries: 100, rateLimit: { max: 1, windowMs: 60_000 } } });
  const first = await recordOf(t, app, { method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.writer) });
  t.equal(first.status, 200);
  const limited = await recordOf(t, app, { method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.writer) });
  t.equal(limited.status, 429);
  t.strictSame(stated(limited.record), {
    actor: TCP_ACTOR('writer'),
    action: 'put',
    map: 'firewall/blocklist',
    slot: '0',
    ...LEFT_AS_IT_WAS,
    result: 'error',
    status: 429,
    code: 'MIMD_RATE_LIMITED',
    errno: null,
  });
  t.equal(app.slots.changes().length, 1, 'the limited change did not reach the service');
});

t.test('reads leave no record, whatever their outcome', async (t) => {
  const app = testApp(t, { transport: 'tcp' });
  app.slots.fail('listVersions', new NotFoundError('no slot 0'));
  const requests: Inject[] = [
    { method: 'GET', url: '/v1/maps', headers: bearer(TOKENS.reader) },
    { method: 'GET', url: SLOT, headers: bearer(TOKENS.reader) },
    { method: 'HEAD', url: SLOT, headers: bearer(TOKENS.reader) },
    { method: 'GET', url: `${SLOT}/entries?limit=0`, headers: bearer(TOKENS.reader) },
    { method: 'GET', url: `${SLOT}/versions`, headers: bearer(TOKENS.reader) },
    { method: 'GET', url: '/v1/maps/firewall/policy', headers: bearer(TOKENS.blocklist) },
    { method: 'GET', url: SLOT },
    { method: 'GET', url: '/v1/nope', headers: bearer(TOKENS.reader) },
    { method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) },
    { method: 'GET', url: '/healthz' },
    { method: 'GET', url: '/readyz' },
    { method: 'GET', url: '/docs/json' },
  ];
  const statuses: number[] = [];
  for (const r of requests) statuses.push((await app.app.inject(r)).statusCode);
  t.strictSame(statuses, [200, 200, 200, 400, 404, 403, 401, 404, 200, 200, 200, 200], 'the reads were answered, some with errors');
  t.strictSame(app.audit, [], 'no record');
});

t.test('a sink that throws does not fail the request; the failure is logged', async (t) => {
  const app = testApp(t);
  // Replace the collecting sink through the record array: make push throw.
  app.audit.push = () => {
    throw new Error('disk full');
  };
  const res = await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY });
  t.equal(res.statusCode, 200);
  const line = app.logs.find((l) => l.msg === 'cannot write an audit record');
  t.ok(line, 'logged');
  t.equal(line?.level, 50);
});

t.test('auditAction: the action of each route', async (t) => {
  const slot = '/v1/maps/:object/:map/slots/:slot';
  t.equal(auditAction('PUT', slot), 'put');
  t.equal(auditAction('DELETE', slot), 'clear');
  t.equal(auditAction('POST', `${slot}/versions`), 'stage');
  t.equal(auditAction('POST', `${slot}/versions/:version/activate`), 'activate');
  t.equal(auditAction('POST', `${slot}/rollback`), 'rollback');
  t.equal(auditAction('PATCH', `${slot}/entries`), 'patch');
  t.equal(auditAction('POST', '/v1/reload'), 'reload');
  t.equal(auditAction('POST', undefined), 'unknown', 'no route');
  t.equal(auditAction('POST', '/v1/maps'), 'unknown');
  t.equal(auditAction('GET', '/metrics'), 'unknown');
});

t.test('outcomeOf: what each answer says, and only the code and errno of an error', async (t) => {
  const none = { oldVersion: null, newVersion: null, oldMapId: null, newMapId: null, entryCount: null, digest: null, code: null, errno: null };
  const swap = { ...SWAP, version: 4, previousVersion: 3, mapId: 70, previousMapId: 60, entryCount: 9, digest: 'e'.repeat(64) };
  const fromSwap = { ...none, oldVersion: 3, newVersion: 4, oldMapId: 60, newMapId: 70, entryCount: 9, digest: 'e'.repeat(64) };
  for (const action of ['put', 'activate', 'rollback'] as const) t.strictSame(outcomeOf(action, swap, false), fromSwap, action);
  t.strictSame(outcomeOf('put', { ...swap, previousVersion: null, previousMapId: null, digest: null }, false), { ...fromSwap, oldVersion: null, oldMapId: null, digest: null }, 'a first PUT');
  t.strictSame(outcomeOf('stage', { ...STAGED_3 }, false), { ...none, newVersion: 3, newMapId: 60, entryCount: 1, digest: STAGED_3.digest });
  t.strictSame(outcomeOf('patch', { ...PATCHED, version: 5, entryCount: 7 }, false), { ...none, oldVersion: 5, newVersion: 5, entryCount: 7, digest: PATCHED.digest });
  t.strictSame(outcomeOf('clear', { ...CLEARED }, false), { ...none, oldVersion: 2, oldMapId: 57 });
  t.strictSame(outcomeOf('reload', { tokens: 3 }, false), none);
  t.strictSame(outcomeOf('unknown', { version: 3 }, false), none);
  t.strictSame(outcomeOf('put', null, false), none, 'no body');
  t.strictSame(outcomeOf('put', { code: 'MIMD_KERNEL_ERROR', message: 'x', errno: 'EINVAL' }, true), { ...none, code: 'MIMD_KERNEL_ERROR', errno: 'EINVAL' });
  t.strictSame(outcomeOf('put', { ...swap, code: 'MIMD_X' }, true), { ...none, code: 'MIMD_X' }, 'a failure says nothing of versions');
  t.strictSame(outcomeOf('put', null, true), none);
  t.strictSame(outcomeOf('put', { version: '3', digest: 5 }, false), none, 'values of the wrong type are left out');
});

t.test('actorOf: the principal, or what is known of a client not let in', async (t) => {
  t.strictSame(actorOf(undefined, 'tcp', null, '192.0.2.9'), { id: null, kind: null, transport: 'tcp', uid: null, address: '192.0.2.9' });
  t.strictSame(actorOf(undefined, 'unix', 33, null), { id: null, kind: null, transport: 'unix', uid: 33, address: null });
  t.strictSame(
    actorOf({ id: 'ci', kind: 'token', scope: 'write', maps: null, transport: 'tcp', uid: null, address: '::1' }, 'tcp', null, '::1'),
    { id: 'ci', kind: 'token', transport: 'tcp', uid: null, address: '::1' },
  );
});

t.test('the answer to a refused request is unchanged by auditing', async (t) => {
  const app = testApp(t, { transport: 'tcp' });
  const res = await app.app.inject({ method: 'PUT', url: SLOT, payload: BODY });
  t.strictSame(json(res), { code: 'MIMD_UNAUTHORIZED', message: 'Authorization: a bearer token is required', field: 'Authorization' });
});

t.test('a change whose client went away before the answer is still recorded', async (t) => {
  const app = testApp(t);
  let applied = 0;
  app.slots.on('putSlot', async () => {
    await new Promise((resolve) => setTimeout(resolve, 300));
    applied += 1;
    return SWAP;
  });
  await app.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.app.server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  await once(client, 'connect');
  const body = JSON.stringify(BODY);
  client.write(`PUT ${SLOT} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
  // The client gives up while the swap runs; the swap still happens.
  await new Promise((resolve) => setTimeout(resolve, 50));
  client.destroy();
  await new Promise((resolve) => setTimeout(resolve, 800));
  t.equal(applied, 1, 'the slot was changed');
  t.equal(app.audit.length, 1, 'one record of the change');
});
