// Restart survival against the real kernel: a "restart" closes one
// SlotsService and HostService (pins kept) and builds new ones on the same
// pin root and state directory. What each restart restored is read back twice:
// through the service, and independently from the kernel (pinned outer maps,
// their slots, version pins on bpffs) and from the records on disk.
// Crashes are left by the service's own crash points (pauseAt) or by writing
// the slot record a crash leaves; changes behind mimd's back are made with
// BpfMap directly while no service runs.
import t, { type Test } from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino from 'pino';
import { HostService } from '../../daemon/src/domain/host';
import { SlotsService } from '../../daemon/src/domain/slots-service';
import { SwapQueue } from '../../daemon/src/domain/swap-queue';
import type { RestoreSummary } from '../../daemon/src/domain/restore';
import type { OuterMapRecord, SlotRecord } from '../../daemon/src/domain/state';
import { KernelAdapter } from '../../daemon/src/kernel/adapter';
import { BpfMap, MapFlag, MapType } from '../../daemon/src/kernel';
import { FileStateStore } from '../../daemon/src/state/file-store';
import { FIREWALL_OBJECT, fixture, pinDir, stateDir, u32 } from '../helpers/sandbox';
import { ipv4ToBeU32Buffer } from '../helpers/packet';

// As config/default.yaml declares them.
const FIREWALL_MAPS = { blocklist: { formats: { key: 'ipv4' as const } }, policy: { formats: { key: 'cidr' as const } } };
/** The firewall with blocklist's inner template changed (flags NO_PREALLOC): pinned blocklists do not fit it. */
const INCOMPATIBLE_OBJECT = fixture('firewall_incompat.bpf.o');

const LISTED = '198.51.100.7';
const OTHER = '203.0.113.9';
const listing = (...sources: string[]) => ({ entries: sources.map((key) => ({ key, value: 1 })) });

interface Env {
  t: Test;
  pinRoot: string;
  stateDir: string;
}

function environment(t: Test): Env {
  return { t, pinRoot: pinDir(t), stateDir: stateDir(t) };
}

interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

interface BootOptions {
  retain?: number;
  pauseAt?: string;
  object?: string;
  onIncompatiblePin?: 'refuse' | 'replace';
}

interface Run {
  host: HostService;
  slots: SlotsService;
  summary: RestoreSummary;
  logs: LogLine[];
  /** what a SIGTERM with onStop: keep does: handles closed, pins and records kept */
  stop(): Promise<void>;
  /** resolves once a change reached the pauseAt point (the "crash") */
  paused(): Promise<void>;
  logged(msg: string, fields?: Record<string, unknown>): LogLine[];
}

/**
 * One start of mimd on the environment's pins and records, as main.ts does
 * it: the slots are restored in beforeAttach. Stopped in teardown (kept).
 */
async function boot(env: Env, options: BootOptions = {}): Promise<Run> {
  const logs: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line) as LogLine) });
  const kernel = new KernelAdapter();
  const state = new FileStateStore(env.stateDir);
  const host = new HostService({
    objects: [
      { name: 'firewall', path: options.object ?? FIREWALL_OBJECT, attach: [], maps: FIREWALL_MAPS, onIncompatiblePin: options.onIncompatiblePin ?? 'refuse' },
    ],
    pinRoot: env.pinRoot,
    kernel,
    state,
    logger,
  });
  const made: { slots?: SlotsService; summary?: RestoreSummary } = {};
  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> => {
    stopped ??= (async () => {
      made.slots?.close();
      await host.close('keep');
    })();
    return stopped;
  };
  env.t.teardown(stop);
  await host.start(async () => {
    made.slots = new SlotsService({
      maps: host.managedMaps(),
      kernel,
      swaps: new SwapQueue({ capacity: 64, concurrency: 4 }),
      retain: options.retain ?? 3,
      pinRoot: env.pinRoot,
      state,
      logger,
      ready: () => host.running,
      pauseAt: options.pauseAt,
    });
    made.summary = await made.slots.restore();
  });
  const { slots, summary } = made;
  if (!slots || !summary) throw new Error('start did not restore the slots');
  const logged = (msg: string, fields: Record<string, unknown> = {}): LogLine[] =>
    logs.filter((l) => l.msg === msg && Object.entries(fields).every(([k, v]) => JSON.stringify(l[k]) === JSON.stringify(v)));
  return {
    host,
    slots,
    summary,
    logs,
    stop,
    logged,
    paused: async () => {
      for (let waited = 0; waited < 5_000; waited += 10) {
        if (logged('paused at crash point', { point: options.pauseAt }).length > 0) return;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      throw new Error(`no change reached ${String(options.pauseAt)} within 5 s`);
    },
  };
}

// ---- independent reads of the kernel and the disk ----------------------------

const hex = (key: Buffer): string => key.toString('hex');
const outerPin = (env: Env, map: string): string => path.join(env.pinRoot, 'firewall', 'maps', map);
const slotPinDir = (env: Env, map: string, key: Buffer): string => path.join(env.pinRoot, 'firewall', 'slots', map, hex(key));
const versionPin = (env: Env, map: string, key: Buffer, version: number): string => path.join(slotPinDir(env, map, key), String(version));

/** The id of the map pinned at `pinPath`, opened from the pin. */
function pinnedId(pinPath: string): number {
  const map = BpfMap.openPinned(pinPath);
  try {
    return map.info().id;
  } finally {
    map.close();
  }
}

/** What the pinned outer map holds in a slot: an inner map id, or null. */
function kernelSlot(env: Env, map: string, key: Buffer): number | null {
  const outer = BpfMap.openPinned(outerPin(env, map));
  try {
    return outer.lookup(key)?.readUInt32LE(0) ?? null;
  } finally {
    outer.close();
  }
}

/** Puts `inner` into a slot of the pinned outer map, as another program with the pin could. */
async function setSlotBehindMimd(env: Env, map: string, key: Buffer, inner: BpfMap): Promise<void> {
  const outer = BpfMap.openPinned(outerPin(env, map));
  try {
    await outer.update(key, u32(inner.fd));
  } finally {
    outer.close();
  }
}

/** Names pinned in a slot's directory, sorted. */
function pinsOf(env: Env, map: string, key: Buffer): string[] {
  const dir = slotPinDir(env, map, key);
  return fs.existsSync(dir) ? fs.readdirSync(dir).sort() : [];
}

function readRecord(env: Env, map: string, key: Buffer): SlotRecord | undefined {
  return new FileStateStore(env.stateDir).readSlots('firewall', map).find((r) => r.key === hex(key));
}

function outerJson(env: Env, map: string): string {
  return path.join(env.stateDir, 'firewall', map, 'outer.json');
}

/** A HASH map of the blocklist's inner shape, made by "someone else", holding `sources`. */
async function foreignBlocklist(t: Test, sources: string[], flags = 0): Promise<BpfMap> {
  const map = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 1, maxEntries: 16, flags });
  t.teardown(() => map.close());
  for (const source of sources) await map.update(ipv4ToBeU32Buffer(source), Buffer.from([1]));
  return map;
}

const numbers = (run: Run, map: string, slot: string): number[] => run.slots.listVersions('firewall', map, slot).map((v) => v.version);

// ---- the tests ---------------------------------------------------------------------

t.test('versions, labels, active version, history and the next number survive a restart', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  const v1 = await first.slots.putSlot('firewall', 'blocklist', '0', { ...listing(LISTED), labels: { feed: 'a' } });
  const v2 = await first.slots.putSlot('firewall', 'blocklist', '0', { ...listing(OTHER), labels: { feed: 'b' } });
  await first.slots.stageVersion('firewall', 'blocklist', '0', { ...listing(), labels: { feed: 'c' } });
  t.match(await first.slots.rollback('firewall', 'blocklist', '0'), { version: 1, previousVersion: 2 });
  const p1 = await first.slots.putSlot('firewall', 'policy', '1', { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }], labels: { owner: 'ops' } });
  const before = {
    blocklist: first.slots.getSlot('firewall', 'blocklist', '0'),
    policy: first.slots.getSlot('firewall', 'policy', '1'),
    maps: first.slots.listMaps().map((m) => [m.name, m.mapId]),
    slots: first.slots.listSlots('firewall', 'blocklist'),
  };
  await first.stop();

  // Stopped: the kernel still holds everything.
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v1.mapId, 'while stopped the slot keeps the active version');
  t.equal(kernelSlot(env, 'policy', u32(1)), p1.mapId);
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2', '3']);

  const second = await boot(env);
  t.same(second.summary, { slots: 2, versions: 4, drifted: 0, repaired: 0, carriedOver: 0, dropped: 0 }, 'nothing to repair');
  t.same(second.slots.listMaps().map((m) => [m.name, m.mapId]), before.maps, 'the pinned outer maps are reused');
  t.equal(pinnedId(outerPin(env, 'blocklist')), before.maps[0]?.[1]);
  t.same(second.slots.getSlot('firewall', 'blocklist', '0'), before.blocklist, 'blocklist slot 0: versions, labels, states, dates, map ids');
  t.same(second.slots.getSlot('firewall', 'policy', '1'), before.policy, 'policy slot 1 likewise');
  t.same(second.slots.listSlots('firewall', 'blocklist'), before.slots);
  for (const version of before.blocklist.versions) {
    t.equal(pinnedId(versionPin(env, 'blocklist', u32(0), version.version)), version.mapId, `version ${version.version}: its pin holds its map`);
  }
  t.same(second.slots.readEntries('firewall', 'blocklist', '0', { limit: 10 }).entries, [{ key: LISTED, value: 1 }], 'entries read through the restored handle');

  // The restored versions work: history decides the rollback, numbering goes on.
  t.match(await second.slots.rollback('firewall', 'blocklist', '0'), { version: 2, previousVersion: 1, mapId: v2.mapId });
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v2.mapId, 'rollback swapped a restored version into the kernel');
  const v4 = await second.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED), 2);
  t.match(v4, { version: 4, previousVersion: 2 }, 'the next number follows the last one handed out before the restart');
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v4.mapId);
  await second.stop();

  const third = await boot(env);
  t.same(numbers(third, 'blocklist', '0'), [4, 3, 2, 1]);
  t.match(third.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 4, kernelMapId: v4.mapId, drift: false });
});

t.test('a version pin with no record is removed; a record whose pin is gone is forgotten; foreign pins are left', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  const staged2 = await first.slots.stageVersion('firewall', 'blocklist', '0', listing(OTHER));
  await first.slots.stageVersion('firewall', 'blocklist', '0', listing());
  const other = await first.slots.putSlot('firewall', 'blocklist', '1', listing(OTHER));
  await first.stop();

  fs.rmSync(staged2.pinPath);
  const orphan = await foreignBlocklist(t, [LISTED]);
  orphan.pin(versionPin(env, 'blocklist', u32(0), 7));
  fs.mkdirSync(slotPinDir(env, 'blocklist', u32(2)));
  orphan.pin(versionPin(env, 'blocklist', u32(2), 1));
  orphan.pin(path.join(slotPinDir(env, 'blocklist', u32(0)), 'keep-me'));
  const foreignDir = path.join(env.pinRoot, 'firewall', 'slots', 'blocklist', 'foreign');
  fs.mkdirSync(foreignDir);
  orphan.pin(path.join(foreignDir, '1'));

  const second = await boot(env);
  t.same(numbers(second, 'blocklist', '0'), [3, 1], 'version 2 (pin gone) is forgotten');
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '3', 'keep-me'], 'the unrecorded pin 7 is removed, the foreign pin is not');
  t.notOk(fs.existsSync(slotPinDir(env, 'blocklist', u32(2))), 'a slot directory with only an unrecorded pin is removed');
  t.ok(fs.existsSync(path.join(foreignDir, '1')), 'a directory that is not a slot of mimd is left alone');
  // 2 pins removed, 1 record forgotten, 2 numberings raised to the orphans' numbers.
  t.match(second.summary, { slots: 2, versions: 3, repaired: 5, drifted: 0 });
  t.match(readRecord(env, 'blocklist', u32(0)), { versions: [{ number: 1 }, { number: 3 }], lastVersion: 7, active: 1 }, 'the record is rewritten without version 2');
  t.equal(readRecord(env, 'blocklist', u32(0))?.versions.length, 2);
  t.same(
    readRecord(env, 'blocklist', u32(2)),
    { key: hex(u32(2)), lastVersion: 1, active: null, installedMapId: null, history: [], versions: [], pending: null },
    'the orphan leaves only its number in a record',
  );
  t.throws(() => second.slots.getSlot('firewall', 'blocklist', '2'), { code: 'MIMD_NOT_FOUND' });
  t.match(second.slots.getSlot('firewall', 'blocklist', '1'), { activeVersion: 1, kernelMapId: other.mapId, drift: false }, 'the other slot is untouched');
  t.equal(second.logged('forgot a recorded version whose pin is gone', { version: 2 }).length, 1);
  t.equal(second.logged('removed a version pin with no record').length, 2);
  t.equal(second.logged('left alone: not a version pin of mimd').length, 1);
  t.equal(second.logged('left alone: not a slot directory of mimd').length, 1);
  t.equal(second.logged('raised the last version number to the highest one in use', { slot: 0, recordedLastVersion: 3, lastVersion: 7 }).length, 1);
  t.match(await second.slots.stageVersion('firewall', 'blocklist', '0', listing()), { version: 8 }, 'numbers go on past every number seen, in the record or on bpffs');
  t.match(await second.slots.putSlot('firewall', 'blocklist', '2', listing()), { version: 2 }, 'the orphan slot too');
});

t.test('a crash after the record and before the release: the released pins are removed at restart', async (t) => {
  const env = environment(t);
  const first = await boot(env, { retain: 1 });
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  await first.stop();

  const crashing = await boot(env, { retain: 1, pauseAt: 'swap:recorded' });
  void crashing.slots.putSlot('firewall', 'blocklist', '0', listing());
  await crashing.paused();
  await crashing.stop();
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2', '3'], 'version 1 was not yet released');
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 3, pending: null }, 'the record says version 1 is gone');

  const restarted = await boot(env, { retain: 1 });
  t.same(pinsOf(env, 'blocklist', u32(0)), ['2', '3']);
  t.same(numbers(restarted, 'blocklist', '0'), [3, 2]);
  t.equal(restarted.summary.repaired, 1);
  t.match(restarted.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 3, kernelMapId: pinnedId(versionPin(env, 'blocklist', u32(0), 3)), drift: false });
});

t.test('a lower retain takes effect at the next new version, never at the restart', async (t) => {
  const env = environment(t);
  const first = await boot(env, { retain: 3 });
  for (let i = 0; i < 4; i++) await first.slots.putSlot('firewall', 'blocklist', '0', listing());
  await first.stop();
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2', '3', '4']);

  const second = await boot(env, { retain: 1 });
  t.same(numbers(second, 'blocklist', '0'), [4, 3, 2, 1], 'the restart keeps every retained version');
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2', '3', '4']);
  t.equal(second.logged('released version beyond retention').length, 0);
  t.match(await second.slots.rollback('firewall', 'blocklist', '0'), { version: 3 });
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2', '3', '4'], 'a rollback makes no version and drops none');

  await second.slots.stageVersion('firewall', 'blocklist', '0', listing());
  t.same(numbers(second, 'blocklist', '0'), [5, 3], 'the next new version: the active one and 1 other');
  t.same(pinsOf(env, 'blocklist', u32(0)), ['3', '5']);
  t.same(readRecord(env, 'blocklist', u32(0))?.versions.map((v) => v.number), [3, 5]);
});

t.test('a pending activate whose version is in the slot is finished, and versions beyond retain released', async (t) => {
  const env = environment(t);
  const first = await boot(env, { retain: 1 });
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  await first.stop();

  const crashing = await boot(env, { retain: 1, pauseAt: 'swap:applied' });
  void crashing.slots.putSlot('firewall', 'blocklist', '0', { ...listing(), labels: { feed: 'new' } });
  await crashing.paused();
  await crashing.stop();
  const v3 = pinnedId(versionPin(env, 'blocklist', u32(0), 3));
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v3, 'the crash came after the kernel took version 3');
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 2, pending: { op: 'activate', version: 3, discardOnAbort: true } });

  const restarted = await boot(env, { retain: 1 });
  t.match(restarted.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 3, kernelMapId: v3, installedMapId: v3, drift: false });
  t.same(numbers(restarted, 'blocklist', '0'), [3, 2], 'version 1 is beyond retain 1 now');
  t.same(restarted.slots.listVersions('firewall', 'blocklist', '0')[0]?.labels, { feed: 'new' });
  t.same(pinsOf(env, 'blocklist', u32(0)), ['2', '3']);
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 3, installedMapId: v3, pending: null });
  t.same(readRecord(env, 'blocklist', u32(0))?.versions.map((v) => v.number), [2, 3]);
  t.equal(restarted.summary.repaired, 1);
  t.equal(restarted.logged('finished a swap a crash interrupted', { version: 3 }).length, 1);
  t.match(await restarted.slots.rollback('firewall', 'blocklist', '0'), { version: 2, previousVersion: 3 }, 'the finished swap is in the history');
  t.match(await restarted.slots.putSlot('firewall', 'blocklist', '0', listing()), { version: 4 });
});

t.test('a pending activate whose version is not in the slot is abandoned', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  const v1 = await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  await first.stop();

  // A PUT that crashed before the kernel had its version.
  const crashing = await boot(env, { pauseAt: 'swap:intent' });
  void crashing.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  await crashing.paused();
  await crashing.stop();
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '2']);
  const abandonedId = pinnedId(versionPin(env, 'blocklist', u32(0), 2));
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v1.mapId);
  t.match(readRecord(env, 'blocklist', u32(0)), { lastVersion: 2, pending: { op: 'activate', version: 2, discardOnAbort: true } });

  const restarted = await boot(env);
  t.match(restarted.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 1, kernelMapId: v1.mapId, drift: false });
  t.same(numbers(restarted, 'blocklist', '0'), [1], 'the version built for the PUT is gone');
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1'], 'and so is its pin');
  t.match(readRecord(env, 'blocklist', u32(0)), { lastVersion: 2, active: 1, pending: null });
  t.equal(restarted.summary.repaired, 1);
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v1.mapId, 'the slot is left as the kernel has it');
  const again = await restarted.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  t.match(again, { version: 3, previousVersion: 1 }, 'its number is not handed out again');
  t.not(again.mapId, abandonedId);
  t.equal(kernelSlot(env, 'blocklist', u32(0)), again.mapId);
  await restarted.slots.stageVersion('firewall', 'blocklist', '0', listing());
  await restarted.stop();

  // An activate of a staged version that crashed before the kernel had it: the version stays.
  const crashing2 = await boot(env, { pauseAt: 'swap:intent' });
  void crashing2.slots.activate('firewall', 'blocklist', '0', 4);
  await crashing2.paused();
  await crashing2.stop();
  t.match(readRecord(env, 'blocklist', u32(0)), { pending: { op: 'activate', version: 4, discardOnAbort: false } });

  const last = await boot(env);
  t.match(last.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 3, kernelMapId: again.mapId, drift: false });
  t.same(
    last.slots.listVersions('firewall', 'blocklist', '0').map((v) => [v.version, v.state]),
    [[4, 'staged'], [3, 'active'], [1, 'retained']],
    'the staged version is kept',
  );
  t.same(pinsOf(env, 'blocklist', u32(0)), ['1', '3', '4']);
  t.match(readRecord(env, 'blocklist', u32(0)), { lastVersion: 4, pending: null });
});

t.test('a pending clear is finished when the slot is empty and abandoned when it is not', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  const a = await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  const b = await first.slots.putSlot('firewall', 'blocklist', '1', listing(LISTED));
  await first.stop();

  const crashing = await boot(env, { pauseAt: 'clear:applied' });
  void crashing.slots.clearSlot('firewall', 'blocklist', '0');
  await crashing.paused();
  await crashing.stop();
  t.equal(kernelSlot(env, 'blocklist', u32(0)), null, 'the kernel emptied slot 0');
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 1, pending: { op: 'clear' } });
  // What a crash between the intent and the kernel call leaves for slot 1.
  const record1 = readRecord(env, 'blocklist', u32(1));
  if (!record1) throw new Error('no record of slot 1');
  await new FileStateStore(env.stateDir).writeSlot('firewall', 'blocklist', { ...record1, pending: { op: 'clear' } });

  const restarted = await boot(env);
  t.match(restarted.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: null, kernelMapId: null, installedMapId: null, drift: false });
  t.same(restarted.slots.listVersions('firewall', 'blocklist', '0').map((v) => [v.version, v.state]), [[1, 'retained']], 'the version stays for rollback');
  t.match(readRecord(env, 'blocklist', u32(0)), { active: null, installedMapId: null, pending: null });
  t.match(restarted.slots.getSlot('firewall', 'blocklist', '1'), { activeVersion: 1, kernelMapId: b.mapId, installedMapId: b.mapId, drift: false });
  t.equal(kernelSlot(env, 'blocklist', u32(1)), b.mapId, 'slot 1 keeps its map');
  t.match(readRecord(env, 'blocklist', u32(1)), { active: 1, pending: null });
  t.equal(restarted.summary.repaired, 2);
  t.equal(restarted.summary.drifted, 0);
  t.match(await restarted.slots.rollback('firewall', 'blocklist', '0'), { version: 1, previousVersion: null });
  t.equal(kernelSlot(env, 'blocklist', u32(0)), a.mapId);
});

t.test('a pending patch recounts the entries from the kernel', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED, OTHER));
  await first.stop();

  // The patch got this far into the kernel before the crash.
  const version = BpfMap.openPinned(versionPin(env, 'blocklist', u32(0), 1));
  t.teardown(() => version.close());
  for (const source of ['10.0.0.1', '10.0.0.2', '10.0.0.3']) await version.update(ipv4ToBeU32Buffer(source), Buffer.from([1]));
  await version.delete(ipv4ToBeU32Buffer(LISTED));
  const record = readRecord(env, 'blocklist', u32(0));
  if (!record) throw new Error('no record of slot 0');
  t.equal(record.versions[0]?.entryCount, 2);
  await new FileStateStore(env.stateDir).writeSlot('firewall', 'blocklist', { ...record, pending: { op: 'patch' } });

  const restarted = await boot(env);
  t.equal(restarted.slots.listVersions('firewall', 'blocklist', '0')[0]?.entryCount, 4, 'counted in the kernel');
  t.equal(restarted.slots.listSlots('firewall', 'blocklist')[0]?.entryCount, 4);
  t.equal(restarted.slots.readEntries('firewall', 'blocklist', '0', { limit: 10 }).entries.length, 4);
  t.match(readRecord(env, 'blocklist', u32(0)), { pending: null, versions: [{ number: 1, entryCount: 4 }] });
  t.equal(restarted.summary.repaired, 1);
  t.equal(restarted.logged('recounted the entries of a version a crash interrupted a patch of', { entries: 4 }).length, 1);
});

t.test('slots changed behind mimd while it was stopped are drift: reported and left as they are', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  const kept = await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  const emptied = await first.slots.putSlot('firewall', 'blocklist', '1', listing(LISTED));
  const replaced = await first.slots.putSlot('firewall', 'blocklist', '3', listing(LISTED));
  await first.stop();

  const intruder = await foreignBlocklist(t, [OTHER]);
  const filler = await foreignBlocklist(t, [OTHER]);
  await setSlotBehindMimd(env, 'blocklist', u32(3), intruder);
  await setSlotBehindMimd(env, 'blocklist', u32(2), filler);
  const outer = BpfMap.openPinned(outerPin(env, 'blocklist'));
  t.teardown(() => outer.close());
  t.equal(await outer.delete(u32(1)), true, 'slot 1 emptied behind mimd');
  const intruderId = intruder.info().id;
  const fillerId = filler.info().id;

  const second = await boot(env);
  t.equal(second.summary.drifted, 3);
  t.match(second.slots.getSlot('firewall', 'blocklist', '3'), { activeVersion: 1, kernelMapId: intruderId, installedMapId: replaced.mapId, drift: true });
  t.match(second.slots.getSlot('firewall', 'blocklist', '2'), { activeVersion: null, kernelMapId: fillerId, installedMapId: null, drift: true, versions: [] });
  t.match(second.slots.getSlot('firewall', 'blocklist', '1'), { activeVersion: 1, kernelMapId: null, installedMapId: emptied.mapId, drift: true });
  t.match(second.slots.getSlot('firewall', 'blocklist', '0'), { kernelMapId: kept.mapId, drift: false });
  const listed = second.slots.listSlots('firewall', 'blocklist').map((s) => [s.slot, s.drift, s.mapId]);
  t.same(
    listed.sort((x, y) => Number(x[0]) - Number(y[0])),
    [[0, false, kept.mapId], [1, true, null], [2, true, fillerId], [3, true, intruderId]],
    'listSlots reports every drifted slot',
  );
  t.equal(kernelSlot(env, 'blocklist', u32(3)), intruderId, 'slot 3 keeps the intruder');
  t.equal(kernelSlot(env, 'blocklist', u32(2)), fillerId, 'slot 2 keeps what filled it');
  t.equal(kernelSlot(env, 'blocklist', u32(1)), null, 'slot 1 stays empty');
  t.same(pinsOf(env, 'blocklist', u32(3)), ['1'], 'the displaced version stays pinned');
  t.match(readRecord(env, 'blocklist', u32(3)), { active: 1, installedMapId: replaced.mapId }, 'the record still says what mimd installed');
  t.equal(readRecord(env, 'blocklist', u32(2)), undefined, 'no record is made for the foreign slot');
  t.equal(second.logged('slot changed behind mimd', { slot: 3 }).length, 1);
  t.equal(second.logged('slot changed behind mimd', { slot: 2 }).length, 1);
  await second.stop();

  // Still drift after another restart: a restart does not adopt it.
  const third = await boot(env);
  t.equal(third.summary.drifted, 3);
  t.match(third.slots.getSlot('firewall', 'blocklist', '3'), { kernelMapId: intruderId, drift: true });
  // Activating mimd's version again ends the drift.
  await third.slots.activate('firewall', 'blocklist', '3', 1);
  t.equal(kernelSlot(env, 'blocklist', u32(3)), replaced.mapId);
  t.match(third.slots.getSlot('firewall', 'blocklist', '3'), { drift: false });
});

// Every swap mimd makes is recorded as pending before the kernel is touched,
// so a retained version in the slot with no pending record can only have
// been put there by someone else, like any other change behind mimd's back.
// While mimd runs, getSlot() reports exactly this as drift.
t.test('a retained version put back into the slot behind mimd while it was stopped is drift', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  const v1 = await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  const v2 = await first.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  await first.stop();
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 2, pending: null });
  const retained = BpfMap.openPinned(versionPin(env, 'blocklist', u32(0), 1));
  t.teardown(() => retained.close());
  await setSlotBehindMimd(env, 'blocklist', u32(0), retained);

  const second = await boot(env);
  t.equal(kernelSlot(env, 'blocklist', u32(0)), v1.mapId, 'left as it is');
  t.match(second.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 2, kernelMapId: v1.mapId, installedMapId: v2.mapId, drift: true }, 'reported as drift');
  t.equal(second.summary.drifted, 1, 'counted as drift');
  t.match(readRecord(env, 'blocklist', u32(0)), { active: 2, installedMapId: v2.mapId }, 'the record still says what mimd installed');
});

t.test('a replaced outer map: slots whose inner maps fit are carried over', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '0', { ...listing(LISTED), labels: { feed: 'a' } });
  const b0 = await first.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  const b1 = await first.slots.putSlot('firewall', 'blocklist', '1', listing(LISTED));
  const p1 = await first.slots.putSlot('firewall', 'policy', '1', { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] });
  const before = first.slots.getSlot('firewall', 'blocklist', '0');
  const templateMaxEntries = first.slots.getMap('firewall', 'blocklist').innerTemplate.maxEntries;
  await first.stop();
  const oldBlocklist = pinnedId(outerPin(env, 'blocklist'));
  const oldPolicy = pinnedId(outerPin(env, 'policy'));
  // A slot of the old map filled by someone else: not mimd's to carry over.
  await setSlotBehindMimd(env, 'blocklist', u32(3), await foreignBlocklist(t, [OTHER]));

  // The record says the pinned blocklist was made with another inner template.
  const record = JSON.parse(fs.readFileSync(outerJson(env, 'blocklist'), 'utf8')) as OuterMapRecord;
  t.equal(record.mapId, oldBlocklist);
  fs.writeFileSync(outerJson(env, 'blocklist'), JSON.stringify({ ...record, innerTemplate: { ...record.innerTemplate, maxEntries: 1 } }));

  await t.rejects(boot(env, { onIncompatiblePin: 'refuse' }), { code: 'MIMD_CONFIG_MISMATCH', message: /innerTemplate\.maxEntries is 1 in the pin/ }, 'refused by default');
  t.equal(pinnedId(outerPin(env, 'blocklist')), oldBlocklist, 'the refused start left the pin');
  t.equal(kernelSlot(env, 'blocklist', u32(0)), b0.mapId, 'and the slot');

  const second = await boot(env, { onIncompatiblePin: 'replace' });
  t.match(second.summary, { carriedOver: 2, dropped: 1, drifted: 0 });
  const newBlocklist = pinnedId(outerPin(env, 'blocklist'));
  t.not(newBlocklist, oldBlocklist, 'a new outer map took over the pin');
  t.equal(second.slots.getMap('firewall', 'blocklist').mapId, newBlocklist);
  t.equal(kernelSlot(env, 'blocklist', u32(0)), b0.mapId, 'slot 0 carried over with its active version');
  t.equal(kernelSlot(env, 'blocklist', u32(1)), b1.mapId, 'slot 1 too');
  t.equal(kernelSlot(env, 'blocklist', u32(3)), null, 'the foreign inner map is not carried over');
  t.same(second.slots.getSlot('firewall', 'blocklist', '0'), { ...before, kernelMapId: b0.mapId }, 'versions, labels and the active one as before');
  t.match(second.slots.getSlot('firewall', 'blocklist', '1'), { activeVersion: 1, drift: false });
  t.throws(() => second.slots.getSlot('firewall', 'blocklist', '3'), { code: 'MIMD_NOT_FOUND' });
  t.equal(pinnedId(outerPin(env, 'policy')), oldPolicy, 'the matching policy map is reused');
  t.equal(kernelSlot(env, 'policy', u32(1)), p1.mapId);
  t.match(JSON.parse(fs.readFileSync(outerJson(env, 'blocklist'), 'utf8')), { mapId: newBlocklist, innerTemplate: { maxEntries: templateMaxEntries } }, 'the record describes the new map');
  t.equal(second.logged('carried slot over to the new outer map').length, 2);
  t.equal(second.logged("slot not carried over: its inner map is not one of mimd's versions", { slot: 3 }).length, 1);
  await second.stop();

  const third = await boot(env, { onIncompatiblePin: 'refuse' });
  t.equal(third.slots.getMap('firewall', 'blocklist').mapId, newBlocklist, 'the next start reuses the new map');
  t.match(third.summary, { carriedOver: 0, dropped: 0, drifted: 0, repaired: 0 });
  t.match(third.slots.getSlot('firewall', 'blocklist', '0'), { activeVersion: 2, kernelMapId: b0.mapId, drift: false });
});

t.test('a replaced outer map: slots whose inner maps do not fit are released and reported', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  await first.slots.stageVersion('firewall', 'blocklist', '1', listing(OTHER));
  const p1 = await first.slots.putSlot('firewall', 'policy', '1', { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] });
  await first.stop();
  const oldBlocklist = pinnedId(outerPin(env, 'blocklist'));
  const oldPolicy = pinnedId(outerPin(env, 'policy'));
  // Policy is replaced in the same start (its record differs) and fits.
  const record = JSON.parse(fs.readFileSync(outerJson(env, 'policy'), 'utf8')) as OuterMapRecord;
  fs.writeFileSync(outerJson(env, 'policy'), JSON.stringify({ ...record, innerTemplate: { ...record.innerTemplate, maxEntries: 7 } }));

  await t.rejects(boot(env, { object: INCOMPATIBLE_OBJECT }), { code: 'MIMD_CONFIG_MISMATCH', message: /innerTemplate\.flags/ });

  const second = await boot(env, { object: INCOMPATIBLE_OBJECT, onIncompatiblePin: 'replace' });
  t.match(second.summary, { carriedOver: 1, dropped: 1 });
  t.not(pinnedId(outerPin(env, 'blocklist')), oldBlocklist);
  t.not(pinnedId(outerPin(env, 'policy')), oldPolicy);
  t.equal(kernelSlot(env, 'blocklist', u32(0)), null, 'the misfit is not in the new map');
  t.same(second.slots.listSlots('firewall', 'blocklist'), []);
  t.throws(() => second.slots.getSlot('firewall', 'blocklist', '0'), { code: 'MIMD_NOT_FOUND' });
  t.throws(() => second.slots.getSlot('firewall', 'blocklist', '1'), { code: 'MIMD_NOT_FOUND' });
  t.same(pinsOf(env, 'blocklist', u32(0)), [], 'versions that cannot fit are unpinned');
  t.same(pinsOf(env, 'blocklist', u32(1)), [], 'staged ones too');
  t.same(
    new FileStateStore(env.stateDir).readSlots('firewall', 'blocklist').map((r) => ({ versions: r.versions, installedMapId: r.installedMapId, active: r.active })),
    [
      { versions: [], installedMapId: null, active: null },
      { versions: [], installedMapId: null, active: null },
    ],
    'their records keep only the numbering',
  );
  t.equal(second.logged('slot does not fit the new inner template', { slot: 0, field: 'innerTemplate.flags' }).length, 1, 'the misfit is logged with the field');
  t.equal(second.logged('released a version that does not fit the new inner template').length, 2);
  t.equal(kernelSlot(env, 'policy', u32(1)), p1.mapId, 'policy slot 1 carried over');
  t.match(second.slots.getSlot('firewall', 'policy', '1'), { activeVersion: 1, kernelMapId: p1.mapId, drift: false });

  // The new template works: a PUT builds a version that fits it.
  const put = await second.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  t.equal(kernelSlot(env, 'blocklist', u32(0)), put.mapId);
  const built = BpfMap.openPinned(versionPin(env, 'blocklist', u32(0), put.version));
  t.teardown(() => built.close());
  t.equal(built.info().flags & MapFlag.NO_PREALLOC, MapFlag.NO_PREALLOC);
});

t.test('an outer map whose pin was removed while mimd was stopped gets the active versions back', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '2', { ...listing(LISTED), labels: { owner: 'ops' } });
  const staged = await first.slots.stageVersion('firewall', 'blocklist', '2', listing(OTHER));
  const active = first.slots.getSlot('firewall', 'blocklist', '2');
  const oldOuter = pinnedId(outerPin(env, 'blocklist'));
  await first.stop();
  fs.rmSync(outerPin(env, 'blocklist'));

  const second = await boot(env);
  t.not(pinnedId(outerPin(env, 'blocklist')), oldOuter, 'a new outer map is pinned');
  t.equal(kernelSlot(env, 'blocklist', u32(2)), active.kernelMapId, 'the active version is in the new map');
  t.match(second.slots.getSlot('firewall', 'blocklist', '2'), { activeVersion: 1, drift: false, kernelMapId: active.kernelMapId });
  t.same(numbers(second, 'blocklist', '2'), [staged.version, 1], 'the staged version stays');
  t.match(second.summary, { carriedOver: 1, drifted: 0 });
  t.equal(second.logged('put the active version back into a new outer map (its pin was gone)').length, 1);
});

t.test('numbering goes on after every version of a slot was released by a replacement', async (t) => {
  const env = environment(t);
  const first = await boot(env);
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  await first.slots.putSlot('firewall', 'blocklist', '0', listing(OTHER));
  await first.stop();
  const second = await boot(env, { object: INCOMPATIBLE_OBJECT, onIncompatiblePin: 'replace' });
  await second.stop();
  const third = await boot(env, { object: INCOMPATIBLE_OBJECT });
  const put = await third.slots.putSlot('firewall', 'blocklist', '0', listing(LISTED));
  t.equal(put.version, 3, 'numbers already handed out are not handed out again');
});
