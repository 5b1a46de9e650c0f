// Concurrent writes against the daemon as a process: writes to one slot are
// serialized without losing or skipping a version; a full swap queue answers
// 503 with Retry-After and leaves nothing behind.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pinDir, vethPair } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelEntries,
  kernelSlotsOf,
  listPins,
  skipUnlessRoot,
  startApi,
  u32Hex,
  type ApiResponse,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const RETAIN = 3;
const CONCURRENT = 100;

/** The blocklist source request i lists. */
const sourceOf = (i: number): string => `10.2.${i >> 8}.${i & 0xff}`;

t.test(`${CONCURRENT} concurrent PUTs to one slot`, { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host, { retain: RETAIN }));
  const { api } = daemon;
  const blocklistId = ((await api('GET', '/v1/maps/firewall/blocklist')).body.mapId) as number;
  const url = '/v1/maps/firewall/blocklist/slots/2';
  const slotDir = path.join(pinRoot, 'firewall', 'slots', 'blocklist', u32Hex(2));

  // One version before, so the burst starts at 2: numbers continue, no gaps.
  t.match(await api('PUT', url, { entries: [] }), { status: 201, body: { version: 1 } }, 'version 1 before the burst');

  // Request i lists a source of its own and says so in a label, so the
  // active map tells which request it came from.
  const results = await Promise.all(
    Array.from({ length: CONCURRENT }, (_, i) => api('PUT', url, { entries: [{ key: sourceOf(i), value: 1 }], labels: { request: String(i) } })),
  );
  t.same(
    results.filter((r) => r.status !== 200).map((r) => [r.status, r.body]),
    [],
    'every PUT answered 200 (the slot existed)',
  );
  const versions = results.map((r) => r.body.version as number).sort((a, b) => a - b);
  t.same(
    versions,
    Array.from({ length: CONCURRENT }, (_, i) => i + 2),
    `versions 2..${CONCURRENT + 1}, each once: no gaps, no duplicates`,
  );
  // Serialized: each PUT replaced exactly the one answered just before it.
  const byVersion = new Map(results.map((r, i) => [r.body.version as number, { ...r.body, request: i }]));
  const chain = versions.filter((v) => byVersion.get(v)?.previousVersion !== v - 1);
  t.same(chain, [], 'each version replaced the one numbered before it');

  const last = byVersion.get(CONCURRENT + 1)!;
  const slot = await api('GET', url);
  t.match(slot.body, { activeVersion: CONCURRENT + 1, kernelMapId: last.mapId, installedMapId: last.mapId, drift: false });
  t.equal(slot.headers.etag, `"${CONCURRENT + 1}"`);
  t.same(kernelSlotsOf([blocklistId])[blocklistId], { [u32Hex(2)]: last.mapId }, 'the kernel slot holds the last version answered');
  t.same(
    kernelEntries(last.mapId),
    { [firewallBytes.source(sourceOf(last.request))]: '01' },
    'with exactly the content of the request that made it',
  );
  t.same((await api('GET', `${url}/entries`)).body.entries, [{ key: sourceOf(last.request), value: 1 }], 'and the API reads it back typed');
  const submitted = new Set(results.map((r) => r.body.mapId as number));
  t.ok(submitted.has(slot.body.kernelMapId), 'the slot holds one of the submitted versions');

  const listed = (await api('GET', `${url}/versions`)).body.versions as { version: number; state: string; labels: Record<string, string> }[];
  t.same(
    listed.map((v) => [v.version, v.state]),
    [
      [CONCURRENT + 1, 'active'],
      ...Array.from({ length: RETAIN }, (_, i) => [CONCURRENT - i, 'retained']),
    ],
    `the active version plus ${RETAIN} retained`,
  );
  t.same(listed[0]?.labels, { request: String(last.request) });
  t.same(
    fs.readdirSync(slotDir).sort((a, b) => Number(a) - Number(b)),
    listed.map((v) => String(v.version)).reverse(),
    `pins under ${slotDir}: exactly the active version plus retain`,
  );
  t.same(
    listPins(pinRoot).filter((p) => p.split(path.sep).length === 5),
    listed.map((v) => path.join('firewall', 'slots', 'blocklist', u32Hex(2), String(v.version))).sort(),
    'and no other version pinned anywhere',
  );

  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.same(fs.readdirSync(pinRoot), [], 'no pins left');
});

t.test('a full swap queue answers 503 with Retry-After and leaves nothing behind', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host, { retain: RETAIN, swapQueue: { capacity: 1, concurrency: 1 } }));
  const { api } = daemon;
  const maps = (await api('GET', '/v1/maps')).body.maps as { name: string; mapId: number }[];
  const policyId = maps.find((m) => m.name === 'policy')!.mapId;
  const blocklistId = maps.find((m) => m.name === 'blocklist')!.mapId;

  // Writes to different slots run concurrently, so with room for one swap
  // the others find the queue full. Swaps are fast on newer kernels: repeat
  // bursts until one is refused.
  const slots = [
    ...Array.from({ length: 4 }, (_, i) => `blocklist/slots/${i}`),
    ...Array.from({ length: 60 }, (_, i) => `policy/slots/${1000 + i}`),
  ];
  const successes = new Map<string, ApiResponse[]>(slots.map((s) => [s, []]));
  const refused: ApiResponse[] = [];
  const others: ApiResponse[] = [];
  for (let round = 0; round < 20 && refused.length === 0; round++) {
    const results = await Promise.all(slots.map((s) => api('PUT', `/v1/maps/firewall/${s}`, { entries: [] })));
    results.forEach((r, i) => {
      if (r.status === 200 || r.status === 201) successes.get(slots[i]!)!.push(r);
      else if (r.status === 503) refused.push(r);
      else others.push(r);
    });
  }
  t.ok(refused.length > 0, `some PUTs were refused with 503 (${refused.length})`);
  t.same(
    others.map((r) => [r.status, r.body]),
    [],
    'every other answer was a success',
  );
  for (const r of refused) {
    t.match(r, { headers: { 'retry-after': /^[1-9][0-9]*$/ }, body: { code: 'MIMD_SWAP_QUEUE_FULL', message: String } });
  }

  // After a refusal nothing of it is left: a slot's versions are exactly its
  // successful PUTs (numbers taken only on success), the kernel slot holds the
  // last of them, and only the retained ones are pinned.
  const kernel = kernelSlotsOf([blocklistId, policyId]);
  for (const s of slots) {
    const [map, , slotText] = s.split('/') as [string, string, string];
    const key = u32Hex(Number(slotText));
    const ok = successes.get(s)!;
    const outer = kernel[map === 'blocklist' ? blocklistId : policyId] ?? {};
    const dir = path.join(pinRoot, 'firewall', 'slots', map, key);
    if (ok.length === 0) {
      t.equal(outer[key], undefined, `${s}: never filled, empty in the kernel`);
      t.notOk(fs.existsSync(dir), `${s}: no pins`);
      t.equal((await api('GET', `/v1/maps/firewall/${s}`)).status, 404, `${s}: unknown`);
      continue;
    }
    const numbers = ok.map((r) => r.body.version as number).sort((a, b) => a - b);
    t.same(numbers, Array.from({ length: ok.length }, (_, i) => i + 1), `${s}: versions 1..${ok.length}, no gaps`);
    const lastOne = ok.find((r) => r.body.version === ok.length)!;
    t.equal(outer[key], lastOne.body.mapId, `${s}: the kernel holds the last version`);
    const kept = numbers.slice(-(RETAIN + 1)).map(String);
    t.same(fs.readdirSync(dir).sort((a, b) => Number(a) - Number(b)), kept, `${s}: pins of the active version plus retain`);
  }
  t.equal(Object.keys(kernel[policyId] ?? {}).length, slots.filter((s) => s.startsWith('policy') && successes.get(s)!.length > 0).length, 'no other policy slot in the kernel');

  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.same(fs.readdirSync(pinRoot), [], 'no pins left');
});
