// SlotsService: the operations of the hot-swap API on the managed outer maps.
// Every write to a slot runs in that slot's serial queue; every outer-map
// update goes through the one SwapQueue. After any error nothing has changed:
// versions are built (and removed again on failure) before the slot is
// touched, and version numbers are taken only when the write succeeds.
//
// Every change is recorded (state.ts) so that a restart carries on: a change
// to a slot is written as pending before the kernel is touched and as done
// after, and restore() settles what a crash left pending by asking the kernel
// what is in the slot.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { InnerMapDefinition, KernelOuterMap, MapStore } from './ports';
import type { PendingChange, StateStore } from './state';
import { isEmptyRecord, restoreOuterMap, type RestoreSummary } from './restore';
import type {
  ClearResult,
  EntryPage,
  Expectation,
  OuterMapDetail,
  OuterMapView,
  PatchBody,
  PatchResult,
  SlotDetail,
  SlotsApi,
  SlotSummary,
  SwapResult,
  DumpFormat,
  VersionInput,
  VersionView,
} from './slots-api';
import { isUpload } from './slots-api';
import { OuterMap, digest } from './outer-map';
import type { VersionContent } from './entry-stream';
import { mapCodecs } from './map-codecs';
import type { BtfTable } from './btf';
import type { MapCodecConfig } from '../config/schema';
import type { Slot, Version } from './slot';
import type { SwapQueue } from './swap-queue';
import {
  badInput,
  fromKernel,
  mimdError,
  NoRollbackTargetError,
  NotFoundError,
  OuterMapFullError,
  PreconditionFailedError,
  StateWriteError,
  templateViolation,
} from './errors';

/** A map-in-map map of a loaded object, handed over by the host. */
export interface ManagedMapSource {
  object: string;
  name: string;
  type: string;
  keySize: number;
  /** BTF type id of the outer key (0: none) */
  keyTypeId: number;
  maxEntries: number;
  inner: InnerMapDefinition;
  handle: KernelOuterMap;
  /** the object's BTF, for typed keys and values */
  btf: BtfTable | null;
  /** formats and defaults from the configuration */
  codec: MapCodecConfig | undefined;
  /** where those settings are in the configuration: objects[0].maps.policy */
  field: string;
  /** where the outer map is pinned */
  pinPath: string | null;
  /**
   * The pinned outer map this one replaces (its inner template changed): its
   * slots are carried over by restore() where their inner maps fit.
   */
  replacing: KernelOuterMap | null;
  /** the outer map was created by this start (no pin was there) */
  fresh?: boolean;
}

export interface SlotsServiceOptions {
  maps: ManagedMapSource[];
  kernel: MapStore;
  swaps: SwapQueue;
  /** versions kept besides the active one */
  retain: number;
  pinRoot: string;
  state: StateStore;
  logger: Logger;
  /** whether the host is up (objects loaded, programs attached) */
  ready: () => boolean;
  /**
   * Test seam for crash tests: the first time a change reaches this point
   * (build:created, build:filled, build:pinned, swap:intent, swap:applied,
   * swap:recorded, clear:intent, clear:applied) it logs and never goes on.
   */
  pauseAt?: string | undefined;
}



export class SlotsService implements SlotsApi {
  private readonly maps = new Map<string, OuterMap>();
  private readonly replacing = new Map<OuterMap, KernelOuterMap>();
  private readonly fresh = new Set<OuterMap>();
  private readonly log: Logger;
  private closed = false;
  private paused = false;

  constructor(private readonly options: SlotsServiceOptions) {
    this.log = options.logger;
    const checkpoint = (point: string): Promise<void> => this.checkpoint(point);
    for (const source of options.maps) {
      const pinDir = path.posix.join(this.slotsPinRoot(source.object), source.name);
      const outer = new OuterMap({ ...source, template: source.inner, kernel: options.kernel, pinDir, codecs: mapCodecs(source), checkpoint });
      this.maps.set(`${source.object}/${source.name}`, outer);
      if (source.replacing) this.replacing.set(outer, source.replacing);
      if (source.fresh) this.fresh.add(outer);
    }
  }

  /**
   * Carries on from what an earlier run left: every slot's versions from
   * their pins and records, settled against what the kernel holds (see
   * restore.ts). Call once, before the programs are attached or updated.
   */
  async restore(): Promise<RestoreSummary> {
    const total: RestoreSummary = { slots: 0, versions: 0, drifted: 0, repaired: 0, carriedOver: 0, dropped: 0 };
    for (const outer of this.maps.values()) {
      const summary = await restoreOuterMap(
        { kernel: this.options.kernel, state: this.options.state, retain: this.options.retain, log: this.log },
        outer,
        this.replacing.get(outer) ?? null,
        this.fresh.has(outer),
      );
      for (const k of Object.keys(total) as (keyof RestoreSummary)[]) total[k] += summary[k];
    }
    // The slots are carried over: what still holds the replaced maps is the
    // old program alone, and they go with it when the link gets the new one.
    for (const replaced of this.replacing.values()) replaced.close();
    this.replacing.clear();
    return total;
  }

  private slotsPinRoot(object: string): string {
    return path.posix.join(this.options.pinRoot, object, 'slots');
  }

  ready(): boolean {
    return !this.closed && this.options.ready();
  }

  // ---- reads ---------------------------------------------------------------

  listMaps(): OuterMapView[] {
    return [...this.maps.values()].map((m) => m.view());
  }

  getMap(object: string, map: string): OuterMapDetail {
    const outer = this.outer(object, map);
    return {
      ...outer.view(),
      slots: this.slotSummaries(outer),
      schema: { slot: outer.slotCodec.schema(), key: outer.entryCodec.key.schema(), value: outer.entryCodec.value.schema() },
    };
  }

  listSlots(object: string, map: string): SlotSummary[] {
    return this.slotSummaries(this.outer(object, map));
  }

  getSlot(object: string, map: string, slotParam: string): SlotDetail {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    const kernelMapId = outer.handle.innerId(key);
    const slot = outer.knownSlot(key);
    if ((!slot || slot.unused) && kernelMapId === null) throw this.unknownSlot(outer, slotParam);
    return {
      slot: outer.slotCodec.decode(key),
      activeVersion: slot?.active ?? null,
      kernelMapId,
      installedMapId: slot?.installedMapId ?? null,
      drift: kernelMapId !== (slot?.installedMapId ?? null),
      versions: slot?.views() ?? [],
    };
  }

  listVersions(object: string, map: string, slotParam: string): VersionView[] {
    const { slot } = this.existingSlot(object, map, slotParam);
    return slot.views();
  }

  readEntries(object: string, map: string, slotParam: string, page: { limit: number; cursor?: string; version?: number }): EntryPage {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    const version = page.version === undefined ? this.activeOf(outer, slot) : this.versionOf(outer, slot, page.version);
    return outer.readEntries(version.map, page.limit, page.cursor);
  }

  dumpEntries(object: string, map: string, slotParam: string, format: DumpFormat, number?: number): AsyncIterable<Buffer> {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    const version = number === undefined ? this.activeOf(outer, slot) : this.versionOf(outer, slot, number);
    return outer.dumpEntries(version.map, format);
  }

  // ---- writes --------------------------------------------------------------

  /**
   * A JSON body is checked whole now, before anything waits in the slot's
   * queue; a stream is checked as the fill reads it, in the queue.
   */
  private content(outer: OuterMap, body: VersionInput): VersionContent {
    return isUpload(body) ? outer.streamContent(body) : outer.encode(body);
  }

  async putSlot(object: string, map: string, slotParam: string, body: VersionInput, expect?: Expectation): Promise<SwapResult> {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    const content = this.content(outer, body);
    const slot = outer.slot(key);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      const version = await this.buildNext(outer, slot, content);
      try {
        return await this.swapIn(outer, slot, version, true);
      } catch (err) {
        outer.discard(version);
        throw err;
      }
    });
  }

  async stageVersion(object: string, map: string, slotParam: string, body: VersionInput): Promise<VersionView> {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    const content = this.content(outer, body);
    const slot = outer.slot(key);
    return slot.writes.run(async () => {
      const version = await this.buildNext(outer, slot, content);
      const lastVersion = slot.lastVersion;
      this.keep(slot, version);
      const released = slot.beyondRetention(this.options.retain);
      try {
        await this.save(outer, slot, released);
      } catch (err) {
        slot.forget(version);
        slot.lastVersion = lastVersion;
        outer.discard(version);
        throw err;
      }
      this.release(outer, slot, released);
      this.log.info({ map: outer.ref, slot: slot.keyJson, version: version.number, mapId: version.mapId, entries: version.entryCount }, 'staged version');
      return slot.view(version);
    });
  }

  async activate(object: string, map: string, slotParam: string, number: number, expect?: Expectation): Promise<SwapResult> {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      return this.swapIn(outer, slot, this.versionOf(outer, slot, number), false);
    });
  }

  async rollback(object: string, map: string, slotParam: string, number?: number, expect?: Expectation): Promise<SwapResult> {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      const target = number === undefined ? slot.rollbackTarget() : this.versionOf(outer, slot, number);
      if (!target) {
        throw mimdError(NoRollbackTargetError, `${outer.ref} slot ${slotParam}: no earlier active version is retained to roll back to`);
      }
      return this.swapIn(outer, slot, target, false);
    });
  }

  async patchEntries(object: string, map: string, slotParam: string, body: PatchBody, expect?: Expectation): Promise<PatchResult> {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    const upsert = body.upsert ?? [];
    const remove = body.delete ?? [];
    if (upsert.length === 0 && remove.length === 0) throw badInput('upsert', 'expected at least one entry to upsert or delete');
    if (remove.length > 0 && outer.arrayInner) {
      throw templateViolation('delete', `entries of an ${outer.template.type} inner map cannot be deleted, only overwritten`);
    }
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      const version = this.activeOf(outer, slot);
      const upserts = upsert.map((entry, i) => ({
        key: outer.encodeKey(entry.key, `upsert[${i}].key`, version.maxEntries),
        value: outer.entryCodec.value.encode(entry.value, `upsert[${i}].value`),
      }));
      const deletes = remove.map((key, i) => outer.encodeKey(key, `delete[${i}]`, version.maxEntries));
      refuseUpsertAndDelete(upserts, deletes);
      return this.applyPatch(outer, slot, version, upserts, deletes);
    });
  }

  async clearSlot(object: string, map: string, slotParam: string, expect?: Expectation): Promise<ClearResult> {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    // A slot filled behind mimd's back can be emptied too.
    if ((outer.knownSlot(key)?.unused ?? true) && outer.handle.innerId(key) === null) throw this.unknownSlot(outer, slotParam);
    const slot = outer.slot(key);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      const previousVersion = slot.active;
      const previousMapId = outer.handle.innerId(slot.key);
      if (previousMapId !== null) {
        await this.begin(outer, slot, { op: 'clear' });
        await this.checkpoint('clear:intent');
        try {
          await this.options.swaps.clear(outer.handle, slot.key);
        } catch (err) {
          await this.abandon(outer, slot);
          throw this.swapError(err, outer, slot);
        }
        await this.checkpoint('clear:applied');
      }
      slot.markEmpty();
      await this.finish(outer, slot);
      this.log.info({ map: outer.ref, slot: slot.keyJson, previousVersion }, 'emptied slot');
      return { slot: slot.keyJson, previousVersion, previousMapId };
    });
  }

  /**
   * Closes every handle. The pins stay, and with them every version and what
   * is in every slot: a restart carries on from them (the host removes them
   * when mimd is told to remove what it owns).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const outer of this.maps.values()) outer.close();
    for (const replaced of this.replacing.values()) replaced.close();
    this.replacing.clear();
  }

  // ---- the steps -----------------------------------------------------------

  /** Builds the slot's next version; its number is taken only by keep(). */
  private buildNext(outer: OuterMap, slot: Slot, content: VersionContent): Promise<Version> {
    return outer.build(slot, slot.lastVersion + 1, content);
  }

  private keep(slot: Slot, version: Version): void {
    slot.versions.set(version.number, version);
    slot.lastVersion = Math.max(slot.lastVersion, version.number);
  }

  /**
   * Puts `version` into the slot through the swap queue, then updates the
   * records. `fresh`: the version was built for this swap (PUT) and is
   * forgotten again if the swap does not happen.
   */
  private async swapIn(outer: OuterMap, slot: Slot, version: Version, fresh: boolean): Promise<SwapResult> {
    const previousVersion = slot.active;
    const before = outer.handle.innerId(slot.key);
    let swapMs = 0;
    // Already in the slot as mimd installed it: nothing to swap.
    if (!(previousVersion === version.number && before === version.mapId)) {
      const lastVersion = slot.lastVersion;
      if (fresh) this.keep(slot, version);
      const undo = (): void => {
        if (fresh) {
          slot.forget(version);
          slot.lastVersion = lastVersion;
        }
      };
      try {
        await this.begin(outer, slot, { op: 'activate', version: version.number, discardOnAbort: fresh });
      } catch (err) {
        undo();
        throw err;
      }
      await this.checkpoint('swap:intent');
      try {
        ({ swapMs } = await this.options.swaps.set(outer.handle, slot.key, version.map));
      } catch (err) {
        undo();
        await this.abandon(outer, slot);
        throw this.swapError(err, outer, slot);
      }
      await this.checkpoint('swap:applied');
    }
    this.keep(slot, version);
    slot.markActive(version, new Date());
    // Retention lets versions go only when a new one is made: an activation
    // or a rollback of a kept version drops nothing.
    const released = fresh ? slot.beyondRetention(this.options.retain) : [];
    await this.finish(outer, slot, released);
    await this.checkpoint('swap:recorded');
    this.release(outer, slot, released);
    this.log.info(
      { map: outer.ref, slot: slot.keyJson, version: version.number, previousVersion, mapId: version.mapId, swapMs },
      'swapped slot',
    );
    return {
      slot: slot.keyJson,
      version: version.number,
      previousVersion,
      mapId: version.mapId,
      previousMapId: before,
      entryCount: version.entryCount,
      digest: version.digest,
      swapMs,
      created: before === null,
    };
  }

  private async applyPatch(
    outer: OuterMap,
    slot: Slot,
    version: Version,
    upserts: { key: Buffer; value: Buffer }[],
    deletes: Buffer[],
  ): Promise<PatchResult> {
    const map = version.map;
    // What the touched keys hold now (exactly: not a covering prefix), to put
    // back if the kernel refuses midway.
    const present = outer.presence(map);
    const before = new Map<string, Buffer | null>();
    for (const key of [...upserts.map((u) => u.key), ...deletes]) {
      before.set(key.toString('hex'), present(key) ? map.lookup(key) : null);
    }
    // No key is in both lists (refused before), and keys are canonical, so
    // these two sets are disjoint and the count is exactly the kernel's.
    const added = new Set(upserts.filter((u) => before.get(u.key.toString('hex')) === null).map((u) => u.key.toString('hex')));
    const removed = new Set(deletes.filter((k) => before.get(k.toString('hex')) !== null).map((k) => k.toString('hex')));
    const entryCount = outer.arrayInner ? version.entryCount : version.entryCount + added.size - removed.size;
    if (entryCount > version.maxEntries) {
      throw templateViolation('upsert', `${entryCount} entries would exceed the inner map's maxEntries ${version.maxEntries}`);
    }
    await this.begin(outer, slot, { op: 'patch' });
    try {
      for (const { key, value } of upserts) await map.update(key, value);
      for (const key of deletes) await map.delete(key);
    } catch (err) {
      // An entry that could not be put back leaves the map as no count says: count it.
      if (!(await this.putBack(map, before, outer, slot))) version.entryCount = outer.countEntries(version);
      await this.abandon(outer, slot);
      throw fromKernel(err, `patching ${outer.ref} slot ${String(slot.keyJson)}`);
    }
    version.entryCount = entryCount;
    await this.finish(outer, slot);
    this.log.info({ map: outer.ref, slot: slot.keyJson, version: version.number, upserted: upserts.length, deleted: removed.size }, 'patched entries');
    const change = digest(...upserts.flatMap((u) => [u.key, u.value]), ...deletes);
    return { slot: slot.keyJson, version: version.number, upserted: upserts.length, deleted: removed.size, entryCount, digest: change };
  }

  /** Puts the touched keys back as they were; false when the kernel refused one. */
  private async putBack(map: Version['map'], before: Map<string, Buffer | null>, outer: OuterMap, slot: Slot): Promise<boolean> {
    let whole = true;
    for (const [id, value] of before) {
      const key = Buffer.from(id, 'hex');
      try {
        if (value === null) await map.delete(key);
        else await map.update(key, value);
      } catch (err) {
        this.log.error({ err, map: outer.ref, slot: slot.keyJson, key: id }, 'cannot restore an entry after a failed patch');
        whole = false;
      }
    }
    return whole;
  }

  /** Lets go of versions beyond retention: unpinned and closed, freed once no slot holds them. */
  private release(outer: OuterMap, slot: Slot, versions: readonly Version[]): void {
    for (const version of versions) {
      slot.forget(version);
      outer.discard(version);
      this.log.debug({ map: outer.ref, slot: slot.keyJson, version: version.number }, 'released version');
    }
  }

  // ---- records -------------------------------------------------------------

  /** Records a change as pending before the kernel is touched. A failure leaves everything as it was. */
  private async begin(outer: OuterMap, slot: Slot, change: PendingChange): Promise<void> {
    slot.pending = change;
    try {
      await this.save(outer, slot);
    } catch (err) {
      slot.pending = null;
      throw err;
    }
  }

  /** Records that the pending change is done. The kernel has changed: a failure here is logged, not returned (restore() settles it). */
  private async finish(outer: OuterMap, slot: Slot, released: readonly Version[] = []): Promise<void> {
    slot.pending = null;
    try {
      await this.save(outer, slot, released);
    } catch (err) {
      this.log.error({ err, map: outer.ref, slot: slot.keyJson }, 'cannot record a completed change; a restart settles it from the kernel');
    }
  }

  /** Records that the pending change did not happen. */
  private async abandon(outer: OuterMap, slot: Slot): Promise<void> {
    slot.pending = null;
    try {
      await this.save(outer, slot);
    } catch (err) {
      this.log.error({ err, map: outer.ref, slot: slot.keyJson }, 'cannot record an abandoned change; a restart settles it from the kernel');
    }
  }

  private async save(outer: OuterMap, slot: Slot, released: readonly Version[] = []): Promise<void> {
    const record = slot.record(released);
    try {
      if (isEmptyRecord(record)) {
        await this.options.state.removeSlot(outer.object, outer.name, record.key);
      } else {
        await this.options.state.writeSlot(outer.object, outer.name, record);
      }
    } catch (err) {
      throw mimdError(StateWriteError, `cannot record the change of ${outer.ref} slot ${String(slot.keyJson)}: ${(err as Error).message}`, {}, err);
    }
  }

  private async checkpoint(point: string): Promise<void> {
    if (this.options.pauseAt !== point || this.paused) return;
    this.paused = true;
    this.log.warn({ point }, 'paused at crash point');
    await new Promise<never>(() => undefined);
  }

  // ---- lookups and checks --------------------------------------------------

  private outer(object: string, map: string): OuterMap {
    const outer = this.maps.get(`${object}/${map}`);
    if (outer) return outer;
    const objects = new Set(this.options.maps.map((m) => m.object));
    if (!objects.has(object)) {
      throw mimdError(NotFoundError, `object: no object ${JSON.stringify(object)} (mimd has: ${[...objects].join(', ') || 'none'})`, { field: 'object' });
    }
    const names = this.options.maps.filter((m) => m.object === object).map((m) => m.name);
    throw mimdError(NotFoundError, `map: object ${object} has no outer map ${JSON.stringify(map)} (it has: ${names.join(', ') || 'none'})`, { field: 'map' });
  }

  private existingSlot(object: string, map: string, slotParam: string): { outer: OuterMap; slot: Slot } {
    const outer = this.outer(object, map);
    const slot = outer.knownSlot(outer.slotKey(slotParam));
    if (!slot || slot.versions.size === 0) throw this.unknownSlot(outer, slotParam);
    return { outer, slot };
  }

  private unknownSlot(outer: OuterMap, slotParam: string): Error {
    return mimdError(NotFoundError, `slot: ${outer.ref} has nothing in slot ${slotParam}`, { field: 'slot' });
  }

  private activeOf(outer: OuterMap, slot: Slot): Version {
    const version = slot.activeVersion();
    if (!version) {
      throw mimdError(NotFoundError, `slot: ${outer.ref} slot ${String(slot.keyJson)} has no active version`, { field: 'slot' });
    }
    return version;
  }

  private versionOf(outer: OuterMap, slot: Slot, number: number): Version {
    const version = slot.versions.get(number);
    if (!version) {
      const kept = [...slot.versions.keys()].sort((a, b) => a - b).join(', ');
      throw mimdError(NotFoundError, `version: ${outer.ref} slot ${String(slot.keyJson)} has no version ${number} (retained: ${kept})`, {
        field: 'version',
      });
    }
    return version;
  }

  private checkExpectation(outer: OuterMap, slot: Slot, expect: Expectation): void {
    if (expect === undefined || expect === slot.active) return;
    const shown = (v: number | null): string => (v === null ? 'none' : String(v));
    throw mimdError(
      PreconditionFailedError,
      `If-Match: ${outer.ref} slot ${String(slot.keyJson)} has active version ${shown(slot.active)}, not ${shown(expect)}`,
      { field: 'If-Match' },
    );
  }

  private swapError(err: unknown, outer: OuterMap, slot: Slot): Error {
    const code = (err as { code?: unknown }).code;
    if (code === 'MIMD_SWAP_QUEUE_FULL') return err as Error;
    if (code === 'E2BIG' && outer.type === 'HASH_OF_MAPS') {
      return mimdError(OuterMapFullError, `slot: ${outer.ref} is full (${outer.maxEntries} slots in use)`, { field: 'slot', errno: 'E2BIG' }, err);
    }
    return fromKernel(err, `swapping ${outer.ref} slot ${String(slot.keyJson)}`);
  }

  private slotSummaries(outer: OuterMap): SlotSummary[] {
    const summaries = new Map<string, SlotSummary>();
    for (const slot of outer.knownSlots()) {
      if (slot.unused) continue;
      const kernelMapId = outer.handle.innerId(slot.key);
      const active = slot.activeVersion();
      summaries.set(slot.key.toString('hex'), {
        slot: slot.keyJson,
        activeVersion: slot.active,
        mapId: kernelMapId,
        entryCount: active?.entryCount ?? null,
        createdAt: active?.createdAt.toISOString() ?? null,
        labels: { ...(active?.labels ?? {}) },
        drift: kernelMapId !== slot.installedMapId,
      });
    }
    // Slots filled behind mimd's back are in use too, and drifted.
    for (const key of outer.occupiedKeys()) {
      const id = key.toString('hex');
      if (summaries.has(id)) continue;
      summaries.set(id, {
        slot: outer.slotCodec.decode(key),
        activeVersion: null,
        mapId: outer.handle.innerId(key),
        entryCount: null,
        createdAt: null,
        labels: {},
        drift: true,
      });
    }
    return [...summaries.values()];
  }
}

/**
 * A key both upserted and deleted in one PATCH has no order that is plainly
 * right, and counted as both it made entryCount drift from the kernel: it is
 * refused, naming both places, before anything is touched.
 */
function refuseUpsertAndDelete(upserts: readonly { key: Buffer }[], deletes: readonly Buffer[]): void {
  if (upserts.length === 0 || deletes.length === 0) return;
  const upserted = new Map<string, number>();
  upserts.forEach((u, j) => {
    const id = u.key.toString('hex');
    if (!upserted.has(id)) upserted.set(id, j);
  });
  deletes.forEach((key, i) => {
    const j = upserted.get(key.toString('hex'));
    if (j !== undefined) throw badInput(`delete[${i}]`, `the same key as upsert[${j}]; a PATCH may upsert a key or delete it, not both`);
  });
}
