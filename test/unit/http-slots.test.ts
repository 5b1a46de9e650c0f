// Slot routes: list, read, PUT (201 new / 200 replaced), DELETE, rollback;
// If-Match passed to the service as `expect`, ETag from the active version.
import t from 'tap';
import { PreconditionFailedError, NoRollbackTargetError, OuterMapFullError, mimdError } from '../../daemon/src/domain/errors';
import { CLEARED, SLOT_DETAIL, SLOT_SUMMARY, SWAP, json, testApp } from '../helpers/fake-slots';

const SLOTS = '/v1/maps/firewall/blocklist/slots';
const SLOT = `${SLOTS}/0`;
const BODY = { entries: [{ key: '0x7f000002', value: 1 }], labels: { owner: 'ops', 'example.com/ticket': 'OPS-1' }, maxEntries: 1024 };

t.test('GET slots lists the slots in use', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: SLOTS });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { slots: [SLOT_SUMMARY] });
  t.strictSame(slots.only('listSlots'), ['firewall', 'blocklist']);
  t.notOk(res.headers.etag);
});

t.test('GET a slot: detail and ETag of the active version', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: `${SLOTS}/0x00000000` });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), SLOT_DETAIL);
  t.equal(res.headers.etag, '"2"');
  t.strictSame(slots.only('getSlot'), ['firewall', 'blocklist', '0x00000000'], 'the slot stays a string for the codec');
});

t.test('GET an empty slot: ETag "none"', async (t) => {
  const { app, slots } = testApp(t);
  slots.on('getSlot', () => ({ ...SLOT_DETAIL, activeVersion: null, kernelMapId: null, installedMapId: null }));
  const res = await app.inject({ method: 'GET', url: SLOT });
  t.equal(res.headers.etag, '"none"');
  t.equal(json(res).activeVersion, null);
});

t.test('GET a slot that drifted', async (t) => {
  const { app, slots } = testApp(t);
  slots.on('getSlot', () => ({ ...SLOT_DETAIL, kernelMapId: 99, drift: true }));
  const res = await app.inject({ method: 'GET', url: SLOT });
  t.has(json(res), { kernelMapId: 99, installedMapId: 57, drift: true });
});

t.test('PUT replacing a slot: 200, new version as ETag, body passed whole', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'PUT', url: SLOT, payload: BODY });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), SWAP);
  t.equal(res.headers.etag, '"3"');
  t.strictSame(slots.only('putSlot'), ['firewall', 'blocklist', '0', BODY, undefined]);
});

t.test('PUT into an empty slot: 201', async (t) => {
  const { app, slots } = testApp(t);
  slots.on('putSlot', async () => ({ ...SWAP, version: 1, previousVersion: null, created: true }));
  const res = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] } });
  t.equal(res.statusCode, 201);
  t.equal(res.headers.etag, '"1"');
  t.has(json(res), { version: 1, previousVersion: null, created: true });
});

t.test('PUT passes If-Match as expect', async (t) => {
  for (const [header, expect] of [['"2"', 2], ['"none"', null], ['*', undefined]] as const) {
    const { app, slots } = testApp(t);
    const res = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: { 'if-match': header } });
    t.equal(res.statusCode, 200, header);
    t.equal(slots.only('putSlot')[4], expect, header);
  }
});

t.test('PUT: 412 when the active version moved on, 409 when a HASH_OF_MAPS is full', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('putSlot', mimdError(PreconditionFailedError, 'If-Match "2" but the active version is 3', { field: 'If-Match' }));
  const stale = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [] }, headers: { 'if-match': '"2"' } });
  t.equal(stale.statusCode, 412);
  t.strictSame(json(stale), { code: 'MIMD_PRECONDITION_FAILED', message: 'If-Match "2" but the active version is 3', field: 'If-Match' });
  t.notOk(stale.headers.etag);

  slots.fail('putSlot', new OuterMapFullError('policy holds 64 of 64 slots'));
  const full = await app.inject({ method: 'PUT', url: '/v1/maps/firewall/policy/slots/5', payload: { entries: [] } });
  t.equal(full.statusCode, 409);
  t.equal(json(full).code, 'MIMD_OUTER_MAP_FULL');
});

t.test('DELETE empties the slot: ETag "none"', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'DELETE', url: SLOT, headers: { 'if-match': '"2"' } });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), CLEARED);
  t.equal(res.headers.etag, '"none"');
  t.strictSame(slots.only('clearSlot'), ['firewall', 'blocklist', '0', 2]);
});

t.test('rollback without a body, with {}, and with a version', async (t) => {
  const { app, slots } = testApp(t);
  const bare = await app.inject({ method: 'POST', url: `${SLOT}/rollback` });
  t.equal(bare.statusCode, 200);
  t.equal(bare.headers.etag, '"1"');
  t.strictSame(json(bare), { ...SWAP, version: 1, previousVersion: 2 });

  const empty = await app.inject({ method: 'POST', url: `${SLOT}/rollback`, payload: {} });
  t.equal(empty.statusCode, 200);

  const chosen = await app.inject({ method: 'POST', url: `${SLOT}/rollback`, payload: { version: 7 }, headers: { 'if-match': '"3"' } });
  t.equal(chosen.statusCode, 200);
  t.equal(chosen.headers.etag, '"7"');

  const calls = slots.calls.filter((c) => c.method === 'rollback').map((c) => c.args);
  t.strictSame(calls, [
    ['firewall', 'blocklist', '0', undefined, undefined],
    ['firewall', 'blocklist', '0', undefined, undefined],
    ['firewall', 'blocklist', '0', 7, 3],
  ]);
});

t.test('rollback with nothing to roll back to is the service\'s 409', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('rollback', new NoRollbackTargetError('slot 0 has no previous version'));
  const res = await app.inject({ method: 'POST', url: `${SLOT}/rollback` });
  t.equal(res.statusCode, 409);
  t.strictSame(json(res), { code: 'MIMD_NO_ROLLBACK_TARGET', message: 'slot 0 has no previous version' });
});

t.test('a long hex slot of a hash key reaches the service', async (t) => {
  const { app, slots } = testApp(t);
  const slot = `0x${'ab'.repeat(256)}`;
  const res = await app.inject({ method: 'GET', url: `/v1/maps/firewall/policy/slots/${slot}` });
  t.equal(res.statusCode, 200);
  t.equal(slots.only('getSlot')[2], slot);
});
