// Version routes: stage (201, no ETag), list (ETag of the active one),
// activate (If-Match, ETag of the new active one).
import t from 'tap';
import { NotFoundError, TemplateViolationError, mimdError } from '../../daemon/src/domain/errors';
import { STAGED_3, SWAP, VERSION_1, VERSION_2, json, testApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/1';

t.test('POST versions stages one: 201', async (t) => {
  const { app, slots } = testApp(t);
  const body = { entries: [{ key: 1, value: 1 }], labels: { owner: 'ops' } };
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: body });
  t.equal(res.statusCode, 201);
  t.strictSame(json(res), STAGED_3);
  t.notOk(res.headers.etag, 'staging does not say which version is active');
  t.strictSame(slots.only('stageVersion'), ['firewall', 'blocklist', '1', body]);
});

t.test('POST versions over the template: the service\'s 422 with the field', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('stageVersion', mimdError(TemplateViolationError, 'maxEntries: an ARRAY inner map keeps the template size 4', { field: 'maxEntries' }));
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: { entries: [], maxEntries: 8 } });
  t.equal(res.statusCode, 422);
  t.strictSame(json(res), { code: 'MIMD_TEMPLATE_VIOLATION', message: 'maxEntries: an ARRAY inner map keeps the template size 4', field: 'maxEntries' });
});

t.test('GET versions lists the retained ones, ETag of the active one', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: `${SLOT}/versions` });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { versions: [VERSION_2, VERSION_1] });
  t.equal(res.headers.etag, '"2"');
  t.strictSame(slots.only('listVersions'), ['firewall', 'blocklist', '1']);
});

t.test('GET versions of an emptied slot: ETag "none"', async (t) => {
  const { app, slots } = testApp(t);
  slots.on('listVersions', () => [{ ...VERSION_2, state: 'retained' }, STAGED_3]);
  const res = await app.inject({ method: 'GET', url: `${SLOT}/versions` });
  t.equal(res.headers.etag, '"none"');
  t.equal((json(res).versions as unknown[]).length, 2);
});

t.test('activate swaps a version in: 200, ETag, If-Match passed', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions/3/activate`, headers: { 'if-match': '"2"' } });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { ...SWAP, version: 3, previousVersion: 2 });
  t.equal(res.headers.etag, '"3"');
  t.strictSame(slots.only('activate'), ['firewall', 'blocklist', '1', 3, 2]);
});

t.test('activate a version that is gone: 404', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('activate', new NotFoundError('slot 1 has no version 9'));
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions/9/activate` });
  t.equal(res.statusCode, 404);
  t.strictSame(json(res), { code: 'MIMD_NOT_FOUND', message: 'slot 1 has no version 9' });
});

t.test('activate ignores a JSON body', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions/3/activate`, payload: { whatever: 1 } });
  t.equal(res.statusCode, 200);
  t.equal(slots.only('activate')[3], 3);
});
