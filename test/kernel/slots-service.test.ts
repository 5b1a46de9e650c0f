// The slot service against the real kernel: versions built from the template,
// swapped through the one queue, kept and released by the retention rule, and
// nothing changed after an error.
import { createHash } from 'node:crypto';
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { HostService } from '../../daemon/src/domain/host';
import { SlotsService } from '../../daemon/src/domain/slots-service';
import { SwapQueue } from '../../daemon/src/domain/swap-queue';
import type { KernelOuterMap } from '../../daemon/src/domain/ports';
import { KernelAdapter } from '../../daemon/src/kernel/adapter';
import { BpfMap, BpfObject, MapType, XdpAction } from '../../daemon/src/kernel';
import { FileStateStore } from '../../daemon/src/state/file-store';
import { FIREWALL_OBJECT, pinDir, stateDir, u32 } from '../helpers/sandbox';
import { ipv4Frame } from '../helpers/packet';

const LISTED = '198.51.100.7';
// As config/default.yaml declares them.
const FIREWALL_MAPS = { blocklist: { formats: { key: 'ipv4' as const } }, policy: { formats: { key: 'cidr' as const } } };
const LISTED_HEX = '0xc6336407';
const OTHER_HEX = '0xcb007101';

interface Fixture {
  slots: SlotsService;
  swaps: SwapQueue;
  host: HostService;
  pinRoot: string;
  stateDir: string;
  /** the same object file loaded a second time, to test-run the verdicts */
  verdict(src: string): Promise<number>;
  blocklistId(slot: number): number | null;
}

/**
 * A firewall loaded through the host service (no attachment) with a slot
 * service over it. test runs go through the host's own program: the program
 * is found by id through a second BpfObject handle? No: test-run needs the
 * program fd, so the fixture loads the firewall itself and hands its outer
 * maps to the service.
 */
async function setup(t: Parameters<typeof pinDir>[0], retain = 3, capacity = 1024): Promise<Fixture> {
  const pinRoot = pinDir(t);
  const states = stateDir(t);
  const state = new FileStateStore(states);
  const logger = pino({ level: 'silent' });
  const kernel = new KernelAdapter();
  const host = new HostService({
    objects: [{ name: 'firewall', path: FIREWALL_OBJECT, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: 'refuse' }],
    pinRoot,
    kernel,
    state,
    logger,
  });
  await host.start();
  t.teardown(() => host.close());
  const swaps = new SwapQueue({ capacity, concurrency: 4 });
  const slots = new SlotsService({
    maps: host.managedMaps(),
    kernel,
    swaps,
    retain,
    pinRoot,
    state,
    logger,
    ready: () => host.running,
  });
  t.teardown(() => slots.close());

  // The same maps, opened by id, under a program of our own for test runs:
  // a second object reusing the host's outer maps.
  const blocklistId = slots.listMaps().find((m) => m.name === 'blocklist')?.mapId ?? 0;
  const policyId = slots.listMaps().find((m) => m.name === 'policy')?.mapId ?? 0;
  const blocklist = BpfMap.fromId(blocklistId);
  const policy = BpfMap.fromId(policyId);
  const probe = BpfObject.open(FIREWALL_OBJECT);
  probe.reuseMap('blocklist', blocklist);
  probe.reuseMap('policy', policy);
  await probe.load();
  t.teardown(() => {
    probe.close();
    blocklist.close();
    policy.close();
  });
  return {
    slots,
    swaps,
    host,
    pinRoot,
    stateDir: states,
    verdict: async (src) => (await probe.testRun('xdp_firewall', ipv4Frame({ src, dst: '192.0.2.1' }))).retval,
    blocklistId: (slot) => blocklist.lookup(u32(slot))?.readUInt32LE(0) ?? null,
  };
}

const block = (...hex: string[]) => ({ entries: hex.map((key) => ({ key, value: 1 })) });

/** Pins under the slot's directory, as version numbers. */
function pinnedVersions(pinRoot: string, slotHex: string): number[] {
  const dir = path.join(pinRoot, 'firewall', 'slots', 'blocklist', slotHex);
  return fs.existsSync(dir) ? fs.readdirSync(dir).map(Number).sort((a, b) => a - b) : [];
}

t.test('put, rollback, activate, clear: the program sees each change', async (t) => {
  const f = await setup(t);
  t.equal(await f.verdict(LISTED), XdpAction.PASS);

  const first = await f.slots.putSlot('firewall', 'blocklist', '0', { ...block(LISTED_HEX), labels: { feed: 'a' } });
  t.match(first, { slot: 0, version: 1, previousVersion: null, entryCount: 1, created: true });
  t.equal(f.blocklistId(0), first.mapId);
  t.equal(await f.verdict(LISTED), XdpAction.DROP, 'after PUT the listed source drops');

  const second = await f.slots.putSlot('firewall', 'blocklist', '0', block(OTHER_HEX), 1);
  t.match(second, { version: 2, previousVersion: 1, created: false });
  t.equal(await f.verdict(LISTED), XdpAction.PASS);

  const back = await f.slots.rollback('firewall', 'blocklist', '0');
  t.match(back, { version: 1, previousVersion: 2 });
  t.equal(f.blocklistId(0), first.mapId, 'the very same inner map is back');
  t.equal(await f.verdict(LISTED), XdpAction.DROP);

  await f.slots.activate('firewall', 'blocklist', '0', 2);
  t.equal(await f.verdict(LISTED), XdpAction.PASS);

  const detail = f.slots.getSlot('firewall', 'blocklist', '0');
  t.match(detail, { slot: 0, activeVersion: 2, drift: false, kernelMapId: second.mapId });
  t.same(detail.versions.map((v) => [v.version, v.state]), [[2, 'active'], [1, 'retained']]);
  t.same(detail.versions[1]?.labels, { feed: 'a' });

  const cleared = await f.slots.clearSlot('firewall', 'blocklist', '0');
  t.same(cleared, { slot: 0, previousVersion: 2, previousMapId: second.mapId });
  t.equal(f.blocklistId(0), null, 'the slot is empty in the kernel');
  t.equal(f.slots.listVersions('firewall', 'blocklist', '0').length, 2, 'versions stay for rollback');
  await f.slots.rollback('firewall', 'blocklist', '0');
  t.equal(f.blocklistId(0), second.mapId, 'rollback after clear restores the last active version');
});

t.test('stage then activate; entries read back from the kernel, paginated', async (t) => {
  const f = await setup(t);
  const entries = Array.from({ length: 250 }, (_, i) => ({ key: `10.0.${i >> 8}.${(i & 255) + 1}`, value: 1 }));
  const staged = await f.slots.stageVersion('firewall', 'blocklist', '2', { entries });
  t.match(staged, { version: 1, state: 'staged', entryCount: 250 });
  t.equal(f.blocklistId(2), null, 'staging does not touch the slot');
  t.ok(fs.existsSync(staged.pinPath), 'the staged version is pinned');

  const seen: unknown[] = [];
  let cursor: string | undefined;
  for (let pages = 0; pages < 10; pages++) {
    const page = f.slots.readEntries('firewall', 'blocklist', '2', { limit: 100, version: 1, cursor });
    seen.push(...page.entries.map((e) => e.key));
    if (!page.nextCursor) break;
    cursor = page.nextCursor;
  }
  t.equal(seen.length, 250);
  t.equal(new Set(seen).size, 250, 'every key once');

  t.throws(() => f.slots.readEntries('firewall', 'blocklist', '2', { limit: 10 }), { code: 'MIMD_NOT_FOUND', message: /no active version/ });
  await f.slots.activate('firewall', 'blocklist', '2', 1);
  t.equal(f.slots.readEntries('firewall', 'blocklist', '2', { limit: 10 }).entries.length, 10);
});

t.test('patch in place, without a swap', async (t) => {
  const f = await setup(t);
  const put = await f.slots.putSlot('firewall', 'blocklist', '1', block(OTHER_HEX));
  t.equal(await f.verdict(LISTED), XdpAction.PASS);
  const patched = await f.slots.patchEntries('firewall', 'blocklist', '1', { upsert: [{ key: LISTED_HEX, value: 1 }], delete: [OTHER_HEX] });
  // The change's digest: the upserted key and value, then the deleted key, as the kernel takes them.
  const change = createHash('sha256')
    .update(Buffer.from(LISTED_HEX.slice(2), 'hex'))
    .update(Buffer.from([1]))
    .update(Buffer.from(OTHER_HEX.slice(2), 'hex'))
    .digest('hex');
  t.same(patched, { slot: 1, version: 1, upserted: 1, deleted: 1, entryCount: 1, digest: change });
  t.equal(f.blocklistId(1), put.mapId, 'the same inner map');
  t.equal(await f.verdict(LISTED), XdpAction.DROP, 'the change is live');
  await t.rejects(f.slots.patchEntries('firewall', 'blocklist', '1', { upsert: [{ key: '0x01', value: 1 }] }), {
    code: 'MIMD_BAD_INPUT',
    field: 'upsert[0].key',
  });
  t.equal(await f.verdict(LISTED), XdpAction.DROP, 'a refused patch changes nothing');
});

t.test('policy: a HASH_OF_MAPS slot keyed by ifindex with an LPM trie', async (t) => {
  const f = await setup(t);
  // prefixlen 8 (LE u32), then 10.0.0.0
  const res = await f.slots.putSlot('firewall', 'policy', '1', { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] });
  t.match(res, { slot: 1, version: 1, created: true });
  t.equal(await f.verdict('10.9.8.7'), XdpAction.DROP, 'test runs come in on lo (ifindex 1)');
  t.equal(await f.verdict('11.0.0.1'), XdpAction.PASS);
  const map = f.slots.getMap('firewall', 'policy');
  t.match(map, { type: 'HASH_OF_MAPS', slotsInUse: 1, innerTemplate: { type: 'LPM_TRIE', flags: ['NO_PREALLOC'], resizable: true } });
  const bigger = await f.slots.putSlot('firewall', 'policy', '1', { entries: [], maxEntries: 100 });
  t.match(bigger, { version: 2, entryCount: 0 });
  t.equal(await f.verdict('10.9.8.7'), XdpAction.PASS);
});

t.test('errors change nothing: no slot touched, no version or pin left', async (t) => {
  const f = await setup(t);
  const good = await f.slots.putSlot('firewall', 'blocklist', '0', block(LISTED_HEX));
  const state = () => ({
    kernel: f.blocklistId(0),
    versions: f.slots.listVersions('firewall', 'blocklist', '0').map((v) => v.version),
    pins: pinnedVersions(f.pinRoot, '00000000'),
  });
  const before = state();
  t.same(before, { kernel: good.mapId, versions: [1], pins: [1] });

  const cases: [string, () => Promise<unknown>, Record<string, unknown>][] = [
    ['bad key size', () => f.slots.putSlot('firewall', 'blocklist', '0', block('0x0102')), { code: 'MIMD_BAD_INPUT', field: 'entries[0].key', message: 'entries[0].key: expected 4 bytes, got 2' }],
    ['value too big', () => f.slots.putSlot('firewall', 'blocklist', '0', { entries: [{ key: '10.0.0.1', value: 256 }] }), { code: 'MIMD_BAD_INPUT', field: 'entries[0].value' }],
    ['duplicate key', () => f.slots.putSlot('firewall', 'blocklist', '0', block('0x00000001', '0x00000001')), { code: 'MIMD_BAD_INPUT', field: 'entries[1].key' }],
    ['too many entries', () => f.slots.putSlot('firewall', 'blocklist', '0', { entries: [{ key: '10.0.0.1', value: 1 }, { key: '10.0.0.2', value: 1 }], maxEntries: 1 }), { statusCode: 422, field: 'entries' }],
    ['If-Match', () => f.slots.putSlot('firewall', 'blocklist', '0', block(OTHER_HEX), 7), { statusCode: 412, field: 'If-Match' }],
    ['slot past the end', () => f.slots.putSlot('firewall', 'blocklist', '4', block(OTHER_HEX)), { statusCode: 404, field: 'slot' }],
    ['bad slot', () => f.slots.putSlot('firewall', 'blocklist', 'x', block(OTHER_HEX)), { statusCode: 400, field: 'slot' }],
    ['unknown map', () => f.slots.putSlot('firewall', 'nope', '0', block(OTHER_HEX)), { statusCode: 404, field: 'map' }],
    ['unknown object', () => f.slots.putSlot('nope', 'blocklist', '0', block(OTHER_HEX)), { statusCode: 404, field: 'object' }],
    ['unknown version', () => f.slots.activate('firewall', 'blocklist', '0', 9), { statusCode: 404, field: 'version' }],
    ['no rollback target', () => f.slots.rollback('firewall', 'blocklist', '0'), { statusCode: 409 }],
    ['kernel refuses the size', () => f.slots.putSlot('firewall', 'blocklist', '0', { entries: [], maxEntries: 2 ** 31 }), { statusCode: 422, field: 'maxEntries', errno: 'E2BIG' }],
  ];
  for (const [name, run, expected] of cases) {
    t.match(await run().then(() => 'resolved', (e: unknown) => e), expected, name);
    t.same(state(), before, `${name}: nothing changed`);
  }
  t.equal(await f.verdict(LISTED), XdpAction.DROP);
});

t.test('a full HASH_OF_MAPS answers 409 and keeps nothing of the attempt', async (t) => {
  // A tiny outer map of our own, managed directly.
  const f = await setup(t);
  const policyMax = f.slots.getMap('firewall', 'policy').maxEntries;
  for (let i = 1; i <= policyMax; i++) await f.slots.putSlot('firewall', 'policy', String(i), { entries: [] });
  const err = await f.slots.putSlot('firewall', 'policy', String(policyMax + 1), { entries: [] }).catch((e: unknown) => e);
  t.match(err, { statusCode: 409, code: 'MIMD_OUTER_MAP_FULL' });
  t.throws(() => f.slots.getSlot('firewall', 'policy', String(policyMax + 1)), { code: 'MIMD_NOT_FOUND' });
  const dir = path.join(f.pinRoot, 'firewall', 'slots', 'policy');
  t.equal(fs.readdirSync(dir).length, policyMax, 'no pin directory with a version for the refused slot');
});

t.test('drift: a slot changed behind mimd is reported', async (t) => {
  const f = await setup(t);
  await f.slots.putSlot('firewall', 'blocklist', '3', block(LISTED_HEX));
  t.equal(f.slots.getSlot('firewall', 'blocklist', '3').drift, false);
  const outer = BpfMap.fromId(f.slots.getMap('firewall', 'blocklist').mapId);
  t.teardown(() => outer.close());
  const intruder = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 1, maxEntries: 65536 });
  t.teardown(() => intruder.close());
  await outer.update(u32(3), u32(intruder.fd));
  const detail = f.slots.getSlot('firewall', 'blocklist', '3');
  t.match(detail, { drift: true, kernelMapId: intruder.info().id, activeVersion: 1 });
  t.match(f.slots.listSlots('firewall', 'blocklist'), [{ slot: 3, drift: true }]);
  // A slot mimd never touched, filled behind its back.
  await outer.update(u32(2), u32(intruder.fd));
  t.match(f.slots.getSlot('firewall', 'blocklist', '2'), { drift: true, activeVersion: null, versions: [] });
  t.equal(f.slots.listSlots('firewall', 'blocklist').length, 2);
});

t.test('100 concurrent PUTs to one slot: one wins, numbers without gaps, pins = active + retain', async (t) => {
  const f = await setup(t, 3);
  const results = await Promise.all(
    Array.from({ length: 100 }, (_, i) => f.slots.putSlot('firewall', 'blocklist', '1', { entries: [{ key: `10.0.0.${i + 1}`, value: 1 }], labels: { n: String(i) } })),
  );
  t.same(results.map((r) => r.version).sort((a, b) => a - b), Array.from({ length: 100 }, (_, i) => i + 1), 'versions 1..100, no gap');
  const detail = f.slots.getSlot('firewall', 'blocklist', '1');
  const winner = results.find((r) => r.version === detail.activeVersion);
  t.ok(winner, 'the slot holds one of the submitted versions');
  t.equal(detail.kernelMapId, winner?.mapId);
  t.equal(detail.activeVersion, 100, 'the last one serialized');
  t.same(pinnedVersions(f.pinRoot, '01000000'), [97, 98, 99, 100], 'pins: the active version plus retain');
  t.same(detail.versions.map((v) => v.version), [100, 99, 98, 97]);
});

t.test('a full swap queue answers 503 with Retry-After', async (t) => {
  const f = await setup(t, 3, 1);
  // The queue's one place is held by an update that waits for the test: four
  // concurrent PUTs used to overlap by timing alone, and stopped doing so
  // once every swap began with an fsynced record. Holding the place makes
  // the refusal certain; the refused PUTs still run against the kernel.
  let letGo = (): void => undefined;
  const held = new Promise<void>((resolve) => (letGo = resolve));
  const holder = { delete: async () => (await held, true) } as unknown as KernelOuterMap;
  const holding = f.swaps.clear(holder, u32(0));
  t.teardown(() => letGo());
  const runs = [0, 1, 2, 3].map((slot) => f.slots.putSlot('firewall', 'blocklist', String(slot), block(LISTED_HEX)).then(() => 'ok', (e: { statusCode?: number; retryAfter?: number }) => e));
  const outcomes = await Promise.all(runs);
  t.equal(outcomes.filter((o) => o !== 'ok').length, 4, 'every PUT refused while the queue is full');
  for (const err of outcomes) t.match(err, { statusCode: 503, code: 'MIMD_SWAP_QUEUE_FULL', retryAfter: 1 });
  for (const slot of [0, 1, 2, 3]) {
    t.equal(f.blocklistId(slot), null, `slot ${slot} untouched`);
    t.same(pinnedVersions(f.pinRoot, u32(slot).toString('hex')), [], `slot ${slot}: no version pin left`);
    t.notOk(fs.existsSync(path.join(f.stateDir, 'firewall', 'blocklist', 'slots', `${u32(slot).toString('hex')}.json`)), `slot ${slot}: no record left`);
  }
  letGo();
  await holding;
  const after = await f.slots.putSlot('firewall', 'blocklist', '0', block(LISTED_HEX));
  t.match(after, { version: 1, created: true }, 'once the queue has room the PUT goes through, with the number the refused one did not take');
  t.equal(f.blocklistId(0), after.mapId);
});

t.test('close keeps every version pin for a restart; close(remove) removes every pin and record', async (t) => {
  const f = await setup(t);
  const put = await f.slots.putSlot('firewall', 'blocklist', '0', block(LISTED_HEX));
  f.slots.close();
  await f.host.close('keep');
  t.same(pinnedVersions(f.pinRoot, '00000000'), [1], 'the version pin stays');
  const version = BpfMap.openPinned(path.join(f.pinRoot, 'firewall', 'slots', 'blocklist', '00000000', '1'));
  t.teardown(() => version.close());
  t.equal(version.info().id, put.mapId, 'and holds the version');
  t.equal(f.blocklistId(0), put.mapId, 'the slot keeps its inner map');
  t.same(fs.readdirSync(path.join(f.pinRoot, 'firewall', 'maps')).sort(), ['blocklist', 'policy'], 'the outer maps stay pinned');
  t.ok(fs.existsSync(path.join(f.stateDir, 'firewall', 'blocklist', 'slots', '00000000.json')), 'the slot record stays');

  // A second run on the same pins, told to remove what mimd owns on stop.
  const host = new HostService({
    objects: [{ name: 'firewall', path: FIREWALL_OBJECT, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: 'refuse' }],
    pinRoot: f.pinRoot,
    kernel: new KernelAdapter(),
    state: new FileStateStore(f.stateDir),
    logger: pino({ level: 'silent' }),
  });
  await host.start();
  await host.close('remove');
  t.same(fs.readdirSync(f.pinRoot), [], 'no pins and no directories for them left');
  t.notOk(fs.existsSync(path.join(f.stateDir, 'firewall')), 'no records left');
});

t.test('LPM trie keys: canonical, checked, and counted by exact match', async (t) => {
  const f = await setup(t);
  // 192.0.2.0/24 written twice with different host bits is one trie entry.
  await t.rejects(
    f.slots.putSlot('firewall', 'policy', '9', {
      entries: [
        { key: '0x18000000c0000200', value: { verdict: 'drop' } },
        { key: '0x18000000c0000205', value: { verdict: 'pass' } },
      ],
    }),
    { code: 'MIMD_BAD_INPUT', field: 'entries[1].key', message: /duplicate of entries\[0\]\.key/ },
  );
  await t.rejects(f.slots.putSlot('firewall', 'policy', '9', { entries: [{ key: '0x21000000c0000200', value: { verdict: 'drop' } }] }), {
    code: 'MIMD_BAD_INPUT',
    field: 'entries[0].key',
    message: /prefix length 33 is over the 32 bits/,
  });
  const put = await f.slots.putSlot('firewall', 'policy', '9', { entries: [{ key: '0x18000000c00002ff', value: { verdict: 'drop' } }] });
  t.equal(put.entryCount, 1);
  t.same(f.slots.readEntries('firewall', 'policy', '9', { limit: 10 }).entries, [{ key: '192.0.2.0/24', value: { verdict: 'drop' } }], 'stored canonical');

  // A /30 inside the /24 is not an entry: deleting it deletes nothing.
  const none = await f.slots.patchEntries('firewall', 'policy', '9', { delete: ['0x1e000000c0000204'] });
  t.match(none, { deleted: 0, entryCount: 1 });
  // A /28 inside the /24 is a new entry.
  const added = await f.slots.patchEntries('firewall', 'policy', '9', { upsert: [{ key: '0x1c000000c0000200', value: { verdict: 'pass' } }] });
  t.match(added, { upserted: 1, entryCount: 2 });
  t.equal(f.slots.readEntries('firewall', 'policy', '9', { limit: 10 }).entries.length, 2);
  await t.rejects(f.slots.patchEntries('firewall', 'policy', '9', { upsert: [{ key: '0x21000000c0000200', value: { verdict: 'pass' } }] }), { code: 'MIMD_BAD_INPUT', field: 'upsert[0].key' });
  t.equal(f.slots.readEntries('firewall', 'policy', '9', { limit: 10 }).entries.length, 2, 'a refused patch writes nothing');
});
