// Every row of the API table against the daemon as a process, with status
// codes and response shapes, and every write checked against the kernel
// (bpftool) and bpffs rather than against the daemon's own answers.
import t from 'tap';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import Ajv from 'ajv';
import addFormats from 'ajv-formats';
import { pinDir, vethPair } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelEntries,
  kernelMap,
  kernelSlots,
  listPins,
  skipUnlessRoot,
  sleep,
  startApi,
  u32Hex,
  xdpProgram,
} from '../helpers/daemon';
import { ipv4ToBeU32Buffer } from '../helpers/packet';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const ISO_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;
const keysOf = (o: object): string[] => Object.keys(o).sort();

const SWAP_RESULT_KEYS = ['created', 'digest', 'entryCount', 'mapId', 'previousMapId', 'previousVersion', 'slot', 'swapMs', 'version'];
const VERSION_KEYS = ['activatedAt', 'createdAt', 'digest', 'entryCount', 'labels', 'mapId', 'maxEntries', 'pinPath', 'state', 'version'];
const SLOT_SUMMARY_KEYS = ['activeVersion', 'createdAt', 'drift', 'entryCount', 'labels', 'mapId', 'slot'];
const SLOT_DETAIL_KEYS = ['activeVersion', 'drift', 'installedMapId', 'kernelMapId', 'slot', 'versions'];
const MAP_VIEW_KEYS = ['innerTemplate', 'keySize', 'mapId', 'maxEntries', 'name', 'object', 'pinPath', 'slotsInUse', 'type'];

/** Addresses in numeric order, for answers whose order is the kernel's. */
const byAddress = (a: string, b: string): number => ipv4ToBeU32Buffer(a).compare(ipv4ToBeU32Buffer(b));
const byKey = <E extends { key: string }>(a: E, b: E): number => byAddress(a.key, b.key);

/** sha256 of byte strings given as hex, in order: the digest a version or a patch should carry. */
const sha256 = (...hexParts: string[]): string => createHash('sha256').update(Buffer.from(hexParts.join(''), 'hex')).digest('hex');
/** The digest of a blocklist version: each key's bytes then its value's byte, in request order (binary record form). */
const blocklistDigest = (entries: [string, number][]): string =>
  sha256(...entries.flatMap(([key, value]) => [firewallBytes.source(key), value.toString(16).padStart(2, '0')]));

/** The JSON Schemas of GET /v1/maps/{object}/{map}, checked by a validator of their own. */
const ajv = addFormats(new Ajv({ strict: true, strictRequired: false, allErrors: true }));

/** Every `enum` list anywhere in a schema. */
function enumsIn(schema: unknown): unknown[][] {
  if (typeof schema !== 'object' || schema === null) return [];
  const own = Array.isArray((schema as { enum?: unknown }).enum) ? [(schema as { enum: unknown[] }).enum] : [];
  return [...own, ...Object.values(schema).flatMap(enumsIn)];
}

const A = '192.0.2.10';
const B = '192.0.2.11';
const C = '192.0.2.12';
const D = '192.0.2.13';

t.test('every row of the API table', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host));
  const { api } = daemon;
  const slotPins = (map: string, slot: number): string => path.join(pinRoot, 'firewall', 'slots', map, u32Hex(slot));
  const pinsOf = (map: string, slot: number): string[] =>
    fs.existsSync(slotPins(map, slot)) ? fs.readdirSync(slotPins(map, slot)).sort((a, b) => Number(a) - Number(b)) : [];

  let blocklistId = 0;
  let policyId = 0;
  /** mapId of each version of blocklist slot 0 */
  const v: Record<number, number> = {};

  await t.test('GET /healthz and /readyz', async (t) => {
    t.match(await api('GET', '/healthz'), { status: 200, body: { status: 'ok' } });
    t.match(await api('GET', '/readyz'), { status: 200, body: { status: 'ready' } });
  });

  await t.test('GET /v1/maps: every outer map, checked against the kernel', async (t) => {
    const res = await api('GET', '/v1/maps');
    t.equal(res.status, 200);
    t.same(keysOf(res.body), ['maps']);
    const maps = res.body.maps as { name: string; mapId: number }[];
    t.same(
      maps.map((m) => m.name),
      ['blocklist', 'policy'],
      'the two map-in-map maps, not counters',
    );
    for (const m of maps) t.same(keysOf(m), MAP_VIEW_KEYS, `${m.name}: the fields of a map view`);
    const [blocklist, policy] = maps as Record<string, unknown>[];
    t.same(blocklist, {
      object: 'firewall',
      name: 'blocklist',
      type: 'ARRAY_OF_MAPS',
      maxEntries: 4,
      keySize: 4,
      innerTemplate: { type: 'HASH', keySize: 4, valueSize: 1, maxEntries: 65536, flags: [], resizable: true },
      slotsInUse: 0,
      mapId: blocklist?.mapId,
      pinPath: path.join(pinRoot, 'firewall', 'maps', 'blocklist'),
    });
    t.same(policy, {
      object: 'firewall',
      name: 'policy',
      type: 'HASH_OF_MAPS',
      maxEntries: 64,
      keySize: 4,
      innerTemplate: { type: 'LPM_TRIE', keySize: 8, valueSize: 4, maxEntries: 16384, flags: ['NO_PREALLOC'], resizable: true },
      slotsInUse: 0,
      mapId: policy?.mapId,
      pinPath: path.join(pinRoot, 'firewall', 'maps', 'policy'),
    });
    blocklistId = blocklist?.mapId as number;
    policyId = policy?.mapId as number;
    t.match(kernelMap(blocklistId), { type: 'array_of_maps', name: 'blocklist', max_entries: 4 }, 'the kernel agrees on blocklist');
    t.match(kernelMap(policyId), { type: 'hash_of_maps', name: 'policy', max_entries: 64 }, 'the kernel agrees on policy');
  });

  await t.test('GET /v1/maps/{object}/{map}: one map with its slots and schema', async (t) => {
    const res = await api('GET', '/v1/maps/firewall/blocklist');
    t.equal(res.status, 200);
    t.same(keysOf(res.body), [...MAP_VIEW_KEYS, 'schema', 'slots'].sort());
    t.match(res.body, { object: 'firewall', name: 'blocklist', type: 'ARRAY_OF_MAPS', mapId: blocklistId, slotsInUse: 0 });
    t.same(res.body.slots, []);
    t.same(keysOf(res.body.schema), ['key', 'slot', 'value']);
  });

  await t.test('GET /v1/maps/{object}/{map}: JSON Schemas of slots, keys and values, from BTF and the formats', async (t) => {
    const schemaOf = async (map: string): Promise<Record<'slot' | 'key' | 'value', Record<string, unknown>>> => {
      const res = await api('GET', `/v1/maps/firewall/${map}`);
      t.equal(res.status, 200, `GET ${map}`);
      return res.body.schema;
    };
    /** Compiles `schema` (so it is valid JSON Schema) and checks what it accepts. */
    const takes = (what: string, schema: unknown, good: unknown[], bad: unknown[]): void => {
      const valid = ajv.compile(schema as object);
      for (const value of good) t.ok(valid(value), `${what} takes ${JSON.stringify(value)}`);
      for (const value of bad) t.notOk(valid(value), `${what} refuses ${JSON.stringify(value)}`);
    };
    const blocklist = await schemaOf('blocklist');
    const policy = await schemaOf('policy');

    // Typed first, then the escape hatch: hex of exactly the field's size.
    t.match(
      blocklist.key,
      { anyOf: [{ type: 'string', format: 'ipv4' }, { type: 'string', pattern: '^0x[0-9a-fA-F]{8}$' }] },
      'blocklist key: an IPv4 address, or 4 bytes of hex',
    );
    takes(
      'blocklist key',
      blocklist.key,
      [A, '0.0.0.0', '255.255.255.255', `0x${firewallBytes.source(A)}`],
      ['300.1.2.3', '192.0.2.010', '192.0.2.0/24', 3221226122, '0xc00002'],
    );
    takes('blocklist value (__u8)', blocklist.value, [0, 1, 255, '0x01'], [256, -1, 1.5, '1', '0x0001']);
    takes('blocklist slot (__u32)', blocklist.slot, [0, 3, 4294967295, '0x03000000'], [-1, 1.5, 'abc', '0x0500']);

    t.match(
      policy.key,
      { anyOf: [{ type: 'string', pattern: String }, { type: 'string', pattern: '^0x[0-9a-fA-F]{16}$' }] },
      'policy key: a prefix string, or 8 bytes of hex',
    );
    takes(
      'policy key (cidr)',
      policy.key,
      ['10.0.0.0/8', '0.0.0.0/0', '192.0.2.10/32', '192.0.2.10', `0x${firewallBytes.prefix('10.0.0.0/8')}`],
      ['10.0.0.0/33', '300.0.0.0/8', '10.0.0.0/', '10.0.0.0/8/8', { prefixlen: 8, addr: '10.0.0.0' }, `0x${firewallBytes.source(A)}`],
    );
    t.match(
      policy.value,
      { anyOf: [{ type: 'object', required: ['verdict'], additionalProperties: false }, { type: 'string' }] },
      'policy value: struct policy_value, an object',
    );
    t.ok(
      enumsIn(policy.value).some((names) => names.includes('pass') && names.includes('drop')),
      'the value schema lists the verdict names pass and drop',
    );
    takes(
      'policy value',
      policy.value,
      [{ verdict: 'drop' }, { verdict: 'pass' }, { verdict: 1 }, `0x${firewallBytes.verdict('drop')}`],
      [{ verdict: 'dorp' }, {}, { verdict: 'drop', extra: 1 }, 'drop', 1],
    );
    takes('policy slot (__u32 ifindex)', policy.slot, [7, `0x${u32Hex(7)}`], ['seven', -7]);
  });

  await t.test('PUT a slot: 201 for a new slot, 200 for a replaced one', async (t) => {
    let res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', {
      entries: [{ key: A, value: 1 }],
      labels: { owner: 'e2e', 'example.com/ticket': 'T-1' },
    });
    t.equal(res.status, 201);
    t.same(keysOf(res.body), SWAP_RESULT_KEYS);
    t.match(res.body, { slot: 0, version: 1, previousVersion: null, previousMapId: null, mapId: Number, entryCount: 1, swapMs: Number, created: true });
    t.equal(res.body.digest, blocklistDigest([[A, 1]]), 'digest: sha256 of the key bytes then the value bytes');
    t.equal(res.headers.etag, '"1"');
    v[1] = res.body.mapId;
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[1] }, 'the kernel slot 0 holds version 1');
    t.same(kernelEntries(v[1]!), { [firewallBytes.source(A)]: '01' }, 'the inner map holds the entry: the address in network order');
    t.match(kernelMap(v[1]!), { type: 'hash', max_entries: 65536, flags: 0 }, 'built from the template');
    t.same(pinsOf('blocklist', 0), ['1'], 'pinned as <pinRoot>/firewall/slots/blocklist/<slot hex>/1');

    res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', {
      entries: [
        { key: A, value: 1 },
        { key: B, value: 1 },
      ],
    });
    t.equal(res.status, 200);
    t.match(res.body, { slot: 0, version: 2, previousVersion: 1, previousMapId: v[1], entryCount: 2, created: false });
    t.equal(res.body.digest, blocklistDigest([[A, 1], [B, 1]]), 'digest: each key then its value, in request order');
    t.equal(res.headers.etag, '"2"');
    v[2] = res.body.mapId;
    t.not(v[2], v[1], 'a new inner map');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[2] });

    // If-Match that holds, and maxEntries (HASH templates may be resized).
    res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [{ key: C, value: 1 }], maxEntries: 16 }, { 'if-match': '"2"' });
    t.equal(res.status, 200, 'If-Match "2" matches');
    t.match(res.body, { version: 3, previousVersion: 2, previousMapId: v[2], entryCount: 1, digest: blocklistDigest([[C, 1]]) });
    v[3] = res.body.mapId;
    t.match(kernelMap(v[3]!), { type: 'hash', max_entries: 16 }, 'maxEntries reaches the kernel');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[3] });
    t.same(pinsOf('blocklist', 0), ['1', '2', '3']);
  });

  await t.test('GET slots: each slot in use', async (t) => {
    const res = await api('GET', '/v1/maps/firewall/blocklist/slots');
    t.equal(res.status, 200);
    t.same(keysOf(res.body), ['slots']);
    t.equal(res.body.slots.length, 1);
    t.same(keysOf(res.body.slots[0]), SLOT_SUMMARY_KEYS);
    t.same(res.body.slots[0], {
      slot: 0,
      activeVersion: 3,
      mapId: v[3],
      entryCount: 1,
      createdAt: res.body.slots[0].createdAt,
      labels: {},
      drift: false,
    });
    t.match(res.body.slots[0].createdAt, ISO_DATE);
    const map = await api('GET', '/v1/maps/firewall/blocklist');
    t.match(map.body, { slotsInUse: 1, slots: res.body.slots }, 'the map view summarizes the same slots');
  });

  await t.test('GET one slot: active and retained versions, read from the kernel', async (t) => {
    const res = await api('GET', '/v1/maps/firewall/blocklist/slots/0');
    t.equal(res.status, 200);
    t.equal(res.headers.etag, '"3"');
    t.same(keysOf(res.body), SLOT_DETAIL_KEYS);
    t.match(res.body, { slot: 0, activeVersion: 3, kernelMapId: v[3], installedMapId: v[3], drift: false });
    const versions = res.body.versions as Record<string, unknown>[];
    for (const version of versions) t.same(keysOf(version), VERSION_KEYS);
    t.same(
      versions.map((x) => [x.version, x.state, x.mapId, x.entryCount, x.maxEntries, x.pinPath]),
      [
        [3, 'active', v[3], 1, 16, path.join(slotPins('blocklist', 0), '3')],
        [2, 'retained', v[2], 2, 65536, path.join(slotPins('blocklist', 0), '2')],
        [1, 'retained', v[1], 1, 65536, path.join(slotPins('blocklist', 0), '1')],
      ],
      'newest first',
    );
    t.same(versions[2]?.labels, { owner: 'e2e', 'example.com/ticket': 'T-1' });
    t.same(
      versions.map((x) => x.digest),
      [blocklistDigest([[C, 1]]), blocklistDigest([[A, 1], [B, 1]]), blocklistDigest([[A, 1]])],
      'each version keeps the digest of its content',
    );
    for (const version of versions) {
      t.match(version.createdAt, ISO_DATE);
      t.match(version.activatedAt, ISO_DATE);
    }
  });

  await t.test('POST versions: stage a version, built and pinned but not active', async (t) => {
    const res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/versions', {
      entries: [{ key: D, value: 1 }],
      labels: { stage: 'yes' },
    });
    t.equal(res.status, 201);
    t.same(keysOf(res.body), VERSION_KEYS);
    t.match(res.body, { version: 4, state: 'staged', entryCount: 1, maxEntries: 65536, activatedAt: null, labels: { stage: 'yes' }, digest: blocklistDigest([[D, 1]]) });
    t.match(res.body.createdAt, ISO_DATE);
    t.equal(res.headers.etag, undefined, 'no ETag: staging does not say what is active');
    v[4] = res.body.mapId;
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[3] }, 'the kernel slot still holds version 3');
    t.same(kernelEntries(v[4]!), { [firewallBytes.source(D)]: '01' }, 'the staged map is filled');
    t.ok(fs.existsSync(res.body.pinPath), 'and pinned');
    t.same(pinsOf('blocklist', 0), ['1', '2', '3', '4']);
  });

  await t.test('GET versions: the retained versions', async (t) => {
    const res = await api('GET', '/v1/maps/firewall/blocklist/slots/0/versions');
    t.equal(res.status, 200);
    t.same(keysOf(res.body), ['versions']);
    t.equal(res.headers.etag, '"3"');
    t.same(
      res.body.versions.map((x: { version: number; state: string; mapId: number }) => [x.version, x.state, x.mapId]),
      [
        [4, 'staged', v[4]],
        [3, 'active', v[3]],
        [2, 'retained', v[2]],
        [1, 'retained', v[1]],
      ],
    );
  });

  await t.test('POST activate: swap a retained version into the slot', async (t) => {
    const res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/versions/4/activate', undefined, { 'if-match': '"3"' });
    t.equal(res.status, 200);
    t.same(keysOf(res.body), SWAP_RESULT_KEYS);
    t.match(res.body, { slot: 0, version: 4, previousVersion: 3, previousMapId: v[3], mapId: v[4], entryCount: 1, created: false, digest: blocklistDigest([[D, 1]]) });
    t.equal(res.headers.etag, '"4"');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[4] }, 'the kernel slot holds version 4');
    const versions = await api('GET', '/v1/maps/firewall/blocklist/slots/0/versions');
    t.match(versions.body.versions[0], { version: 4, state: 'active', activatedAt: ISO_DATE });
    t.match(versions.body.versions[1], { version: 3, state: 'retained' });
  });

  await t.test('POST rollback: without a body, with {}, with {version}', async (t) => {
    let res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback');
    t.equal(res.status, 200);
    t.same(keysOf(res.body), SWAP_RESULT_KEYS);
    t.match(res.body, { version: 3, previousVersion: 4, previousMapId: v[4], mapId: v[3], created: false, digest: blocklistDigest([[C, 1]]) }, 'no body: the previous active version');
    t.equal(res.headers.etag, '"3"');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[3] });

    res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback', {});
    t.match(res, { status: 200, body: { version: 4, previousVersion: 3, previousMapId: v[3], mapId: v[4] } }, '{}: the previous active version again');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[4] });

    res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback', { version: 1 }, { 'if-match': '"4"' });
    t.match(res, { status: 200, body: { version: 1, previousVersion: 4, previousMapId: v[4], mapId: v[1], digest: blocklistDigest([[A, 1]]) } }, '{version: 1}');
    t.equal(res.headers.etag, '"1"');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[1] });
    t.same(kernelEntries(v[1]!), { [firewallBytes.source(A)]: '01' });
  });

  await t.test('retention: the active version plus `retain` (3) others; older ones unpinned and freed', async (t) => {
    const res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [] });
    t.match(res, { status: 200, body: { version: 5, previousVersion: 1, previousMapId: v[1], entryCount: 0, digest: sha256() } }, 'empty content: the digest of nothing');
    v[5] = res.body.mapId;
    const versions = await api('GET', '/v1/maps/firewall/blocklist/slots/0/versions');
    t.same(
      versions.body.versions.map((x: { version: number }) => x.version),
      [5, 4, 3, 2],
    );
    t.same(pinsOf('blocklist', 0), ['2', '3', '4', '5'], 'pins of exactly the retained versions');
    let freed = false;
    for (let i = 0; i < 100 && !freed; i++) {
      freed = kernelMap(v[1]!) === null;
      if (!freed) await sleep(20);
    }
    t.ok(freed, `version 1's inner map (id ${v[1]}) is gone from the kernel`);
    t.ok(kernelMap(v[2]!), 'version 2 is still there');
  });

  /** blocklist slot 1's sources: 10.1.0.1 to 10.1.0.25 */
  const many = Array.from({ length: 25 }, (_, i) => `10.1.0.${i + 1}`);
  let slot1MapId = 0;

  await t.test('GET entries: the active map read from the kernel, paginated with limit and cursor', async (t) => {
    const put = await api('PUT', '/v1/maps/firewall/blocklist/slots/1', { entries: many.map((key) => ({ key, value: 1 })) });
    t.match(put, { status: 201, body: { slot: 1, version: 1, entryCount: 25 } });
    slot1MapId = put.body.mapId;

    const seen: string[] = [];
    const pageSizes: number[] = [];
    let cursor: string | null = null;
    do {
      const query: string = cursor === null ? '?limit=10' : `?limit=10&cursor=${encodeURIComponent(cursor)}`;
      const page = await api('GET', `/v1/maps/firewall/blocklist/slots/1/entries${query}`);
      t.equal(page.status, 200);
      t.same(keysOf(page.body), ['entries', 'nextCursor']);
      for (const entry of page.body.entries as { key: string; value: number }[]) {
        t.same(keysOf(entry), ['key', 'value']);
        t.equal(entry.value, 1);
        seen.push(entry.key);
      }
      pageSizes.push(page.body.entries.length);
      cursor = page.body.nextCursor;
      if (cursor !== null) t.type(cursor, 'string');
    } while (cursor !== null && pageSizes.length < 10);
    t.same(pageSizes, [10, 10, 5], 'three pages, the last one says there is no next');
    t.same([...seen].sort(byAddress), many, 'every key exactly once, as an address');

    const all = await api('GET', '/v1/maps/firewall/blocklist/slots/1/entries');
    t.equal(all.body.entries.length, 25, 'the default limit (100) takes all');
    t.equal(all.body.nextCursor, null);

    const slot0 = await api('GET', '/v1/maps/firewall/blocklist/slots/0/entries');
    t.same(slot0.body, { entries: [], nextCursor: null }, 'the empty active version of slot 0');
  });

  await t.test('GET version entries: a retained version read from the kernel', async (t) => {
    const res = await api('GET', '/v1/maps/firewall/blocklist/slots/0/versions/2/entries');
    t.equal(res.status, 200);
    t.same(
      (res.body.entries as { key: string; value: number }[]).sort(byKey),
      [
        { key: A, value: 1 },
        { key: B, value: 1 },
      ],
      'the keys come back as the addresses they were written as',
    );
    t.equal(res.body.nextCursor, null);
    const first = await api('GET', '/v1/maps/firewall/blocklist/slots/0/versions/2/entries?limit=1');
    t.equal(first.body.entries.length, 1);
    t.type(first.body.nextCursor, 'string');
    const second = await api('GET', `/v1/maps/firewall/blocklist/slots/0/versions/2/entries?limit=1&cursor=${first.body.nextCursor}`);
    t.equal(second.body.entries.length, 1);
    t.not(second.body.entries[0].key, first.body.entries[0].key);
    t.equal(second.body.nextCursor, null);
  });

  await t.test('PATCH entries: in place in the active map, no swap', async (t) => {
    const res = await api(
      'PATCH',
      '/v1/maps/firewall/blocklist/slots/1/entries',
      {
        upsert: [
          { key: '10.1.0.26', value: 1 },
          { key: '10.1.0.1', value: 2 },
        ],
        delete: ['10.1.0.2', '10.1.3.231'],
      },
      { 'if-match': '"1"' },
    );
    t.equal(res.status, 200);
    t.same(res.body, {
      slot: 1,
      version: 1,
      upserted: 2,
      deleted: 1,
      entryCount: 25,
      // each upserted key with its value, then the deleted keys, as sent
      digest: sha256(
        firewallBytes.source('10.1.0.26'),
        '01',
        firewallBytes.source('10.1.0.1'),
        '02',
        firewallBytes.source('10.1.0.2'),
        firewallBytes.source('10.1.3.231'),
      ),
    });
    t.equal(res.headers.etag, '"1"');
    t.same(kernelSlots(blocklistId)[u32Hex(1)], slot1MapId, 'the same inner map is in the slot');
    const entries = kernelEntries(slot1MapId);
    t.equal(Object.keys(entries).length, 25);
    t.equal(entries[firewallBytes.source('10.1.0.1')], '02', '10.1.0.1 updated');
    t.equal(entries[firewallBytes.source('10.1.0.26')], '01', '10.1.0.26 added');
    t.equal(entries[firewallBytes.source('10.1.0.2')], undefined, '10.1.0.2 deleted');
    const slot = await api('GET', '/v1/maps/firewall/blocklist/slots/1');
    t.match(slot.body, { activeVersion: 1, versions: [{ version: 1, entryCount: 25 }] });
  });

  await t.test('DELETE a slot: empty in the kernel, versions kept for rollback', async (t) => {
    let res = await api('DELETE', '/v1/maps/firewall/blocklist/slots/1', undefined, { 'if-match': '"1"' });
    t.equal(res.status, 200);
    t.same(res.body, { slot: 1, previousVersion: 1, previousMapId: slot1MapId });
    t.equal(res.headers.etag, '"none"');
    t.same(kernelSlots(blocklistId), { [u32Hex(0)]: v[5] }, 'slot 1 is empty in the kernel');
    t.same(pinsOf('blocklist', 1), ['1'], 'the version stays pinned');

    res = await api('GET', '/v1/maps/firewall/blocklist/slots/1');
    t.match(res, { status: 200, body: { slot: 1, activeVersion: null, kernelMapId: null, installedMapId: null, drift: false } });
    t.match(res.body.versions, [{ version: 1, state: 'retained', mapId: slot1MapId }]);
    t.equal(res.headers.etag, '"none"');
    t.match(await api('GET', '/v1/maps/firewall/blocklist/slots/1/entries'), { status: 404, body: { code: 'MIMD_NOT_FOUND', field: 'slot' } }, 'no active entries');
    t.match(await api('GET', '/v1/maps/firewall/blocklist/slots/1/versions/1/entries'), { status: 200 }, 'the version is still readable');
    t.same(
      (await api('GET', '/v1/maps/firewall/blocklist/slots')).body.slots.map((s: { slot: number }) => s.slot),
      [0, 1],
      'an emptied slot with versions is still listed',
    );

    res = await api('POST', '/v1/maps/firewall/blocklist/slots/1/rollback');
    t.match(res, { status: 200, body: { slot: 1, version: 1, previousVersion: null, previousMapId: null, mapId: slot1MapId, created: true } }, 'rollback refills it');
    t.same(kernelSlots(blocklistId)[u32Hex(1)], slot1MapId);

    t.equal((await api('DELETE', '/v1/maps/firewall/blocklist/slots/1')).status, 200);
    res = await api('PUT', '/v1/maps/firewall/blocklist/slots/1', { entries: [] }, { 'if-match': '"none"' });
    t.match(res, { status: 201, body: { version: 2, previousVersion: null, created: true } }, 'If-Match "none" on an emptied slot');
  });

  await t.test('a HASH_OF_MAPS slot, by decimal and by hex key, with typed LPM trie entries', async (t) => {
    let res = await api('PUT', '/v1/maps/firewall/policy/slots/7', {
      entries: [
        { key: '192.0.2.0/24', value: { verdict: 'drop' } },
        { key: '198.51.100.7', value: { verdict: 'pass' } },
      ],
    });
    t.match(res, { status: 201, body: { slot: 7, version: 1, created: true, entryCount: 2 } });
    t.equal(
      res.body.digest,
      sha256(firewallBytes.prefix('192.0.2.0/24'), firewallBytes.verdict('drop'), firewallBytes.prefix('198.51.100.7/32'), firewallBytes.verdict('pass')),
      'digest: each struct policy_key then its struct policy_value, in request order',
    );
    const mapId = res.body.mapId as number;
    t.same(kernelSlots(policyId), { [u32Hex(7)]: mapId }, 'the kernel holds it under key 7');
    t.match(kernelMap(mapId), { type: 'lpm_trie', max_entries: 16384, flags: 1 }, 'LPM_TRIE with BPF_F_NO_PREALLOC');
    t.same(
      kernelEntries(mapId),
      {
        [firewallBytes.prefix('192.0.2.0/24')]: firewallBytes.verdict('drop'),
        [firewallBytes.prefix('198.51.100.7/32')]: firewallBytes.verdict('pass'),
      },
      'struct policy_key and policy_value bytes in the trie; a bare address is a /32',
    );

    res = await api('GET', `/v1/maps/firewall/policy/slots/0x${u32Hex(7)}`);
    t.match(res, { status: 200, body: { slot: 7, activeVersion: 1, kernelMapId: mapId } }, 'the hex slot names the same slot');
    res = await api('GET', '/v1/maps/firewall/policy/slots/7/entries');
    t.same(
      (res.body.entries as { key: string }[]).sort((a, b) => a.key.localeCompare(b.key)),
      [
        { key: '192.0.2.0/24', value: { verdict: 'drop' } },
        { key: '198.51.100.7/32', value: { verdict: 'pass' } },
      ],
      'read back typed: prefixes and verdicts by name',
    );

    // The escape hatch: hex of exactly the field's size for a key and a value.
    // This key has host bits set (.77 in a /24): stored canonical, read back typed.
    res = await api('PUT', `/v1/maps/firewall/policy/slots/0x${u32Hex(7)}`, {
      entries: [{ key: `0x${firewallBytes.prefix('203.0.113.77/24')}`, value: `0x${firewallBytes.verdict('drop')}` }],
    });
    t.match(res, { status: 200, body: { slot: 7, version: 2, previousVersion: 1, previousMapId: mapId, entryCount: 1 } }, 'a PUT of raw hex by the hex slot');
    t.equal(res.body.digest, sha256(firewallBytes.prefix('203.0.113.0/24'), firewallBytes.verdict('drop')), 'digest of the key as the kernel holds it (host bits zeroed)');
    t.same(
      kernelEntries(res.body.mapId),
      { [firewallBytes.prefix('203.0.113.0/24')]: firewallBytes.verdict('drop') },
      'the kernel holds the bytes, host bits zeroed',
    );
    res = await api('GET', '/v1/maps/firewall/policy/slots/7/entries');
    t.same(res.body.entries, [{ key: '203.0.113.0/24', value: { verdict: 'drop' } }], 'hex in, typed out');
    const map = await api('GET', '/v1/maps/firewall/policy');
    t.match(map.body, { slotsInUse: 1, slots: [{ slot: 7, activeVersion: 2, drift: false }] });
    t.same(pinsOf('policy', 7), ['1', '2']);
    const maps = await api('GET', '/v1/maps');
    t.same(
      maps.body.maps.map((m: { name: string; slotsInUse: number }) => [m.name, m.slotsInUse]),
      [
        ['blocklist', 2],
        ['policy', 1],
      ],
    );
  });

  await t.test('SIGTERM: exit 0, the program detached, no pins left', async (t) => {
    t.ok(listPins(pinRoot).length > 0, 'versions were pinned');
    const exit = await daemon.stop('SIGTERM');
    t.same(exit, { code: 0, signal: null });
    t.equal(xdpProgram(veth.host), null);
    t.same(fs.readdirSync(pinRoot), [], 'pinRoot is empty');
    t.equal(daemon.stderr(), '');
  });
});
