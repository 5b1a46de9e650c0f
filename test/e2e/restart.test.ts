// Restarts that are not crashes: a clean stop (onStop: keep) leaves the
// programs attached and enforcing and everything pinned, and the next start
// carries on exactly where it stopped; `purge` and onStop: remove take away
// everything mimd owns; a slot changed behind mimd's back while it was
// stopped is reported as drift and left alone.
import t from 'tap';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { netnsLink, netnsSender, peerSource, pinDir, stateDir, udpSink, vethPair } from '../helpers/sandbox';
import {
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelEntries,
  kernelSlots,
  pinLeaves,
  pinnedLink,
  pinnedMap,
  probeVerdicts,
  runMimd,
  skipUnlessRoot,
  startApi,
  stillInKernel,
  u32Hex,
  xdpProgram,
  type Api,
  type TrafficProbe,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';
const POL = '/v1/maps/firewall/policy/slots';
const X1 = '203.0.113.1';

interface SlotView {
  activeVersion: number | null;
  kernelMapId: number | null;
  drift: boolean;
  versions: { version: number; state: string; mapId: number; labels: Record<string, string>; createdAt: string; activatedAt: string | null; pinPath: string }[];
}

async function slotView(api: Api, url: string): Promise<SlotView> {
  const res = await api('GET', url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body as SlotView;
}

/** Every map id a slot's versions and the outer maps have, from the API. */
async function ownedMapIds(api: Api, slotUrls: string[]): Promise<number[]> {
  const outer = ((await api('GET', '/v1/maps')).body.maps as { mapId: number }[]).map((m) => m.mapId);
  const versions = (await Promise.all(slotUrls.map((url) => slotView(api, url)))).flatMap((s) => s.versions.map((v) => v.mapId));
  return [...outer, ...versions];
}

t.test('a clean stop keeps everything, a restart carries on, purge removes everything', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = netnsLink(t, randomInt(16, 64));
  const P = link.peerAddress;
  const S = peerSource(link);
  const sink = await udpSink(t, link.hostAddress);
  const probe: TrafficProbe = { ifname: link.host, sender: await netnsSender(t, link.netns, link.hostAddress, sink.port), sink };
  const config = firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep' });
  const IF = link.hostIfindex;
  const objectPins = path.join(pinRoot, 'firewall');
  const linkPin = path.join(objectPins, 'links', `xdp-generic-${link.host}`);

  // ---- first run: versions, labels, a staged version, a rollback ---------
  let daemon = await startApi(t, config);
  let { api } = daemon;
  t.match(await api('PUT', `${BL}/0`, { entries: [{ key: P, value: 1 }], labels: { owner: 'a' } }), { status: 201, body: { version: 1 } });
  t.match(await api('PUT', `${BL}/0`, { entries: [{ key: X1, value: 1 }], labels: { owner: 'b' } }), { status: 200, body: { version: 2 } });
  t.match(await api('POST', `${BL}/0/versions`, { entries: [{ key: S, value: 1 }], labels: { stage: 'yes' } }), { status: 201, body: { version: 3, state: 'staged' } });
  t.match(await api('POST', `${BL}/0/rollback`), { status: 200, body: { version: 1, previousVersion: 2 } }, 'rollback to version 1: P blocked again');
  t.match(await api('PUT', `${POL}/${IF}`, { entries: [{ key: `${S}/32`, value: { verdict: 'drop' } }], labels: { policy: 'v1' } }), { status: 201 });
  const blocklist0 = await slotView(api, `${BL}/0`);
  const policy = await slotView(api, `${POL}/${IF}`);
  const maps = (await api('GET', '/v1/maps')).body.maps as { name: string; mapId: number; pinPath: string }[];
  t.same(
    maps.map((m) => [m.name, m.pinPath]),
    [
      ['blocklist', path.join(objectPins, 'maps', 'blocklist')],
      ['policy', path.join(objectPins, 'maps', 'policy')],
    ],
    'the outer maps are pinned under <pinRoot>/firewall/maps/',
  );
  const owned = await ownedMapIds(api, [`${BL}/0`, `${POL}/${IF}`]);
  const firstProgram = xdpProgram(link.host);
  const firstLink = pinnedLink(linkPin);
  t.equal(firstLink.prog_id, firstProgram?.id, `the link pinned at links/xdp-generic-${link.host} runs the program on the interface`);
  const pinsBefore = pinLeaves(pinRoot);
  t.same(
    pinsBefore,
    [
      `firewall/links/xdp-generic-${link.host}`,
      'firewall/maps/blocklist',
      'firewall/maps/policy',
      ...[1, 2, 3].map((n) => `firewall/slots/blocklist/${u32Hex(0)}/${n}`),
      `firewall/slots/policy/${u32Hex(IF)}/1`,
    ].sort(),
    'pinned: the link, the outer maps, every version',
  );
  t.same(await probeVerdicts(probe, { [P]: 'blocklist', [S]: 'policy' }), [], 'P blocklisted, S dropped by the policy');

  // ---- clean stop: everything stays -------------------------------------
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.equal(daemon.logs.at(-1)?.msg, 'stopped');
  t.equal(daemon.stderr(), '');
  t.equal(xdpProgram(link.host)?.id, firstProgram?.id, 'the program stays attached');
  t.same(pinLeaves(pinRoot), pinsBefore, 'every pin stays');
  t.ok(fs.readdirSync(path.join(state, 'firewall'), { recursive: true }).length > 0, 'the state records stay');
  t.same(await probeVerdicts(probe, { [P]: 'blocklist', [S]: 'policy' }), [], 'while mimd is stopped, traffic is filtered as before');

  // ---- restart: carries on ---------------------------------------------
  daemon = await startApi(t, config);
  ({ api } = daemon);
  t.same(await slotView(api, `${BL}/0`), blocklist0, 'blocklist slot 0: versions, states, labels, map ids, times as before the stop');
  t.same(await slotView(api, `${POL}/${IF}`), policy, 'the policy slot as before the stop');
  t.same(
    ((await api('GET', '/v1/maps')).body.maps as { name: string; mapId: number; pinPath: string }[]).map((m) => [m.name, m.mapId, m.pinPath]),
    maps.map((m) => [m.name, m.mapId, m.pinPath]),
    'the same outer maps, reused from their pins',
  );
  const secondLink = pinnedLink(linkPin);
  t.equal(secondLink.id, firstLink.id, 'the same link');
  t.not(secondLink.prog_id, firstLink.prog_id, 'running the program loaded by this start (bpf_link_update)');
  t.equal(xdpProgram(link.host)?.id, secondLink.prog_id, 'which is the one on the interface');
  t.same(await probeVerdicts(probe, { [P]: 'blocklist', [S]: 'policy' }), [], 'traffic filtered as before');

  let res = await api('PUT', `${BL}/0`, { entries: [] });
  t.match(res, { status: 200, body: { version: 4, previousVersion: 1 } }, 'the numbering continues: version 4');
  t.same(await probeVerdicts(probe, { [P]: 'pass', [S]: 'policy' }), [], 'P passes');
  res = await api('POST', `${BL}/0/rollback`);
  t.match(res, { status: 200, body: { version: 1, previousVersion: 4 } }, 'rollback goes back to the version active before, across the restart');
  res = await api('POST', `${BL}/0/versions/3/activate`);
  t.match(res, { status: 200, body: { version: 3, previousVersion: 1 } }, 'the version staged before the restart can be activated');
  t.same(
    (await slotView(api, `${BL}/0`)).versions.map((v) => [v.version, v.state]),
    [
      [4, 'retained'],
      [3, 'active'],
      [2, 'retained'],
      [1, 'retained'],
    ],
  );
  t.same(await probeVerdicts(probe, { [P]: 'pass', [S]: 'blocklist' }), [], 'S blocklisted by version 3');
  const ownedNow = await ownedMapIds(api, [`${BL}/0`, `${POL}/${IF}`]);
  const programNow = xdpProgram(link.host)!.id;
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM again: exit 0');

  // ---- purge: everything goes --------------------------------------------
  const purged = await runMimd(t, ['purge'], config);
  t.match(purged, { code: 0, signal: null }, 'purge: exit 0');
  t.ok(purged.logs.some((l) => l.msg === 'purged'), 'logs "purged"');
  t.equal(purged.stderr, '', 'nothing on stderr');
  t.notOk(fs.existsSync(objectPins), '<pinRoot>/firewall is gone');
  t.same(pinLeaves(pinRoot), [], 'no pin left under pinRoot');
  t.equal(xdpProgram(link.host), null, 'no XDP program on the interface');
  t.notOk(fs.existsSync(path.join(state, 'firewall')), '<stateDir>/firewall is gone');
  t.same(
    await stillInKernel({ map: [...owned, ...ownedNow], prog: [programNow], link: [firstLink.id] }),
    {},
    'the outer maps, every version, the program and the link are freed',
  );
  t.same(await probeVerdicts(probe, { [P]: 'pass', [S]: 'pass' }), [], 'nothing filters any more');

  // A start after purge starts from nothing.
  daemon = await startApi(t, config);
  t.match(await daemon.api('PUT', `${BL}/0`, { entries: [] }), { status: 201, body: { version: 1, previousVersion: null } }, 'after purge, numbering starts at 1');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
});

t.test('onStop: remove detaches and removes everything mimd owns on SIGTERM', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const veth = vethPair(t);
  const config = firewallConfig(pinRoot, veth.host, { stateDir: state, onStop: 'remove' });
  const daemon = await startApi(t, config);
  const { api } = daemon;
  t.equal((await api('PUT', `${BL}/1`, { entries: [{ key: X1, value: 1 }], labels: { a: 'b' } })).status, 201);
  t.equal((await api('POST', `${BL}/1/versions`, { entries: [] })).status, 201);
  t.equal((await api('PUT', `${POL}/7`, { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] })).status, 201);
  const owned = await ownedMapIds(api, [`${BL}/1`, `${POL}/7`]);
  const program = xdpProgram(veth.host);
  t.ok(program, 'attached');
  const linkId = pinnedLink(path.join(pinRoot, 'firewall', 'links', `xdp-generic-${veth.host}`)).id;
  t.ok(fs.readdirSync(path.join(state, 'firewall'), { recursive: true }).length > 0, 'state recorded while running');

  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.equal(daemon.stderr(), '');
  t.equal(xdpProgram(veth.host), null, 'detached');
  t.notOk(fs.existsSync(path.join(pinRoot, 'firewall')), '<pinRoot>/firewall is gone');
  t.same(pinLeaves(pinRoot), [], 'no pin left under pinRoot');
  t.notOk(fs.existsSync(path.join(state, 'firewall')), '<stateDir>/firewall is gone');
  t.same(await stillInKernel({ map: owned, prog: [program!.id], link: [linkId] }), {}, 'the maps, the program and the link are freed');
});

t.test("a slot changed behind mimd's back while it was stopped: drift reported, the foreign map left alone", { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const veth = vethPair(t);
  const config = firewallConfig(pinRoot, veth.host, { stateDir: state, onStop: 'keep', logLevel: 'info' });
  let daemon = await startApi(t, config);
  const v1 = await daemon.api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }], labels: { mine: 'yes' } });
  t.equal(v1.status, 201);
  const mine = v1.body.mapId as number;
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'stopped (keep)');

  // Two inner maps of someone else's that fit the template (HASH, 4-byte
  // key, 1-byte value, no flags; a HASH's size is not compared), pinned in a
  // directory of the test's own, put into slot 0 (mimd's) and slot 2 (never
  // used by mimd) of the pinned outer map.
  const foreignDir = pinDir(t);
  const outerPin = path.join(pinRoot, 'firewall', 'maps', 'blocklist');
  const foreign = [0, 2].map((slot) => {
    const pin = path.join(foreignDir, `foreign${slot}`);
    const sh = (...args: string[]): string => execFileSync('bpftool', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
    sh('map', 'create', pin, 'type', 'hash', 'key', '4', 'value', '1', 'entries', '16', 'name', `foreign${slot}`);
    sh('map', 'update', 'pinned', pin, 'key', '198', '51', '100', String(slot), 'value', '1');
    sh('map', 'update', 'pinned', outerPin, 'key', ...[...Buffer.from(u32Hex(slot), 'hex')].map(String), 'value', 'pinned', pin);
    return { slot, pin, id: pinnedMap(pin).id };
  });
  const outerId = pinnedMap(outerPin).id;
  t.same(kernelSlots(outerId), { [u32Hex(0)]: foreign[0]!.id, [u32Hex(2)]: foreign[1]!.id }, 'the kernel slots now hold the foreign maps');
  const pinsBefore = pinLeaves(pinRoot);

  daemon = await startApi(t, config);
  const { api } = daemon;
  const drifts = daemon.logs.filter((l) => l.msg === 'slot changed behind mimd');
  t.match(
    drifts.find((l) => l.slot === 0),
    { map: /blocklist$/, slot: 0, kernelMapId: foreign[0]!.id, installedMapId: mine },
    'logged: slot 0 holds a map mimd did not install',
  );
  t.match(drifts.find((l) => l.slot === 2), { map: /blocklist$/, slot: 2, kernelMapId: foreign[1]!.id, installedMapId: null }, 'logged: slot 2 too');
  t.equal(drifts.length, 2, 'two drift lines, no more');

  t.match(
    await api('GET', `${BL}/0`),
    { status: 200, body: { slot: 0, activeVersion: 1, kernelMapId: foreign[0]!.id, installedMapId: mine, drift: true, versions: [{ version: 1, mapId: mine, labels: { mine: 'yes' } }] } },
    'GET slot 0: drift, with what is really there',
  );
  t.match(
    await api('GET', `${BL}/2`),
    { status: 200, body: { slot: 2, activeVersion: null, kernelMapId: foreign[1]!.id, installedMapId: null, drift: true, versions: [] } },
    'GET slot 2: drift',
  );
  const listed = (await api('GET', BL)).body.slots as { slot: number; mapId: number; drift: boolean }[];
  t.same(
    listed.map((s) => [s.slot, s.mapId, s.drift]).sort(),
    [
      [0, foreign[0]!.id, true],
      [2, foreign[1]!.id, true],
    ],
    'GET slots: both drifted',
  );

  t.same(kernelSlots(outerId), { [u32Hex(0)]: foreign[0]!.id, [u32Hex(2)]: foreign[1]!.id }, 'mimd left the foreign maps in their slots');
  for (const { slot, pin, id } of foreign) {
    t.equal(pinnedMap(pin).id, id, `foreign map of slot ${slot}: its pin is still there`);
    t.same(kernelEntries(id), { [firewallBytes.source(`198.51.100.${slot}`)]: '01' }, `foreign map of slot ${slot}: its entries untouched`);
  }
  t.same(pinLeaves(pinRoot), pinsBefore, 'no pin made or removed under pinRoot for them');
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
  t.same(kernelSlots(outerId), { [u32Hex(0)]: foreign[0]!.id, [u32Hex(2)]: foreign[1]!.id }, 'and still there after mimd stopped');
});
