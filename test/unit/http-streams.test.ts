// Streamed bodies and answers at the HTTP layer: NDJSON and binary uploads
// reach the service as streams with their query parameters; other routes
// refuse those media types with 415; Accept picks a streamed read-back.
import t from 'tap';
import { NotFoundError, mimdError } from '../../daemon/src/domain/errors';
import { BINARY_DUMP, PAGE, SWAP, STAGED_3, TEST_LIMITS, json, testApp, type ReceivedUpload } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/1';
const NDJSON = '{"key":"198.51.100.7","value":1}\n{"key":"203.0.113.1","value":1}\n';

t.test('PUT with an NDJSON body: the service reads the stream; labels and maxEntries come from the query', async (t) => {
  const { app, slots } = testApp(t);
  const res = await app.inject({
    method: 'PUT',
    url: `${SLOT}?maxEntries=5000&label=owner=ops&label=ticket=OPS-1`,
    payload: NDJSON,
    headers: { 'content-type': 'application/x-ndjson' },
  });
  t.equal(res.statusCode, SWAP.created ? 201 : 200);
  t.strictSame(json(res), SWAP);
  const [object, map, slot, upload] = slots.only('putSlot') as [string, string, string, ReceivedUpload];
  t.same([object, map, slot], ['firewall', 'blocklist', '1']);
  t.equal(upload.format, 'ndjson');
  t.equal(upload.data.toString(), NDJSON, 'the body, unread by the HTTP layer');
  t.equal(upload.maxEntries, 5000);
  t.same(upload.labels, { owner: 'ops', ticket: 'OPS-1' });
  t.equal(upload.requestLimit, TEST_LIMITS.maxEntries, 'api.maxEntries goes with the stream');
});

t.test('POST versions with a binary body: staged from the records', async (t) => {
  const { app, slots } = testApp(t);
  const records = Buffer.from('c6336407' + '01', 'hex');
  const res = await app.inject({ method: 'POST', url: `${SLOT}/versions`, payload: records, headers: { 'content-type': 'application/octet-stream' } });
  t.equal(res.statusCode, 201);
  t.strictSame(json(res), STAGED_3);
  const upload = slots.only('stageVersion')[3] as ReceivedUpload;
  t.equal(upload.format, 'binary');
  t.same(upload.data, records);
  t.same(upload.labels, {});
  t.notOk('maxEntries' in upload, 'no maxEntries unless asked');
});

t.test('NDJSON and binary bodies elsewhere are 415 naming Content-Type, and nothing is called', async (t) => {
  const { app, slots } = testApp(t);
  const routes: [string, string][] = [
    ['PATCH', `${SLOT}/entries`],
    ['POST', `${SLOT}/rollback`],
    ['POST', `${SLOT}/versions/2/activate`],
  ];
  for (const [method, url] of routes) {
    for (const type of ['application/x-ndjson', 'application/octet-stream']) {
      const res = await app.inject({ method: method as 'PATCH', url, payload: NDJSON, headers: { 'content-type': type } });
      t.equal(res.statusCode, 415, `${method} ${url} ${type}`);
      t.match(json(res), { code: 'MIMD_UNSUPPORTED_MEDIA_TYPE', field: 'Content-Type', message: /taken only by PUT of a slot and POST of a version/ });
    }
  }
  t.same(slots.callsBesidesAudit(), []);
});

t.test('query parameters: only with streamed bodies, labels as name=value', async (t) => {
  const { app, slots } = testApp(t);
  const cases: [string, string, string | Buffer, string][] = [
    ['maxEntries with a JSON body', `${SLOT}?maxEntries=10`, JSON.stringify({ entries: [] }), 'maxEntries'],
    ['label with a JSON body', `${SLOT}?label=a=b`, JSON.stringify({ entries: [] }), 'label'],
    ['a label without =', `${SLOT}?label=owner`, NDJSON, 'label'],
    ['a label name out of pattern', `${SLOT}?label=-x=1`, NDJSON, 'label'],
    ['a label given twice', `${SLOT}?label=a=1&label=a=2`, NDJSON, 'label[1]'],
    ['maxEntries not an integer', `${SLOT}?maxEntries=1.5`, NDJSON, 'maxEntries'],
    ['an unknown parameter', `${SLOT}?limit=5`, NDJSON, 'limit'],
  ];
  for (const [name, url, payload, field] of cases) {
    const type = typeof payload === 'string' && payload.startsWith('{"entries"') ? 'application/json' : 'application/x-ndjson';
    const res = await app.inject({ method: 'PUT', url, payload, headers: { 'content-type': type } });
    t.equal(res.statusCode, 400, name);
    t.match(json(res), { code: 'MIMD_BAD_INPUT', field }, `${name}: field ${field}`);
  }
  t.same(slots.changes(), [], 'no change was made');
});

t.test('GET entries: Accept picks NDJSON or binary for the whole map; JSON pages otherwise', async (t) => {
  const { app, slots } = testApp(t);
  let res = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: { accept: 'application/x-ndjson' } });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/x-ndjson/);
  t.same(res.body.trimEnd().split('\n').map((line) => JSON.parse(line)), PAGE.entries);
  t.strictSame(slots.calls.filter((c) => c.method === 'dumpEntries').map((c) => c.args), [['firewall', 'blocklist', '1', 'ndjson', undefined]]);

  res = await app.inject({ method: 'GET', url: `${SLOT}/versions/2/entries`, headers: { accept: 'application/octet-stream' } });
  t.equal(res.statusCode, 200);
  t.equal(res.headers['content-type'], 'application/octet-stream');
  t.same(res.rawPayload, BINARY_DUMP);
  t.strictSame(slots.calls.filter((c) => c.method === 'dumpEntries').at(-1)?.args, ['firewall', 'blocklist', '1', 'binary', 2]);

  res = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: { accept: 'application/json, application/x-ndjson' } });
  t.strictSame(json(res), PAGE, 'JSON first in Accept: a JSON page');
  res = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: { accept: '*/*' } });
  t.strictSame(json(res), PAGE, 'anything: a JSON page');

  res = await app.inject({ method: 'GET', url: `${SLOT}/entries?cursor=00000001`, headers: { accept: 'application/x-ndjson' } });
  t.equal(res.statusCode, 400);
  t.match(json(res), { code: 'MIMD_BAD_INPUT', field: 'cursor' }, 'a stream has no pages');
});

t.test('a streamed read of an unknown slot is the usual 404', async (t) => {
  const { app, slots } = testApp(t);
  slots.fail('dumpEntries', mimdError(NotFoundError, 'slot: firewall/blocklist has nothing in slot 1', { field: 'slot' }));
  const res = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: { accept: 'application/x-ndjson' } });
  t.equal(res.statusCode, 404);
  t.match(res.headers['content-type'], /application\/json/);
  t.match(json(res), { code: 'MIMD_NOT_FOUND', field: 'slot' });
});

t.test('labels and media types named like Object.prototype members are plain names, not built-ins', async (t) => {
  const { app, slots } = testApp(t);
  // `name in labels` once found constructor and toString on every object: "given twice" the first time.
  const res = await app.inject({
    method: 'PUT',
    url: `${SLOT}?label=constructor=x&label=toString=y&label=hasOwnProperty=z`,
    payload: NDJSON,
    headers: { 'content-type': 'application/x-ndjson' },
  });
  t.equal(res.statusCode, SWAP.created ? 201 : 200, res.body);
  const upload = slots.only('putSlot')[3] as ReceivedUpload;
  t.strictSame({ ...upload.labels }, { constructor: 'x', toString: 'y', hasOwnProperty: 'z' }, 'each label, as given, as the JSON body would carry it');

  const twice = await app.inject({ method: 'PUT', url: `${SLOT}?label=constructor=a&label=constructor=b`, payload: NDJSON, headers: { 'content-type': 'application/x-ndjson' } });
  t.equal(twice.statusCode, 400);
  t.match(json(twice), { code: 'MIMD_BAD_INPUT', field: 'label[1]', message: /label constructor given twice/ }, 'a name given twice is still refused');

  // Accept: toString once picked Object.prototype.toString as the dump format.
  for (const accept of ['toString', 'constructor', '__proto__']) {
    const page = await app.inject({ method: 'GET', url: `${SLOT}/entries`, headers: { accept } });
    t.equal(page.statusCode, 200, `Accept: ${accept}`);
    t.strictSame(json(page), PAGE, `Accept: ${accept}: a JSON page`);
  }
  t.equal(slots.calls.filter((c) => c.method === 'dumpEntries').length, 0, 'nothing was streamed');

  // A query parameter named like a built-in is an unknown parameter, not a number to convert.
  const unknown = await app.inject({ method: 'GET', url: `${SLOT}/entries?constructor=5` });
  t.equal(unknown.statusCode, 400);
  t.match(json(unknown), { code: 'MIMD_BAD_INPUT', field: 'constructor' });
});
