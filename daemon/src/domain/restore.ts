// Restoring an outer map's slots at start, from three sources that a crash or
// an operator may have left disagreeing:
//   - the kernel: which inner map is in each slot. Always the truth.
//   - the version pins under <pinRoot>/<object>/slots/<map>/<slot>/<n>.
//   - the slot records in the state directory (numbers, labels, history).
// A version needs both its pin and its record; either alone is garbage from
// an interrupted build or release and is removed (and logged). A change a
// crash left pending is finished or abandoned by what the kernel's slot holds.
// A slot holding something mimd did not install is drift: reported, kept.
// A record that contradicts itself (numbering below its own versions, an
// active version it does not have) is repaired from the pins and the kernel.
// Nothing here lets a retained version go for retention's sake: that happens
// only when a version is made.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { KernelMap, KernelOuterMap, MapStore } from './ports';
import type { SlotRecord, StateStore } from './state';
import type { OuterMap } from './outer-map';
import type { Slot, Version } from './slot';

export interface RestoreSummary {
  /** slots with a record or versions after the restore */
  slots: number;
  versions: number;
  /** slots whose kernel content is not what mimd installed */
  drifted: number;
  /** pins, records and pending changes settled */
  repaired: number;
  /** slots put into a replacing outer map */
  carriedOver: number;
  /** slots that could not be carried over to a replacing (or new) outer map */
  dropped: number;
}

export interface RestoreContext {
  kernel: MapStore;
  state: StateStore;
  retain: number;
  log: Logger;
}

const VERSION_PIN = /^[1-9][0-9]{0,14}$/;

/** Version pins found on bpffs, per slot key (hex). */
function findPins(ctx: RestoreContext, outer: OuterMap): Map<string, Map<number, string>> {
  const keyPattern = new RegExp(`^[0-9a-f]{${outer.keySize * 2}}$`);
  const pins = new Map<string, Map<number, string>>();
  for (const dir of ctx.kernel.listPins(outer.pinDir)) {
    const dirPath = path.posix.join(outer.pinDir, dir.name);
    if (!dir.directory || !keyPattern.test(dir.name)) {
      ctx.log.warn({ map: outer.ref, path: dirPath }, 'left alone: not a slot directory of mimd');
      continue;
    }
    const versions = new Map<number, string>();
    for (const pin of ctx.kernel.listPins(dirPath)) {
      const pinPath = path.posix.join(dirPath, pin.name);
      if (pin.directory || !VERSION_PIN.test(pin.name)) {
        ctx.log.warn({ map: outer.ref, path: pinPath }, 'left alone: not a version pin of mimd');
        continue;
      }
      versions.set(Number(pin.name), pinPath);
    }
    pins.set(dir.name, versions);
  }
  return pins;
}

/**
 * `replacing`: the pinned outer map this one replaces. `fresh`: the outer map
 * was just created although records exist (its pin was removed while mimd was
 * stopped): the slots' active versions are put back into it.
 */
export async function restoreOuterMap(
  ctx: RestoreContext,
  outer: OuterMap,
  replacing: KernelOuterMap | null,
  fresh = false,
): Promise<RestoreSummary> {
  const summary: RestoreSummary = { slots: 0, versions: 0, drifted: 0, repaired: 0, carriedOver: 0, dropped: 0 };
  const records = new Map(ctx.state.readSlots(outer.object, outer.name).map((r) => [r.key, r]));
  const pins = findPins(ctx, outer);
  // Where the slots are now: the pinned map being replaced, or the one in use.
  const current = replacing ?? outer.handle;

  const keys = [...new Set([...records.keys(), ...pins.keys()])].sort();
  for (const keyHex of keys) {
    const slot = outer.slot(Buffer.from(keyHex, 'hex'));
    const record = records.get(keyHex) ?? null;
    const changed = restoreSlot(ctx, outer, slot, record, pins.get(keyHex) ?? new Map(), current, summary, fresh);
    let save = changed;
    if (replacing && (await carryOver(ctx, outer, slot, current, summary))) save = true;
    if (fresh && (await reinstall(ctx, outer, slot, summary))) save = true;
    // Retention lets versions go only when a version is made, never at a
    // restart: the one exception finishes the release of a PUT a crash
    // interrupted after the kernel took its new version.
    const pending = record?.pending;
    const finishedPut = pending?.op === 'activate' && pending.discardOnAbort && slot.active === pending.version;
    const released = finishedPut ? slot.beyondRetention(ctx.retain) : [];
    for (const version of released) {
      slot.forget(version);
      outer.discard(version);
      ctx.log.info({ map: outer.ref, slot: slot.keyJson, version: version.number }, 'released version beyond retention');
    }
    if (released.length > 0) save = true;
    if (save) await saveSlot(ctx, outer, slot);
    if (!slot.unused) {
      summary.slots += 1;
      summary.versions += slot.versions.size;
      if (current.innerId(slot.key) !== slot.installedMapId && !replacing && !fresh) summary.drifted += 1;
    }
  }

  // Slots filled behind mimd's back, with nothing of mimd's in them.
  for (const key of outer.occupiedKeys(current)) {
    if (outer.knownSlot(key)) continue;
    const slotJson = outer.slotCodec.decode(key);
    if (replacing) {
      summary.dropped += 1;
      ctx.log.warn({ map: outer.ref, slot: slotJson, kernelMapId: current.innerId(key) }, 'slot not carried over: its inner map is not one of mimd\'s versions');
    } else {
      summary.drifted += 1;
      ctx.log.warn({ map: outer.ref, slot: slotJson, kernelMapId: current.innerId(key), installedMapId: null }, 'slot changed behind mimd');
    }
  }
  return summary;
}

/** Rebuilds one slot from its record and pins; returns whether the record needs rewriting. */
function restoreSlot(
  ctx: RestoreContext,
  outer: OuterMap,
  slot: Slot,
  record: SlotRecord | null,
  pins: Map<number, string>,
  current: KernelOuterMap,
  summary: RestoreSummary,
  fresh: boolean,
): boolean {
  let changed = false;
  const where = { map: outer.ref, slot: slot.keyJson };
  // Every number the record or bpffs shows, before pins are removed below.
  const highest = highestNumber(record, pins);
  if (record) {
    slot.lastVersion = record.lastVersion;
    slot.active = record.active;
    slot.installedMapId = record.installedMapId;
    slot.history.push(...record.history);
    slot.pending = record.pending;
  }
  for (const versionRecord of record?.versions ?? []) {
    if (slot.versions.has(versionRecord.number)) {
      ctx.log.warn({ ...where, version: versionRecord.number }, 'a version is recorded twice; the first record of it is kept');
      summary.repaired += 1;
      changed = true;
      continue;
    }
    const pinPath = pins.get(versionRecord.number);
    pins.delete(versionRecord.number);
    let map: KernelMap | null = null;
    if (pinPath !== undefined) {
      try {
        map = ctx.kernel.openPinnedMap(pinPath);
      } catch (err) {
        ctx.log.warn({ ...where, version: versionRecord.number, err }, 'cannot open a version pin');
      }
    }
    if (!map || pinPath === undefined) {
      ctx.log.warn({ ...where, version: versionRecord.number }, 'forgot a recorded version whose pin is gone');
      summary.repaired += 1;
      changed = true;
      if (slot.active === versionRecord.number) slot.active = null;
      continue;
    }
    if (map.id !== versionRecord.mapId) {
      ctx.log.warn({ ...where, version: versionRecord.number, recordedMapId: versionRecord.mapId, mapId: map.id }, 'a version pin holds another map than recorded; the pin is kept');
      if (slot.installedMapId === versionRecord.mapId && slot.active === versionRecord.number) slot.installedMapId = map.id;
      summary.repaired += 1;
      changed = true;
    }
    slot.versions.set(versionRecord.number, outer.adopt(slot, versionRecord, map, pinPath));
  }
  // Pins without a record: built, never recorded (a crash before the record), never reported.
  for (const [number, pinPath] of pins) {
    ctx.kernel.unpin(pinPath);
    ctx.log.warn({ ...where, version: number, path: pinPath }, 'removed a version pin with no record');
    summary.repaired += 1;
  }
  if (pins.size > 0) ctx.kernel.removeEmptyPinDir(outer.slotPinDir(slot));

  const inSlot = current.innerId(slot.key);
  if (repairRecord(ctx, slot, highest, inSlot, where)) {
    summary.repaired += 1;
    changed = true;
  }
  if (slot.pending) {
    settlePending(ctx, outer, slot, inSlot);
    summary.repaired += 1;
    changed = true;
  }
  // Every swap mimd makes is recorded as pending first, so anything else in
  // the slot (even one of mimd's own versions) was put there by someone else.
  if (inSlot !== slot.installedMapId && !fresh) {
    ctx.log.warn({ ...where, kernelMapId: inSlot, installedMapId: slot.installedMapId }, 'slot changed behind mimd');
  }
  return changed;
}

/** The highest version number a slot's record or its pins on bpffs show (0: none). */
function highestNumber(record: SlotRecord | null, pins: ReadonlyMap<number, string>): number {
  const pending = record?.pending?.op === 'activate' ? record.pending.version : 0;
  return Math.max(
    0,
    record?.lastVersion ?? 0,
    record?.active ?? 0,
    pending,
    ...(record?.history ?? []),
    ...(record?.versions.map((v) => v.number) ?? []),
    ...pins.keys(),
  );
}

/**
 * Settles what a record says against itself, the pins and the kernel (an
 * edited or damaged record): the numbering is raised to every number in use,
 * so that the next version can never take (and unpin) a kept one's number, and
 * an active version that is not among the versions is replaced by the version
 * the kernel's slot holds, or none. Returns whether anything was repaired.
 */
function repairRecord(ctx: RestoreContext, slot: Slot, highest: number, inSlot: number | null, where: object): boolean {
  let repaired = false;
  if (highest > slot.lastVersion) {
    ctx.log.warn({ ...where, recordedLastVersion: slot.lastVersion, lastVersion: highest }, 'raised the last version number to the highest one in use');
    slot.lastVersion = highest;
    repaired = true;
  }
  if (slot.active !== null && !slot.versions.has(slot.active)) {
    const held = [...slot.versions.values()].find((v) => v.mapId === inSlot) ?? null;
    ctx.log.warn(
      { ...where, recordedActive: slot.active, active: held?.number ?? null, kernelMapId: inSlot },
      'the recorded active version is not one of the slot\'s versions; set to what the kernel\'s slot holds',
    );
    slot.active = held?.number ?? null;
    if (held) slot.installedMapId = held.mapId;
    repaired = true;
  }
  return repaired;
}

/** Finishes or abandons the change a crash interrupted, by what the kernel's slot holds. */
function settlePending(ctx: RestoreContext, outer: OuterMap, slot: Slot, inSlot: number | null): void {
  const pending = slot.pending;
  slot.pending = null;
  if (!pending) return;
  const where = { map: outer.ref, slot: slot.keyJson, op: pending.op };
  switch (pending.op) {
    case 'activate': {
      const version = slot.versions.get(pending.version);
      if (version && inSlot === version.mapId) {
        slot.markActive(version, new Date());
        ctx.log.warn({ ...where, version: version.number }, 'finished a swap a crash interrupted');
        return;
      }
      ctx.log.warn({ ...where, version: pending.version }, 'abandoned a swap a crash interrupted before the kernel had it');
      if (pending.discardOnAbort && version) {
        // Built for that swap and never reported: as if the request never
        // came, but its number stays used (numbers are never handed out twice).
        slot.forget(version);
        outer.discard(version);
      }
      return;
    }
    case 'clear':
      if (inSlot === null) {
        slot.markEmpty();
        ctx.log.warn(where, 'finished emptying a slot a crash interrupted');
      } else {
        ctx.log.warn(where, 'abandoned emptying a slot a crash interrupted before the kernel had it');
      }
      return;
    case 'patch': {
      const version = slot.activeVersion();
      if (version) {
        version.entryCount = outer.countEntries(version);
        ctx.log.warn({ ...where, version: version.number, entries: version.entryCount }, 'recounted the entries of a version a crash interrupted a patch of');
      }
      return;
    }
  }
}

/**
 * The outer map was replaced (its inner template changed): puts the slot's
 * inner map into the new outer map if it fits the new template; versions that
 * do not fit can never be activated again and are released.
 */
async function carryOver(ctx: RestoreContext, outer: OuterMap, slot: Slot, old: KernelOuterMap, summary: RestoreSummary): Promise<boolean> {
  const where = { map: outer.ref, slot: slot.keyJson };
  let changed = false;
  const misfits: Version[] = [];
  for (const version of slot.versions.values()) {
    const misfit = outer.misfit(version.map);
    if (misfit) misfits.push(version);
  }
  const inSlot = old.innerId(slot.key);
  const active = [...slot.versions.values()].find((v) => v.mapId === inSlot) ?? null;
  let refused: unknown = null;
  if (active && !misfits.includes(active)) {
    try {
      await outer.handle.setInner(slot.key, active.map);
    } catch (err) {
      // e.g. the new outer map has fewer slots
      refused = err;
    }
  }
  if (active && !misfits.includes(active) && refused === null) {
    if (slot.installedMapId !== active.mapId || slot.active !== active.number) slot.markActive(active, new Date());
    summary.carriedOver += 1;
    ctx.log.info({ ...where, version: active.number, mapId: active.mapId }, 'carried slot over to the new outer map');
  } else if (refused !== null) {
    ctx.log.warn({ ...where, kernelMapId: inSlot, err: (refused as Error).message }, 'slot not carried over: the new outer map refused it');
    summary.dropped += 1;
    slot.markEmpty();
    changed = true;
  } else if (inSlot !== null) {
    const misfit = active ? outer.misfit(active.map) : null;
    ctx.log.warn(
      { ...where, kernelMapId: inSlot, ...(misfit ? { field: `innerTemplate.${misfit.field}`, found: misfit.found, wanted: misfit.wanted } : {}) },
      active ? 'slot does not fit the new inner template' : "slot not carried over: its inner map is not one of mimd's versions",
    );
    summary.dropped += 1;
    slot.markEmpty();
    changed = true;
  } else if (slot.installedMapId !== null) {
    slot.markEmpty();
    changed = true;
  }
  for (const version of misfits) {
    slot.forget(version);
    outer.discard(version);
    ctx.log.warn({ ...where, version: version.number }, 'released a version that does not fit the new inner template');
    changed = true;
  }
  return changed;
}

/**
 * The outer map is new and empty while records say what was in its slots:
 * nothing in the kernel contradicts them, so the active versions go back in
 * and the programs enforce what they did before.
 */
async function reinstall(ctx: RestoreContext, outer: OuterMap, slot: Slot, summary: RestoreSummary): Promise<boolean> {
  const where = { map: outer.ref, slot: slot.keyJson };
  const version = slot.activeVersion();
  if (!version || slot.installedMapId === null) {
    if (slot.installedMapId === null) return false;
    slot.markEmpty();
    return true;
  }
  try {
    await outer.handle.setInner(slot.key, version.map);
  } catch (err) {
    ctx.log.warn({ ...where, version: version.number, err: (err as Error).message }, 'cannot put a version back into the new outer map');
    slot.markEmpty();
    summary.dropped += 1;
    return true;
  }
  const changed = slot.installedMapId !== version.mapId;
  slot.installedMapId = version.mapId;
  summary.carriedOver += 1;
  ctx.log.warn({ ...where, version: version.number, mapId: version.mapId }, 'put the active version back into a new outer map (its pin was gone)');
  return changed;
}

async function saveSlot(ctx: RestoreContext, outer: OuterMap, slot: Slot): Promise<void> {
  const record = slot.record();
  if (isEmptyRecord(record)) {
    await ctx.state.removeSlot(outer.object, outer.name, record.key);
  } else {
    await ctx.state.writeSlot(outer.object, outer.name, record);
  }
}

/** A record that says nothing worth keeping; one with a version number keeps the numbering going. */
export function isEmptyRecord(record: SlotRecord): boolean {
  return record.versions.length === 0 && record.installedMapId === null && record.pending === null && record.lastVersion === 0;
}
