// GET /v1/maps and GET /v1/maps/:object/:map: answers passed through whole.
import t from 'tap';
import { NotFoundError } from '../../daemon/src/domain/errors';
import { BLOCKLIST, ENTRY_SCHEMA, SLOT_SUMMARY, json, testApp } from '../helpers/fake-slots';

t.test('GET /v1/maps lists every outer map', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: '/v1/maps' });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { maps: [BLOCKLIST] }, 'every field of the view survives serialization');
  t.strictSame(slots.only('listMaps'), []);
  t.notOk(res.headers.etag, 'not about one slot');
});

t.test('GET /v1/maps/:object/:map shows one map with its slots', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({ method: 'GET', url: '/v1/maps/firewall/policy' });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { ...BLOCKLIST, slots: [SLOT_SUMMARY], schema: ENTRY_SCHEMA });
  t.strictSame(slots.only('getMap'), ['firewall', 'policy']);
});

t.test('a map without a pin path, and a slot without an active version', async (t) => {
  const { app, slots } = testApp(t);
  const empty = { ...SLOT_SUMMARY, slot: '0x00000001', activeVersion: null, mapId: null, entryCount: null, createdAt: null, labels: {}, drift: true };
  slots.on('getMap', () => ({ ...BLOCKLIST, pinPath: null, slots: [empty], schema: ENTRY_SCHEMA }));
  const res = await app.inject({ method: 'GET', url: '/v1/maps/firewall/blocklist' });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), { ...BLOCKLIST, pinPath: null, slots: [empty], schema: ENTRY_SCHEMA });
});

t.test('an unknown map is the service\'s 404', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('getMap', new NotFoundError('no outer map firewall/nope'));
  const res = await app.inject({ method: 'GET', url: '/v1/maps/firewall/nope' });
  t.equal(res.statusCode, 404);
  t.strictSame(json(res), { code: 'MIMD_NOT_FOUND', message: 'no outer map firewall/nope' });
});

t.test('names in the URL are passed decoded', async (t) => {
  const { app, slots } = testApp(t);
  await app.inject({ method: 'GET', url: '/v1/maps/my-obj/a%2Eb' });
  t.strictSame(slots.only('getMap'), ['my-obj', 'a.b']);
});
