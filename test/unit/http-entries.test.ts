// Entry routes: pages of the active or a retained version's entries, and
// PATCH in place (If-Match, ETag).
import t from 'tap';
import { KernelNoSpaceError, badInput, mimdError } from '../../daemon/src/domain/errors';
import { PAGE, PATCHED, json, testApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/policy/slots/1';

t.test('GET entries of the active version: a page, default limit 100', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: `${SLOT}/entries` });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), PAGE);
  t.strictSame(slots.only('readEntries'), ['firewall', 'policy', '1', { limit: 100, cursor: undefined }]);
});

t.test('GET entries with limit and cursor, and a next cursor back', async (t) => {
  const { app, slots } = testApp(t);
  const page = { entries: [{ key: '0x080000000a000000', value: 1 }, { key: '0x1800000ac0a80100', value: 0 }], nextCursor: 'eyJrIjoiMHgxOCJ9' };
  slots.on('readEntries', () => page);
  const res = await app.inject({ method: 'GET', url: `${SLOT}/entries?limit=2&cursor=abc%3D` });
  t.strictSame(json(res), page);
  t.strictSame(slots.only('readEntries')[3], { limit: 2, cursor: 'abc=' });
});

t.test('GET entries of a retained version', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: `${SLOT}/versions/4/entries?limit=10` });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), PAGE);
  t.strictSame(slots.only('readEntries'), ['firewall', 'policy', '1', { limit: 10, cursor: undefined, version: 4 }]);
});

t.test('a bad cursor is the service\'s 400', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('readEntries', badInput('cursor', 'not a cursor of this slot'));
  const res = await app.inject({ method: 'GET', url: `${SLOT}/entries?cursor=zzz` });
  t.equal(res.statusCode, 400);
  t.strictSame(json(res), { code: 'MIMD_BAD_INPUT', message: 'cursor: not a cursor of this slot', field: 'cursor' });
});

t.test('PATCH upserts and deletes in place: 200, ETag of the active version', async (t) => {
  const { app, slots } = testApp(t);
  const body = { upsert: [{ key: '0x080000000a000000', value: 1 }], delete: ['0x1800000ac0a80100'] };
  const res = await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: body, headers: { 'if-match': '"2"' } });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), PATCHED);
  t.equal(res.headers.etag, '"2"');
  t.strictSame(slots.only('patchEntries'), ['firewall', 'policy', '1', body, 2]);
});

t.test('PATCH with only upsert, or only delete', async (t) => {
  const { app, slots } = testApp(t);
  t.equal((await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: [] } })).statusCode, 200);
  t.equal((await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: [1] } })).statusCode, 200);
  t.equal(slots.calls.filter((c) => c.method === 'patchEntries').length, 2);
});

t.test('PATCH errors from the service: the codec\'s field, the kernel\'s 507', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('patchEntries', badInput('upsert[0].key', 'expected 8 bytes, got 4'));
  const bad = await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: [{ key: '0x0a000000', value: 1 }] } });
  t.equal(bad.statusCode, 400);
  t.strictSame(json(bad), { code: 'MIMD_BAD_INPUT', message: 'upsert[0].key: expected 8 bytes, got 4', field: 'upsert[0].key' });

  slots.fail('patchEntries', mimdError(KernelNoSpaceError, 'update inner map: no space left', { errno: 'E2BIG' }));
  const full = await app.inject({ method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: [{ key: 1, value: 1 }] } });
  t.equal(full.statusCode, 507);
  t.strictSame(json(full), { code: 'MIMD_KERNEL_NO_SPACE', message: 'update inner map: no space left', errno: 'E2BIG' });
});
