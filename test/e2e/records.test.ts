// Slot records that contradict themselves or the kernel (edited by hand, or
// damaged) are repaired at start from the pins and the kernel, and logged:
// a lastVersion below the record's versions used to let the next PUT take
// number 1 again and unpin the retained version 1; an `active` naming a
// version that does not exist was shown as active. Version numbers are never
// handed out twice.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pinDir, stateDir, vethPair } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelEntries,
  kernelSlots,
  pinLeaves,
  pinnedMap,
  skipUnlessRoot,
  startApi,
  u32Hex,
  type Api,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';
const A = '198.51.100.7';
const B = '203.0.113.9';

async function put(api: Api, slot: number, key: string): Promise<{ version: number; mapId: number }> {
  const res = await api('PUT', `${BL}/${slot}`, { entries: [{ key, value: 1 }] });
  if (res.status >= 300) throw new Error(`PUT slot ${slot}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as { version: number; mapId: number };
}

t.test('contradicting slot records are repaired from the pins and the kernel at start, and logged', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const veth = vethPair(t);
  const config = firewallConfig(pinRoot, veth.host, { stateDir: state, onStop: 'keep' });
  const recordFile = (slot: number): string => path.join(state, 'firewall', 'blocklist', 'slots', `${u32Hex(slot)}.json`);
  const edit = (slot: number, change: Record<string, unknown>): void =>
    fs.writeFileSync(recordFile(slot), JSON.stringify({ ...JSON.parse(fs.readFileSync(recordFile(slot), 'utf8')), ...change }));
  const record = (slot: number): Record<string, unknown> => JSON.parse(fs.readFileSync(recordFile(slot), 'utf8')) as Record<string, unknown>;
  const pinsOf = (slot: number): string[] => pinLeaves(path.join(pinRoot, 'firewall', 'slots', 'blocklist', u32Hex(slot)));

  let daemon = await startApi(t, config);
  const s0v1 = await put(daemon.api, 0, A);
  const s0v2 = await put(daemon.api, 0, B);
  await put(daemon.api, 1, A);
  const s1v2 = await put(daemon.api, 1, B);
  await put(daemon.api, 2, A);
  t.match(await daemon.api('DELETE', `${BL}/2`), { status: 200 });
  const outerId = ((await daemon.api('GET', '/v1/maps/firewall/blocklist')).body as { mapId: number }).mapId;
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });

  edit(0, { lastVersion: 0 }); // below its versions 1 and 2
  edit(1, { active: 99 }); // no version 99; the kernel's slot holds version 2
  edit(2, { active: 99 }); // no version 99; the kernel's slot is empty

  daemon = await startApi(t, config);
  const raised = daemon.logs.filter((l) => l.msg === 'raised the last version number to the highest one in use');
  t.same(
    raised.map((l) => [l.slot, l.recordedLastVersion, l.lastVersion]),
    [
      [0, 0, 2],
      [1, 2, 99],
      [2, 1, 99],
    ],
    'each numbering raised to the highest number the record shows, and logged',
  );
  const activeFixed = daemon.logs.filter((l) => l.msg === "the recorded active version is not one of the slot's versions; set to what the kernel's slot holds");
  t.same(activeFixed.map((l) => [l.slot, l.recordedActive, l.active]), [[1, 99, 2], [2, 99, null]], 'each unknown active version logged');

  // Slot 0: the next PUT takes number 3 and leaves the retained version 1 alone.
  const s0v3 = await put(daemon.api, 0, A);
  t.equal(s0v3.version, 3, 'not number 1 again');
  t.same(pinsOf(0), ['1', '2', '3']);
  t.equal(pinnedMap(path.join(pinRoot, 'firewall', 'slots', 'blocklist', u32Hex(0), '1')).id, s0v1.mapId, 'pin 1 still holds the retained version 1');
  t.same(kernelEntries(s0v1.mapId), { [firewallBytes.source(A)]: '01' }, 'with its entries');
  t.match(await daemon.api('POST', `${BL}/0/versions/1/activate`), { status: 200, body: { version: 1, mapId: s0v1.mapId } }, 'and can be activated');
  t.not(s0v3.mapId, s0v2.mapId);

  // Slot 1: active is what the kernel's slot holds.
  t.match(await daemon.api('GET', `${BL}/1`), { status: 200, body: { activeVersion: 2, kernelMapId: s1v2.mapId, installedMapId: s1v2.mapId, drift: false } });
  t.match(record(1), { active: 2, lastVersion: 99 }, 'the record is rewritten');
  // Slot 2: the kernel's slot is empty, so no version is active.
  t.match(await daemon.api('GET', `${BL}/2`), { status: 200, body: { activeVersion: null, kernelMapId: null, drift: false, versions: [{ version: 1, state: 'retained' }] } });
  t.match(record(2), { active: null, lastVersion: 99 });
  t.same(pinsOf(2), ['1']);

  const kernel = kernelSlots(outerId);
  t.same(kernel, { [u32Hex(0)]: s0v1.mapId, [u32Hex(1)]: s1v2.mapId }, 'the kernel: slot 0 version 1, slot 1 version 2, slot 2 empty');
  t.match(await put(daemon.api, 1, A), { version: 100 }, 'numbers go on past every number the record named');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });

  // Repaired records are consistent: the next start repairs nothing.
  daemon = await startApi(t, config);
  t.equal(daemon.logs.filter((l) => l.msg === 'raised the last version number to the highest one in use').length, 0);
  t.match(daemon.logs.find((l) => l.msg === 'restored slots'), { repaired: 0 });
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
});
