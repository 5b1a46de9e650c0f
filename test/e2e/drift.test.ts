// Drift: a slot changed behind mimd's back (bpftool writing the outer map
// directly) is reported as such, because GET reads the slot from the kernel
// instead of trusting mimd's own records.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pinDir, vethPair } from '../helpers/sandbox';
import { ensureBuilt, firewallConfig, kernelMap, kernelSlots, setSlotBehindBack, skipUnlessRoot, startApi, u32Hex } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const key32 = (n: number): Buffer => Buffer.from(u32Hex(n), 'hex');

t.test('GET of a slot reports drift after the slot is changed behind mimd\'s back', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host));
  const { api } = daemon;
  const maps = (await api('GET', '/v1/maps')).body.maps as { name: string; mapId: number }[];
  const blocklistId = maps.find((m) => m.name === 'blocklist')!.mapId;
  const policyId = maps.find((m) => m.name === 'policy')!.mapId;
  const bl = '/v1/maps/firewall/blocklist/slots';

  const v1 = (await api('PUT', `${bl}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] })).body.mapId as number;
  const v2 = (await api('PUT', `${bl}/0`, { entries: [{ key: '192.0.2.2', value: 1 }] })).body.mapId as number;
  const other = (await api('PUT', `${bl}/1`, { entries: [] })).body.mapId as number;
  t.match(await api('GET', `${bl}/0`), { status: 200, body: { activeVersion: 2, kernelMapId: v2, installedMapId: v2, drift: false } }, 'no drift at first');

  await t.test('another version of the same slot put into it by bpftool', async (t) => {
    setSlotBehindBack(blocklistId, key32(0), v1);
    t.equal(kernelSlots(blocklistId)[u32Hex(0)], v1, 'the kernel slot now holds version 1');
    const res = await api('GET', `${bl}/0`);
    t.match(res, { status: 200, body: { slot: 0, activeVersion: 2, kernelMapId: v1, installedMapId: v2, drift: true } });
    t.equal(res.headers.etag, '"2"', 'the ETag is still what mimd installed');
    const list = await api('GET', bl);
    t.match(list.body.slots.find((s: { slot: number }) => s.slot === 0), { activeVersion: 2, mapId: v1, drift: true }, 'the slot list says so too');
    t.match((await api('GET', '/v1/maps/firewall/blocklist')).body.slots.find((s: { slot: number }) => s.slot === 0), { drift: true }, 'and the map view');

    const healed = await api('POST', `${bl}/0/versions/2/activate`);
    t.match(healed, { status: 200, body: { version: 2, mapId: v2 } }, 'activating the active version swaps it back in');
    t.equal(kernelSlots(blocklistId)[u32Hex(0)], v2);
    t.match(await api('GET', `${bl}/0`), { body: { kernelMapId: v2, drift: false } }, 'no drift after');
  });

  await t.test('another slot\'s map put into the slot', async (t) => {
    setSlotBehindBack(blocklistId, key32(0), other);
    t.match(await api('GET', `${bl}/0`), { body: { activeVersion: 2, kernelMapId: other, installedMapId: v2, drift: true } });
    const put = await api('PUT', `${bl}/0`, { entries: [] });
    t.match(put, { status: 200, body: { version: 3, previousVersion: 2, created: false } }, 'a PUT replaces whatever is in the slot');
    t.match(await api('GET', `${bl}/0`), { body: { activeVersion: 3, kernelMapId: put.body.mapId, drift: false } });
  });

  await t.test('a slot mimd never filled, filled behind its back', async (t) => {
    t.equal((await api('GET', `${bl}/3`)).status, 404, 'slot 3 unknown at first');
    setSlotBehindBack(blocklistId, key32(3), other);
    const res = await api('GET', `${bl}/3`);
    t.match(res, { status: 200, body: { slot: 3, activeVersion: null, kernelMapId: other, installedMapId: null, drift: true, versions: [] } });
    t.equal(res.headers.etag, '"none"');
    const list = await api('GET', bl);
    t.match(list.body.slots.find((s: { slot: number }) => s.slot === 3), { activeVersion: null, mapId: other, entryCount: null, drift: true }, 'listed as in use, drifted');
    t.match((await api('GET', '/v1/maps/firewall/blocklist')).body, { slotsInUse: 3 }, 'counted among the slots in use');
    t.match(await api('DELETE', `${bl}/3`), { status: 200, body: { slot: 3, previousVersion: null } }, 'mimd can empty it');
    t.equal(kernelSlots(blocklistId)[u32Hex(3)], undefined);
    t.equal((await api('GET', `${bl}/3`)).status, 404, 'and it is unknown again');
  });

  await t.test('a slot emptied through the API, refilled behind its back', async (t) => {
    t.equal((await api('DELETE', `${bl}/1`)).status, 200);
    t.match(await api('GET', `${bl}/1`), { body: { kernelMapId: null, installedMapId: null, drift: false } }, 'emptied, no drift');
    setSlotBehindBack(blocklistId, key32(1), v2);
    t.match(await api('GET', `${bl}/1`), { body: { activeVersion: null, kernelMapId: v2, installedMapId: null, drift: true } });
    t.match(await api('POST', `${bl}/1/rollback`), { status: 200, body: { version: 1, mapId: other } }, 'rollback puts its own version back');
    t.match(await api('GET', `${bl}/1`), { body: { activeVersion: 1, kernelMapId: other, drift: false } });
  });

  await t.test('a HASH_OF_MAPS slot replaced by a map bpftool made', async (t) => {
    const pol = '/v1/maps/firewall/policy/slots';
    const put = await api('PUT', `${pol}/9`, { entries: [{ key: '192.0.2.0/24', value: { verdict: 'drop' } }] });
    t.equal(put.status, 201);
    // The foreign map is pinned outside mimd's pinRoot, in a directory of its own.
    const foreignPin = path.join(pinDir(t), 'foreign');
    execFileSync(
      'bpftool',
      ['map', 'create', foreignPin, 'type', 'lpm_trie', 'key', '8', 'value', '4', 'entries', '16384', 'name', 'foreign', 'flags', '1'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const foreignId = (JSON.parse(execFileSync('bpftool', ['-j', 'map', 'show', 'pinned', foreignPin], { encoding: 'utf8' })) as { id: number }).id;
    t.match(kernelMap(foreignId), { type: 'lpm_trie', name: 'foreign' });
    execFileSync('bpftool', ['map', 'update', 'id', String(policyId), 'key', ...[...key32(9)].map(String), 'value', 'pinned', foreignPin], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    t.match(await api('GET', `${pol}/9`), { status: 200, body: { slot: 9, activeVersion: 1, kernelMapId: foreignId, installedMapId: put.body.mapId, drift: true } });
    t.match(await api('GET', `${pol}/0x${u32Hex(9)}`), { body: { drift: true } }, 'the same slot by its hex key');
    t.match((await api('GET', '/v1/maps/firewall/policy')).body.slots, [{ slot: 9, mapId: foreignId, drift: true }]);
  });

  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.same(fs.readdirSync(pinRoot), [], 'no pins left under pinRoot');
});
