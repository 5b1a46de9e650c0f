// Retention lets versions go only when a new version is made (PUT, stage).
// Emptying a slot (DELETE) and a clean restart used to drop a retained version
// no request asked to drop ("released version beyond retention"): the emptied
// slot's versions all count as "others", and the restart pruned them. Here a
// slot is emptied, mimd restarted (also with a lower retain), a version
// activated: every retained version stays pinned and alive in the kernel,
// until a new version is made.
import t from 'tap';
import * as path from 'node:path';
import { pinDir, stateDir, vethPair } from '../helpers/sandbox';
import { ensureBuilt, firewallConfig, kernelSlots, pinLeaves, pinnedMap, skipUnlessRoot, startApi, stillInKernel, u32Hex, type Api } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';

async function versions(api: Api): Promise<[number, string][]> {
  const res = await api('GET', `${BL}/0/versions`);
  if (res.status !== 200) throw new Error(`GET versions: ${res.status} ${JSON.stringify(res.body)}`);
  return (res.body.versions as { version: number; state: string }[]).map((v) => [v.version, v.state]);
}

t.test('DELETE, restarts and activations drop no retained version; the next new version does', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const state = stateDir(t);
  const config = (retain: number): Record<string, unknown> => firewallConfig(pinRoot, veth.host, { stateDir: state, onStop: 'keep', retain });
  const slotPins = path.join(pinRoot, 'firewall', 'slots', 'blocklist', u32Hex(0));
  const pinned = (...numbers: number[]): string[] => numbers.map(String);

  let daemon = await startApi(t, config(2));
  const mapIds: Record<number, number> = {};
  for (const n of [1, 2, 3]) {
    const res = await daemon.api('PUT', `${BL}/0`, { entries: [{ key: `192.0.2.${n}`, value: 1 }] });
    t.match(res, { body: { version: n } });
    mapIds[n] = res.body.mapId as number;
  }
  const outerId = ((await daemon.api('GET', '/v1/maps/firewall/blocklist')).body as { mapId: number }).mapId;
  t.match(await daemon.api('DELETE', `${BL}/0`), { status: 200, body: { previousVersion: 3 } });
  t.same(kernelSlots(outerId), {}, 'the kernel slot is empty');
  t.same(pinLeaves(slotPins), pinned(1, 2, 3), 'the emptied slot keeps its 3 versions');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });

  // The reported attack: a clean restart after the DELETE.
  daemon = await startApi(t, config(2));
  t.same(await versions(daemon.api), [[3, 'retained'], [2, 'retained'], [1, 'retained']], 'the restart keeps every version');
  t.same(pinLeaves(slotPins), pinned(1, 2, 3));
  for (const n of [1, 2, 3]) t.equal(pinnedMap(path.join(slotPins, String(n))).id, mapIds[n], `pin ${n} still holds version ${n}'s map`);
  t.same(kernelSlots(outerId), {}, 'and the slot stays empty');
  t.equal(daemon.logs.filter((l) => l.msg === 'released version beyond retention').length, 0, 'nothing released at start');

  t.match(await daemon.api('POST', `${BL}/0/versions/1/activate`), { status: 200, body: { version: 1, previousVersion: null } });
  t.same(kernelSlots(outerId), { [u32Hex(0)]: mapIds[1] });
  t.same(pinLeaves(slotPins), pinned(1, 2, 3), 'an activation makes no version and drops none');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });

  // A lower retain takes effect at the next new version, not at the start.
  daemon = await startApi(t, config(1));
  t.same(pinLeaves(slotPins), pinned(1, 2, 3), 'a restart with retain 1 drops nothing');
  t.same(await versions(daemon.api), [[3, 'retained'], [2, 'retained'], [1, 'active']]);
  const staged = await daemon.api('POST', `${BL}/0/versions`, { entries: [] });
  t.match(staged, { status: 201, body: { version: 4, state: 'staged' } });
  t.same(await versions(daemon.api), [[4, 'staged'], [1, 'active']], 'a new version: the active one and the 1 newest other are kept');
  t.same(pinLeaves(slotPins), pinned(1, 4));
  t.same(await stillInKernel({ map: [mapIds[2]!, mapIds[3]!] }), {}, 'versions 2 and 3 are freed');
  t.same(kernelSlots(outerId), { [u32Hex(0)]: mapIds[1] }, 'the slot still holds version 1');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
});
