// Schema validation: bad input is refused with 400 before the service is
// called, naming the field the way the domain does (`entries[3].key`); bodies
// are not coerced, URL parts are converted strictly.
import t from 'tap';
import { fieldOf } from '../../daemon/src/http/app';
import { json, testApp } from '../helpers/fake-slots';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const entry = (i: number) => ({ key: i, value: 1 });

interface Case {
  name: string;
  method: 'GET' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: string;
  payload?: unknown;
  headers?: Record<string, string>;
  field: string;
  message: RegExp;
}

async function refused(t: Test, c: Case): Promise<void> {
  const { app, slots } = testApp(t);
  const res = await app.inject({
    method: c.method,
    url: c.url,
    ...(c.payload === undefined ? {} : { payload: c.payload as object }),
    ...(c.headers ? { headers: c.headers } : {}),
  });
  t.equal(res.statusCode, 400, `${c.name}: status`);
  const body = json(res);
  t.equal(body.code, 'MIMD_BAD_INPUT', `${c.name}: code`);
  t.equal(body.field, c.field, `${c.name}: field`);
  t.match(body.message, c.message, `${c.name}: message`);
  t.ok((body.message as string).startsWith(`${c.field}: `), `${c.name}: message starts with the field`);
  // A refused change's audit record still reads the slot (getSlot); a refused read calls nothing.
  t.same(c.method === 'GET' ? slots.serviceCalls() : slots.callsBesidesAudit(), [], `${c.name}: service not called`);
}

const CASES: Case[] = [
  // PUT and stage bodies
  { name: 'missing value', method: 'PUT', url: SLOT, payload: { entries: [entry(0), entry(1), entry(2), { key: 3 }] }, field: 'entries[3].value', message: /missing/ },
  { name: 'missing key', method: 'POST', url: `${SLOT}/versions`, payload: { entries: [{ value: 1 }] }, field: 'entries[0].key', message: /missing/ },
  { name: 'extra entry property', method: 'PUT', url: SLOT, payload: { entries: [entry(0), { key: 1, value: 1, ttl: 5 }] }, field: 'entries[1].ttl', message: /unknown property/ },
  { name: 'no entries', method: 'PUT', url: SLOT, payload: {}, field: 'entries', message: /missing/ },
  { name: 'entries not an array', method: 'PUT', url: SLOT, payload: { entries: { key: 1, value: 1 } }, field: 'entries', message: /expected array/ },
  { name: 'entry not an object', method: 'PUT', url: SLOT, payload: { entries: [entry(0), 5] }, field: 'entries[1]', message: /expected object/ },
  { name: 'misspelt top-level key', method: 'PUT', url: SLOT, payload: { entries: [], maxEntry: 5 }, field: 'maxEntry', message: /unknown property/ },
  { name: 'maxEntries as a string is not coerced', method: 'PUT', url: SLOT, payload: { entries: [], maxEntries: '5' }, field: 'maxEntries', message: /expected integer/ },
  { name: 'maxEntries 0', method: 'POST', url: `${SLOT}/versions`, payload: { entries: [], maxEntries: 0 }, field: 'maxEntries', message: /greater or equal to 1/ },
  { name: 'maxEntries fractional', method: 'PUT', url: SLOT, payload: { entries: [], maxEntries: 1.5 }, field: 'maxEntries', message: /expected integer/ },
  { name: 'body an array', method: 'PUT', url: SLOT, payload: [entry(0)], field: 'body', message: /expected object/ },
  { name: 'no body', method: 'PUT', url: SLOT, field: 'body', message: /expected object/ },
  { name: 'label value not a string', method: 'PUT', url: SLOT, payload: { entries: [], labels: { owner: 7 } }, field: 'labels.owner', message: /expected string/ },
  { name: 'label value too long', method: 'PUT', url: SLOT, payload: { entries: [], labels: { owner: 'x'.repeat(256) } }, field: 'labels.owner', message: /255/ },
  { name: 'label key with a space', method: 'PUT', url: SLOT, payload: { entries: [], labels: { 'my team': 'x' } }, field: 'labels["my team"]', message: /name does not match/ },
  { name: 'label key too long', method: 'PUT', url: SLOT, payload: { entries: [], labels: { ['k'.repeat(64)]: 'x' } }, field: `labels.${'k'.repeat(64)}`, message: /name does not match/ },
  {
    name: 'too many labels',
    method: 'PUT',
    url: SLOT,
    payload: { entries: [], labels: Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`k${i}`, 'v'])) },
    field: 'labels',
    message: /no more than 64/,
  },
  { name: 'labels not an object', method: 'PUT', url: SLOT, payload: { entries: [], labels: ['a'] }, field: 'labels', message: /expected object/ },
  // PATCH
  { name: 'empty patch', method: 'PATCH', url: `${SLOT}/entries`, payload: {}, field: 'body', message: /at least 1/ },
  { name: 'patch with unknown key', method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: [], remove: [1] }, field: 'remove', message: /unknown property/ },
  { name: 'patch upsert without value', method: 'PATCH', url: `${SLOT}/entries`, payload: { upsert: [{ key: 1 }] }, field: 'upsert[0].value', message: /missing/ },
  { name: 'patch delete not an array', method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: 1 }, field: 'delete', message: /expected array/ },
  // rollback
  { name: 'rollback to version 0', method: 'POST', url: `${SLOT}/rollback`, payload: { version: 0 }, field: 'version', message: /greater or equal to 1/ },
  { name: 'rollback version as a string', method: 'POST', url: `${SLOT}/rollback`, payload: { version: '2' }, field: 'version', message: /expected integer/ },
  { name: 'rollback unknown key', method: 'POST', url: `${SLOT}/rollback`, payload: { to: 2 }, field: 'to', message: /unknown property/ },
  { name: 'rollback body a string', method: 'POST', url: `${SLOT}/rollback`, payload: '"2"', headers: { 'content-type': 'application/json' }, field: 'body', message: /expected object or null/ },
  // URL parameters
  { name: 'version not a number', method: 'POST', url: `${SLOT}/versions/two/activate`, field: 'version', message: /expected integer/ },
  { name: 'version 0', method: 'POST', url: `${SLOT}/versions/0/activate`, field: 'version', message: /greater or equal to 1/ },
  { name: 'version hex', method: 'GET', url: `${SLOT}/versions/0x2/entries`, field: 'version', message: /expected integer/ },
  { name: 'version fractional', method: 'POST', url: `${SLOT}/versions/1.5/activate`, field: 'version', message: /expected integer/ },
  { name: 'slot too long', method: 'GET', url: `/v1/maps/firewall/blocklist/slots/0x${'ab'.repeat(600)}`, field: 'slot', message: /1024/ },
  // query
  { name: 'limit 0', method: 'GET', url: `${SLOT}/entries?limit=0`, field: 'limit', message: /greater or equal to 1/ },
  { name: 'limit over 10000', method: 'GET', url: `${SLOT}/entries?limit=10001`, field: 'limit', message: /less or equal to 10000/ },
  { name: 'limit not a number', method: 'GET', url: `${SLOT}/entries?limit=all`, field: 'limit', message: /expected integer/ },
  { name: 'limit fractional', method: 'GET', url: `${SLOT}/entries?limit=1.5`, field: 'limit', message: /expected integer/ },
  { name: 'limit hex', method: 'GET', url: `${SLOT}/entries?limit=0x10`, field: 'limit', message: /expected integer/ },
  { name: 'limit twice', method: 'GET', url: `${SLOT}/entries?limit=1&limit=2`, field: 'limit', message: /expected integer/ },
  { name: 'empty cursor', method: 'GET', url: `${SLOT}/entries?cursor=`, field: 'cursor', message: /length/ },
  { name: 'unknown query parameter', method: 'GET', url: `${SLOT}/entries?limt=5`, field: 'limt', message: /unknown property/ },
  // If-Match
  { name: 'If-Match unquoted', method: 'PUT', url: SLOT, payload: { entries: [] }, headers: { 'if-match': '3' }, field: 'If-Match', message: /expected/ },
  { name: 'If-Match weak', method: 'DELETE', url: SLOT, headers: { 'if-match': 'W/"3"' }, field: 'If-Match', message: /expected/ },
  { name: 'If-Match list', method: 'POST', url: `${SLOT}/rollback`, headers: { 'if-match': '"3", "4"' }, field: 'If-Match', message: /expected/ },
  { name: 'If-Match on activate', method: 'POST', url: `${SLOT}/versions/2/activate`, headers: { 'if-match': '"x"' }, field: 'If-Match', message: /expected/ },
  { name: 'If-Match on patch', method: 'PATCH', url: `${SLOT}/entries`, payload: { delete: [1] }, headers: { 'if-match': '"0"' }, field: 'If-Match', message: /expected/ },
];

for (const c of CASES) t.test(c.name, (t) => refused(t, c));

t.test('one problem is reported: the first found, URL parameters before the body and the query', async (t) => {
  const { app } = testApp(t);
  const inBody = await app.inject({ method: 'PUT', url: SLOT, payload: { entries: [{ key: 1 }, { value: 2 }] } });
  t.equal(json(inBody).field, 'entries[0].value');
  const inUrl = await app.inject({ method: 'GET', url: `${SLOT}/versions/0/entries?limit=0` });
  t.equal(json(inUrl).field, 'version');
});

t.test('URL parts are converted; defaults applied', async (t) => {
  const { app, slots } = testApp(t);
  t.equal((await app.inject({ method: 'GET', url: `${SLOT}/entries` })).statusCode, 200);
  t.equal((await app.inject({ method: 'GET', url: `${SLOT}/entries?limit=10000&cursor=abc` })).statusCode, 200);
  t.equal((await app.inject({ method: 'POST', url: `${SLOT}/versions/12/activate` })).statusCode, 200);
  const reads = slots.calls.filter((c) => c.method === 'readEntries').map((c) => c.args[3]);
  t.strictSame(reads, [{ limit: 100, cursor: undefined }, { limit: 10000, cursor: 'abc' }]);
  t.strictSame(slots.only('activate').slice(3), [12, undefined]);
});

t.test('keys and values are passed through as JSON for the codec to judge', async (t) => {
  const { app, slots } = testApp(t);
  const entries = [
    { key: '0x7f000002', value: 1 },
    { key: 2130706434, value: '1' },
    { key: '18446744073709551615', value: '0x01' },
    { key: { prefixlen: 8, addr: '10.0.0.0' }, value: null },
  ];
  const res = await app.inject({ method: 'PUT', url: SLOT, payload: { entries } });
  t.equal(res.statusCode, 200);
  t.strictSame((slots.only('putSlot')[3] as { entries: unknown }).entries, entries);
});

t.test('fieldOf renders JSON pointers as JavaScript paths', async (t) => {
  t.equal(fieldOf('', 'body'), 'body');
  t.equal(fieldOf('/entries/3/key', 'body'), 'entries[3].key');
  t.equal(fieldOf('/labels/team~1a', 'body'), 'labels["team/a"]');
  t.equal(fieldOf('/labels/a~0b', 'body'), 'labels["a~b"]');
  t.equal(fieldOf('/labels/team.a', 'body'), 'labels["team.a"]');
  t.equal(fieldOf('/limit', 'querystring'), 'limit');
  t.equal(fieldOf('/0', 'body'), '[0]');
});
