// Who may do what: over TCP only a bearer token lets a request in (401
// otherwise, with WWW-Authenticate); a token's scope and map list decide what
// it may do (403 otherwise); on the unix socket a peer without a token gets
// the socket's scope, and a token it sends is used instead. A refused request
// changes nothing: the slot service sees no change.
import t from 'tap';
import { request } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { ReloadResult } from '../../daemon/src/http/app';
import { AccessControl, tokenDigest } from '../../daemon/src/http/auth';
import { BLOCKLIST, PEER_UID, TOKENS, TOKEN_CONFIG, bearer, json, testApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const OTHER_SLOT = '/v1/maps/firewall/policy/slots/0';
const BODY = { entries: [{ key: 1, value: 1 }] };

interface Request {
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  payload?: object;
}

/** Every route that changes a slot, with a body it accepts. */
const CHANGES: Request[] = [
  { method: 'PUT', url: SLOT, payload: BODY },
  { method: 'POST', url: `${SLOT}/versions`, payload: BODY },
  { method: 'POST', url: `${SLOT}/versions/3/activate` },
  { method: 'POST', url: `${SLOT}/rollback` },
  { method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: BODY.entries } },
  { method: 'DELETE', url: SLOT },
];

/** Every route that reads, answered 200 by the fake. */
const READS: Request[] = [
  { method: 'GET', url: '/v1/maps' },
  { method: 'GET', url: '/v1/maps/firewall/blocklist' },
  { method: 'GET', url: '/v1/maps/firewall/blocklist/slots' },
  { method: 'GET', url: SLOT },
  { method: 'GET', url: `${SLOT}/versions` },
  { method: 'GET', url: `${SLOT}/entries` },
  { method: 'GET', url: `${SLOT}/versions/1/entries` },
];

const label = (r: Request) => `${r.method} ${r.url}`;

const RELOADED: ReloadResult = { tokens: 4, limits: { maxEntries: 10, rateLimit: { max: 5, windowMs: 1000 } } };

t.test('TCP without a token: 401 with WWW-Authenticate, for reads and changes, and nothing is called', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const r of [...READS, ...CHANGES]) {
    const res = await app.inject(r);
    t.equal(res.statusCode, 401, label(r));
    t.equal(res.headers['www-authenticate'], 'Bearer realm="mimd"', label(r));
    t.strictSame(json(res), { code: 'MIMD_UNAUTHORIZED', message: 'Authorization: a bearer token is required', field: 'Authorization' }, label(r));
  }
  t.strictSame(slots.changes(), [], 'no change reached the service');
  t.strictSame(slots.callsBesidesAudit(), [], 'no read either');
});

t.test('TCP with a token mimd does not know: 401', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const token of ['unknown-token-0123456789abcdef', `${TOKENS.admin}x`, TOKENS.admin.toUpperCase(), tokenDigest(TOKENS.admin)]) {
    for (const r of [READS[0]!, ...CHANGES]) {
      const res = await app.inject({ ...r, headers: bearer(token) });
      t.equal(res.statusCode, 401, `${token}: ${label(r)}`);
      t.equal(res.headers['www-authenticate'], 'Bearer realm="mimd"');
      t.strictSame(json(res), { code: 'MIMD_UNAUTHORIZED', message: 'Authorization: unknown token', field: 'Authorization' });
    }
  }
  t.strictSame(slots.changes(), []);
  t.strictSame(slots.callsBesidesAudit(), []);
});

t.test('a malformed Authorization header: 401', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const header of [
    `Basic ${Buffer.from(`admin:${TOKENS.admin}`).toString('base64')}`,
    'Bearer',
    'Bearer ',
    `Bearer ${TOKENS.admin} extra`,
    `Token ${TOKENS.admin}`,
    TOKENS.admin,
    '',
  ]) {
    const res = await app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: { authorization: header } });
    t.equal(res.statusCode, 401, JSON.stringify(header));
    t.equal(res.headers['www-authenticate'], 'Bearer realm="mimd"', JSON.stringify(header));
    t.equal(json(res).code, 'MIMD_UNAUTHORIZED', JSON.stringify(header));
  }
  t.strictSame(slots.changes(), []);
});

t.test('the scheme is case-insensitive and surrounding spaces do not matter', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const header of [`bearer ${TOKENS.writer}`, `BEARER ${TOKENS.writer}`, `  Bearer ${TOKENS.writer}  `]) {
    const res = await app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: { authorization: header } });
    t.equal(res.statusCode, 200, JSON.stringify(header));
  }
  t.equal(slots.changes().length, 3);
});

t.test('a read token reads, and gets 403 on every change; nothing changes', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const r of READS) {
    const res = await app.inject({ ...r, headers: bearer(TOKENS.reader) });
    t.equal(res.statusCode, 200, label(r));
  }
  for (const r of CHANGES) {
    const res = await app.inject({ ...r, headers: bearer(TOKENS.reader) });
    t.equal(res.statusCode, 403, label(r));
    t.strictSame(json(res), { code: 'MIMD_FORBIDDEN', message: 'reader has scope read; this needs write', field: 'Authorization' }, label(r));
    t.notOk(res.headers['www-authenticate'], `${label(r)}: a 403 does not ask for credentials`);
  }
  t.strictSame(slots.changes(), []);
});

t.test('write and admin tokens change slots', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const token of [TOKENS.writer, TOKENS.admin]) {
    for (const r of CHANGES) {
      const res = await app.inject({ ...r, headers: bearer(token) });
      t.ok(res.statusCode === 200 || res.statusCode === 201, `${label(r)}: ${res.statusCode}`);
    }
  }
  t.strictSame(
    slots.changes().map((c) => c.method),
    [...Array(2)].flatMap(() => ['putSlot', 'stageVersion', 'activate', 'rollback', 'patchEntries', 'clearSlot']),
  );
});

t.test('a token limited to some maps: 403 on another map, 200 on its own', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  const own = await app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.blocklist) });
  t.equal(own.statusCode, 200);
  t.strictSame(slots.only('putSlot').slice(0, 3), ['firewall', 'blocklist', '0']);

  for (const r of [...CHANGES.map((c) => ({ ...c, url: c.url.replace(SLOT, OTHER_SLOT) })), { method: 'GET' as const, url: OTHER_SLOT }, { method: 'GET' as const, url: '/v1/maps/firewall/policy' }]) {
    const res = await app.inject({ ...r, headers: bearer(TOKENS.blocklist) });
    t.equal(res.statusCode, 403, label(r));
    t.strictSame(json(res), { code: 'MIMD_FORBIDDEN', message: 'blocklist may not use firewall/policy (it may use: firewall/blocklist)', field: 'Authorization' }, label(r));
  }
  t.equal(slots.changes().length, 1, 'only the change to its own map');
  t.notOk(slots.calls.some((c) => c.args[1] === 'policy' && c.method !== 'getSlot'), 'the other map was not even read');

  const read = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: bearer(TOKENS.blocklist) });
  t.equal(read.statusCode, 200, 'its own map can be read');
});

t.test('a token limited to some maps sees only those in the list of maps', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  slots.on('listMaps', () => [BLOCKLIST, { ...BLOCKLIST, name: 'policy' }]);
  const res = await app.inject({ method: 'GET', url: '/v1/maps', headers: bearer(TOKENS.blocklist) });
  t.equal(res.statusCode, 200);
  t.strictSame((json(res).maps as { name: string }[]).map((m) => m.name), ['blocklist'], 'only its own map');
  const all = await app.inject({ method: 'GET', url: '/v1/maps', headers: bearer(TOKENS.reader) });
  t.strictSame((json(all).maps as { name: string }[]).map((m) => m.name), ['blocklist', 'policy'], 'an unlimited token sees all');
});

t.test('the unix socket without a token: the socket scope, as uid:<peer>', async (t) => {
  const reader = testApp(t, { transport: 'unix', socketScope: 'read' });
  t.equal((await reader.app.inject({ method: 'GET', url: SLOT })).statusCode, 200, 'read scope reads');
  for (const r of CHANGES) {
    const res = await reader.app.inject(r);
    t.equal(res.statusCode, 403, label(r));
    t.equal(json(res).message, `uid:${PEER_UID} has scope read; this needs write`, label(r));
  }
  t.strictSame(reader.slots.changes(), []);

  const writer = testApp(t, { transport: 'unix', socketScope: 'write' });
  for (const r of CHANGES) t.ok((await writer.app.inject(r)).statusCode < 300, label(r));
  t.equal(writer.slots.changes().length, CHANGES.length);
  const nowhere = await writer.app.inject({ method: 'POST', url: '/v1/maps' });
  t.equal(nowhere.statusCode, 404, 'a change to no route is let in (and not found)');
});

t.test('the unix socket without a peer lookup: principal "peer"', async (t) => {
  const { app } = testApp(t, { transport: 'unix', socketScope: 'read', peer: null });
  const res = await app.inject({ method: 'PUT', url: SLOT, payload: BODY });
  t.equal(res.statusCode, 403);
  t.equal(json(res).message, 'peer has scope read; this needs write');
});

t.test('a token on the unix socket takes precedence over the socket scope', async (t) => {
  const admin = testApp(t, { transport: 'unix', socketScope: 'admin' });
  const down = await admin.app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.reader) });
  t.equal(down.statusCode, 403, 'a read token on an admin socket is read');
  t.equal(json(down).message, 'reader has scope read; this needs write');
  const wrong = await admin.app.inject({ method: 'GET', url: SLOT, headers: bearer('unknown-token-0123456789abcdef') });
  t.equal(wrong.statusCode, 401, 'an unknown token is not the peer');
  t.strictSame(admin.slots.changes(), []);

  const reader = testApp(t, { transport: 'unix', socketScope: 'read' });
  const up = await reader.app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: bearer(TOKENS.writer) });
  t.equal(up.statusCode, 200, 'a write token on a read socket writes');
  t.equal(reader.slots.changes().length, 1);
});

t.test('probes and the API description are open; /metrics needs read', async (t) => {
  const { app } = testApp(t, { transport: 'tcp' });
  for (const url of ['/healthz', '/readyz', '/docs/json', '/docs/yaml', '/healthz?x=1']) {
    const res = await app.inject({ method: 'GET', url });
    t.equal(res.statusCode, 200, url);
  }
  const ui = await app.inject({ method: 'GET', url: '/docs' });
  t.not(ui.statusCode, 401, '/docs');
  t.ok(ui.statusCode < 400, `/docs: ${ui.statusCode}`);

  const anonymous = await app.inject({ method: 'GET', url: '/metrics' });
  t.equal(anonymous.statusCode, 401, '/metrics without a token');
  t.equal(anonymous.headers['www-authenticate'], 'Bearer realm="mimd"');
  const scraped = await app.inject({ method: 'GET', url: '/metrics', headers: bearer(TOKENS.reader) });
  t.equal(scraped.statusCode, 200, '/metrics with a read token');

  for (const url of ['/docsx', '/healthzz', '/v1/healthz', '/readyz2']) {
    t.equal((await app.inject({ method: 'GET', url })).statusCode, 401, `${url} is not open`);
  }
});

t.test('an open path prefix does not open a route behind it', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  for (const url of [`/docs/../${SLOT.slice(1)}`, `/healthz/..${SLOT}`, `/docs/%2e%2e${SLOT}`]) {
    const put = await app.inject({ method: 'PUT', url, payload: BODY });
    t.ok(put.statusCode === 401 || put.statusCode === 404, `PUT ${url}: ${put.statusCode}`);
    const get = await app.inject({ method: 'GET', url });
    t.ok(get.statusCode === 401 || get.statusCode === 404, `GET ${url}: ${get.statusCode}`);
  }
  t.strictSame(slots.callsBesidesAudit(), []);
});

t.test('an open path prefix does not open a route behind it, over a real connection (no URL normalization)', async (t) => {
  const { app, slots } = testApp(t, { transport: 'tcp' });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const send = (method: string, path: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, method, path, agent: false, headers: method === 'PUT' ? { 'content-type': 'application/json' } : {} }, (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(method === 'PUT' ? JSON.stringify(BODY) : undefined);
    });
  for (const path of [`/docs/..${SLOT}`, `/healthz/..${SLOT}`, `/docs/%2e%2e${SLOT}`, `/readyz/../v1/maps`]) {
    for (const method of ['GET', 'PUT', 'DELETE']) {
      const res = await send(method, path);
      t.ok(res.status >= 400 && res.status < 500, `${method} ${path}: ${res.status} ${res.body.slice(0, 120)}`);
      t.notMatch(res.body, /activeVersion|innerTemplate|"version"/, `${method} ${path}: no slot or map data`);
    }
  }
  t.strictSame(slots.callsBesidesAudit(), [], 'nothing reached the service');
});

t.test('POST /v1/reload needs admin, and reloads only then', async (t) => {
  let reloads = 0;
  const { app } = testApp(t, {
    transport: 'tcp',
    reload: async () => {
      reloads += 1;
      return RELOADED;
    },
  });
  const anonymous = await app.inject({ method: 'POST', url: '/v1/reload' });
  t.equal(anonymous.statusCode, 401);
  for (const token of [TOKENS.reader, TOKENS.writer, TOKENS.blocklist]) {
    const res = await app.inject({ method: 'POST', url: '/v1/reload', headers: bearer(token) });
    t.equal(res.statusCode, 403, token);
    t.match(json(res).message, /this needs admin$/);
  }
  t.equal(reloads, 0, 'no reload without admin');
  const res = await app.inject({ method: 'POST', url: '/v1/reload', headers: bearer(TOKENS.admin) });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), RELOADED);
  t.equal(reloads, 1);

  const socket = testApp(t, { transport: 'unix', socketScope: 'write', reload: async () => RELOADED });
  t.equal((await socket.app.inject({ method: 'POST', url: '/v1/reload' })).statusCode, 403, 'a write socket may not reload');
});

t.test('without a reload function there is no reload route', async (t) => {
  const { app } = testApp(t, { transport: 'tcp' });
  t.equal((await app.inject({ method: 'POST', url: '/v1/reload', headers: bearer(TOKENS.admin) })).statusCode, 404);
});

t.test('AccessControl.reload swaps the tokens at once (what SIGHUP does)', async (t) => {
  const { app, access } = testApp(t, { transport: 'tcp' });
  t.equal(access.tokenCount, TOKEN_CONFIG.length);
  t.equal((await app.inject({ method: 'GET', url: SLOT, headers: bearer(TOKENS.reader) })).statusCode, 200);
  const fresh = 'fresh-token-0123456789abcdef';
  access.reload({ tokens: [{ id: 'fresh', sha256: tokenDigest(fresh), scope: 'write' }], socketScope: 'read' });
  t.equal(access.tokenCount, 1);
  t.equal((await app.inject({ method: 'GET', url: SLOT, headers: bearer(TOKENS.reader) })).statusCode, 401, 'a removed token is refused');
  t.equal((await app.inject({ method: 'PUT', url: SLOT, payload: BODY, headers: bearer(fresh) })).statusCode, 200, 'a new token works');
});

t.test('AccessControl: identify and authorize', async (t) => {
  const access = new AccessControl({ tokens: TOKEN_CONFIG, socketScope: 'write' });
  const peer = access.identify('unix', undefined, { uid: 42 }, null);
  t.strictSame(peer, { id: 'uid:42', kind: 'peer', scope: 'write', maps: null, transport: 'unix', uid: 42, address: null });
  const token = access.identify('tcp', `Bearer ${TOKENS.blocklist}`, null, '192.0.2.1');
  t.strictSame(token, {
    id: 'blocklist',
    kind: 'token',
    scope: 'write',
    maps: new Set(['firewall/blocklist']),
    transport: 'tcp',
    uid: null,
    address: '192.0.2.1',
  });
  const onSocket = access.identify('unix', `Bearer ${TOKENS.reader}`, { uid: 7 }, null);
  t.equal(onSocket.id, 'reader');
  t.equal(onSocket.uid, 7, 'the peer uid is kept with a token on the socket');
  t.throws(() => access.identify('tcp', undefined, null, '127.0.0.1'), { code: 'MIMD_UNAUTHORIZED', statusCode: 401 });

  t.doesNotThrow(() => access.authorize(token, 'write', 'firewall/blocklist'));
  t.doesNotThrow(() => access.authorize(token, 'read', null), 'no map named: the scope decides');
  t.throws(() => access.authorize(token, 'admin', 'firewall/blocklist'), { code: 'MIMD_FORBIDDEN', statusCode: 403 });
  t.throws(() => access.authorize(token, 'read', 'firewall/policy'), { code: 'MIMD_FORBIDDEN' });
  t.doesNotThrow(() => access.authorize(peer, 'write', 'firewall/policy'));
  t.ok(access.canSee(token, 'firewall/blocklist'));
  t.notOk(access.canSee(token, 'firewall/policy'));
  t.ok(access.canSee(peer, 'firewall/policy'));
});
