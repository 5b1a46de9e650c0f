// Upgrading the BPF object: a new build with the same maps replaces the
// attached program in place (bpf_link_update) while traffic flows, without a
// single datagram that should be dropped getting through; a build whose inner
// template differs from the pinned outer map's is refused, naming the field,
// unless the configuration asks for replacement, in which case the slots that
// fit are carried over and the others dropped.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { fixture, netnsLink, netnsSender, peerSource, pinDir, stateDir, udpSink } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallConfig,
  firewallCounters,
  kernelEntries,
  kernelProgram,
  kernelSlots,
  pinLeaves,
  pinnedLink,
  pinnedMap,
  probeVerdicts,
  skipUnlessRoot,
  sleep,
  startApi,
  startDaemon,
  stillInKernel,
  u32Hex,
  withTimeout,
  xdpProgram,
  type Api,
  type TrafficProbe,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const EX_CONFIG = 78;
const BL = '/v1/maps/firewall/blocklist/slots';
const POL = '/v1/maps/firewall/policy/slots';
const X1 = '203.0.113.1';

/** Every slot's versions as the API shows them, for before/after comparisons. */
async function slotsOf(api: Api, urls: string[]): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const url of urls) {
    const res = await api('GET', url);
    out[url] = res.status === 200 ? res.body : res.status;
  }
  return out;
}

/** Reads every file under a directory: path -> content. */
function snapshotDir(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true }) as string[]) {
    const file = path.join(dir, String(entry));
    if (fs.statSync(file).isFile()) out[String(entry)] = fs.readFileSync(file, 'utf8');
  }
  return out;
}

/** Polls until `count()` reaches `target`; resolves with the last count. */
async function until(count: () => number, target: number, timeoutMs = 5_000): Promise<number> {
  for (const deadline = Date.now() + timeoutMs; count() < target && Date.now() < deadline; ) await sleep(10);
  return count();
}

t.test('a new build replaces the program in place while traffic flows: no blocked datagram gets through', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = netnsLink(t, randomInt(16, 64));
  const allowed = link.peerAddress;
  const blocked = peerSource(link);
  const sink = await udpSink(t, link.hostAddress);
  const sender = await netnsSender(t, link.netns, link.hostAddress, sink.port);
  const probe: TrafficProbe = { ifname: link.host, sender, sink };
  const config = firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep', logLevel: 'info' });
  const linkPin = path.join(pinRoot, 'firewall', 'links', `xdp-generic-${link.host}`);
  const slotUrls = [`${BL}/0`, `${BL}/1`, `${POL}/${link.hostIfindex}`];

  let daemon = await startApi(t, config);
  let { api } = daemon;
  t.equal((await api('PUT', `${BL}/0`, { entries: [], labels: { gen: '1' } })).status, 201);
  t.equal((await api('PUT', `${BL}/0`, { entries: [{ key: blocked, value: 1 }], labels: { gen: '2' } })).status, 200);
  t.equal((await api('PUT', `${BL}/1`, { entries: [{ key: X1, value: 1 }] })).status, 201);
  t.equal((await api('POST', `${BL}/1/versions`, { entries: [], labels: { staged: 'yes' } })).status, 201);
  t.equal((await api('PUT', `${POL}/${link.hostIfindex}`, { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] })).status, 201);
  const slotsBefore = await slotsOf(api, slotUrls);
  const outerBefore = ((await api('GET', '/v1/maps')).body.maps as { mapId: number }[]).map((m) => m.mapId);
  t.same(await probeVerdicts(probe, { [allowed]: 'pass', [blocked]: 'blocklist' }), [], 'before: the blocked source is dropped, the other passes');

  const oldLink = pinnedLink(linkPin);
  const oldProgram = kernelProgram(oldLink.prog_id)!;
  t.equal(xdpProgram(link.host)?.id, oldProgram.id, 'the pinned link runs the program on the interface');

  // Traffic from both sources, all the way through the upgrade.
  await sender.stream('up', allowed, 2);
  await sender.stream('down', blocked, 2);
  const arrived = (): number => sink.count('up', allowed);
  t.ok((await until(arrived, 50)) >= 50, 'allowed datagrams arrive while the old build runs');

  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'the old daemon stops (keep)');
  const atStop = arrived();
  t.ok((await until(arrived, atStop + 50)) >= atStop + 50, 'allowed datagrams keep arriving while no mimd runs');
  t.equal(xdpProgram(link.host)?.id, oldProgram.id, 'the old build is still attached');

  daemon = await startApi(t, firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep', logLevel: 'info', objectPath: fixture('firewall_v2.bpf.o') }));
  ({ api } = daemon);
  const atStart = arrived();
  const newLink = pinnedLink(linkPin);
  t.equal(newLink.id, oldLink.id, 'the same link');
  t.not(newLink.prog_id, oldLink.prog_id, 'now running another program');
  t.equal(xdpProgram(link.host)?.id, newLink.prog_id, 'the one ip link shows on the interface');
  const newProgram = kernelProgram(newLink.prog_id)!;
  t.not(newProgram.tag, oldProgram.tag, 'of other instructions: the new build');
  t.same(
    outerBefore.filter((id) => newProgram.map_ids.includes(id)),
    outerBefore,
    'using the same outer maps',
  );
  t.same(await stillInKernel({ prog: [oldProgram.id] }), {}, 'the old program is gone from the kernel');
  t.ok((await until(arrived, atStart + 50)) >= atStart + 50, 'allowed datagrams keep arriving under the new build');
  // FIREWALL_COUNT_STEP 2: the new build counts each drop twice.
  const drops = (): number => firewallCounters(newProgram.id)[1] ?? 0;
  t.ok((await until(drops, 20)) >= 20 && drops() % 2 === 0, `the new build drops the blocked source (${drops()} by its count)`);

  const sentDown = await sender.stop('down');
  const sentUp = await sender.stop('up');
  t.equal(await until(arrived, sentUp, 2_000), sentUp, `every allowed datagram arrived (${sentUp})`);
  t.ok(sentDown > 200, `datagrams from the blocked source were sent all along (${sentDown})`);
  t.equal(sink.count('down', blocked), 0, 'not one of them arrived: before, during or after the upgrade');
  t.equal(sink.total(blocked), 0, 'nothing at all from the blocked source');

  t.same(await slotsOf(api, slotUrls), slotsBefore, 'every slot with its versions, labels and active version as before');
  t.same(
    ((await api('GET', '/v1/maps')).body.maps as { mapId: number }[]).map((m) => m.mapId),
    outerBefore,
    'the same outer maps in the API',
  );
  t.same(await probeVerdicts(probe, { [allowed]: 'pass', [blocked]: 'blocklist' }, { counterStep: 2 }), [], 'after: filtered as before, by the new build');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
});

t.test('an incompatible pinned outer map: refused naming the field, then replaced on request', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = netnsLink(t, randomInt(16, 64));
  const P = link.peerAddress;
  const S = peerSource(link);
  const sink = await udpSink(t, link.hostAddress);
  const probe: TrafficProbe = { ifname: link.host, sender: await netnsSender(t, link.netns, link.hostAddress, sink.port), sink };
  const IF = link.hostIfindex;
  const config = firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep', logLevel: 'info' });
  const incompatible = (onIncompatiblePin?: 'replace'): Record<string, unknown> =>
    firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep', logLevel: 'info', objectPath: fixture('firewall_incompat.bpf.o'), onIncompatiblePin });
  const objectPins = path.join(pinRoot, 'firewall');
  const linkPin = path.join(objectPins, 'links', `xdp-generic-${link.host}`);
  const outerPin = (map: string): string => path.join(objectPins, 'maps', map);

  // ---- the normal build: a blocklist slot and a policy slot ---------------
  let daemon = await startApi(t, config);
  let { api } = daemon;
  const b1 = await api('PUT', `${BL}/0`, { entries: [{ key: S, value: 1 }], labels: { list: '1' } });
  const b2 = await api('PUT', `${BL}/0`, { entries: [{ key: S, value: 1 }, { key: X1, value: 1 }], labels: { list: '2' } });
  t.match([b1.status, b2.status], [201, 200], 'blocklist slot 0: versions 1 and 2');
  t.equal((await api('PUT', `${POL}/${IF}`, { entries: [{ key: `${P}/32`, value: { verdict: 'drop' } }], labels: { policy: '1' } })).status, 201);
  t.equal((await api('PUT', `${POL}/${IF}`, { entries: [{ key: `${P}/32`, value: { verdict: 'pass' } }], labels: { policy: '2' } })).status, 200);
  t.equal((await api('POST', `${POL}/${IF}/rollback`)).status, 200, 'policy back to version 1');
  t.equal((await api('POST', `${POL}/${IF}/versions`, { entries: [], labels: { policy: '3' } })).status, 201, 'and version 3 staged');
  const policyBefore = (await api('GET', `${POL}/${IF}`)).body;
  t.match(policyBefore, { activeVersion: 1, versions: [{ version: 3, state: 'staged' }, { version: 2, state: 'retained' }, { version: 1, state: 'active' }] });
  t.same(await probeVerdicts(probe, { [P]: 'policy', [S]: 'blocklist' }), [], 'S blocklisted, P dropped by the policy');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'stopped (keep)');

  const pinsBefore = pinLeaves(pinRoot);
  const stateBefore = snapshotDir(state);
  const blocklistOld = pinnedMap(outerPin('blocklist')).id;
  const policyOuter = pinnedMap(outerPin('policy')).id;
  const kernelBefore = { blocklist: kernelSlots(blocklistOld), policy: kernelSlots(policyOuter) };
  const linkBefore = pinnedLink(linkPin);
  const blocklistVersions = [b1.body.mapId as number, b2.body.mapId as number];

  // ---- refused ------------------------------------------------------------
  await t.test('refuse (the default): exit 78 naming object, map and field; nothing changed', async (t) => {
    const refused = startDaemon(t, incompatible());
    t.same(await withTimeout(refused.exited, 15_000, 'refused start'), { code: EX_CONFIG, signal: null }, 'exit 78');
    const stderr = refused.stderr();
    t.match(stderr, /firewall/, 'names the object');
    t.match(stderr, /blocklist/, 'names the map');
    t.match(stderr, /innerTemplate\.flags/, 'names the field that differs');
    t.match(stderr, /onIncompatiblePin/, 'says how to replace it');
    t.notMatch(stderr, /\n\s+at /, 'no stack trace');
    t.notOk(refused.logs.some((l) => l.msg === 'started'), 'never started');

    t.same(pinLeaves(pinRoot), pinsBefore, 'every pin as it was');
    t.same(snapshotDir(state), stateBefore, 'every state record as it was');
    t.equal(pinnedMap(outerPin('blocklist')).id, blocklistOld, 'the same blocklist outer map pinned');
    t.same({ blocklist: kernelSlots(blocklistOld), policy: kernelSlots(policyOuter) }, kernelBefore, 'the same inner maps in the slots');
    t.match(pinnedLink(linkPin), { id: linkBefore.id, prog_id: linkBefore.prog_id }, 'the same link, running the same (old) program');
    t.equal(xdpProgram(link.host)?.id, linkBefore.prog_id, 'the old program is still the one on the interface');
    t.same(await probeVerdicts(probe, { [P]: 'policy', [S]: 'blocklist' }), [], 'and it still filters the traffic');
  });

  // ---- replaced -----------------------------------------------------------
  await t.test('replace: a new blocklist outer map, the policy slot carried over, the blocklist slot dropped', async (t) => {
    daemon = await startApi(t, incompatible('replace'));
    ({ api } = daemon);
    const misfit = daemon.logs.find((l) => l.msg === 'slot does not fit the new inner template');
    t.match(misfit, { map: /blocklist$/, slot: 0 }, 'logged: blocklist slot 0 does not fit the new inner template');

    const maps = (await api('GET', '/v1/maps')).body.maps as { name: string; mapId: number; innerTemplate: { flags: string[] } }[];
    const blocklist = maps.find((m) => m.name === 'blocklist')!;
    t.not(blocklist.mapId, blocklistOld, 'blocklist: a new outer map');
    t.same(blocklist.innerTemplate.flags, ['NO_PREALLOC'], 'with the new inner template');
    t.equal(pinnedMap(outerPin('blocklist')).id, blocklist.mapId, 'pinned in place of the old one');
    t.equal(maps.find((m) => m.name === 'policy')?.mapId, policyOuter, 'policy: the same outer map, compatible');

    t.match(await api('GET', `${BL}/0`), { status: 404 }, 'blocklist slot 0 is gone');
    t.same(kernelSlots(blocklist.mapId), {}, 'nothing in the new blocklist');
    t.same(
      pinLeaves(pinRoot).filter((p) => p.startsWith('firewall/slots/blocklist/')),
      [],
      'no pin left for the blocklist versions',
    );
    t.same(
      await stillInKernel({ map: [blocklistOld, ...blocklistVersions] }),
      {},
      `the old blocklist outer map (map ${blocklistOld}) and its versions (maps ${blocklistVersions.join(', ')}) are freed`,
    );

    const policyAfter = await api('GET', `${POL}/${IF}`);
    t.same(policyAfter.body, policyBefore, 'the policy slot: the same versions, states, labels, maps and active version');
    t.same(kernelSlots(policyOuter), kernelBefore.policy, 'the policy trie still in its slot');

    const newLink = pinnedLink(linkPin);
    t.equal(newLink.id, linkBefore.id, 'the same link');
    t.not(newLink.prog_id, linkBefore.prog_id, 'running the new build');
    t.same(await probeVerdicts(probe, { [P]: 'policy', [S]: 'pass' }), [], 'S passes (its blocklist is gone), P is still dropped by the policy');

    const put = await api('PUT', `${BL}/0`, { entries: [{ key: S, value: 1 }] });
    t.equal(put.status, 201, 'the new blocklist takes a new version');
    t.match(pinnedMap(path.join(objectPins, 'slots', 'blocklist', u32Hex(0), String(put.body.version))), { id: put.body.mapId, flags: 1 }, 'built from the new template (BPF_F_NO_PREALLOC)');
    t.same(Object.keys(kernelEntries(put.body.mapId)).length, 1);
    t.same(await probeVerdicts(probe, { [P]: 'policy', [S]: 'blocklist' }), [], 'S blocklisted again');
    t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
    t.same(await stillInKernel({ map: [blocklistOld, ...blocklistVersions] }), {}, 'after the stop too');
  });
});
