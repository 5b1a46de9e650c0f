// SlotsService: the operations of the hot-swap API on the managed outer maps.
// Every write to a slot runs in that slot's serial queue; every outer-map
// update goes through the one SwapQueue. After any error nothing has changed:
// versions are built (and removed again on failure) before the slot is
// touched, and version numbers are taken only when the write succeeds.
import * as path from 'node:path';
import type { Logger } from 'pino';
import type { InnerMapDefinition, KernelOuterMap, MapStore } from './ports';
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
  VersionBody,
  VersionView,
} from './slots-api';
import { OuterMap, type EncodedContent } from './outer-map';
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
}

export interface SlotsServiceOptions {
  maps: ManagedMapSource[];
  kernel: MapStore;
  swaps: SwapQueue;
  /** versions kept besides the active one */
  retain: number;
  pinRoot: string;
  logger: Logger;
  /** whether the host is up (objects loaded, programs attached) */
  ready: () => boolean;
}

export class SlotsService implements SlotsApi {
  private readonly maps = new Map<string, OuterMap>();
  private readonly log: Logger;
  private closed = false;

  constructor(private readonly options: SlotsServiceOptions) {
    this.log = options.logger;
    for (const source of options.maps) {
      const pinDir = path.posix.join(this.slotsPinRoot(source.object), source.name);
      this.maps.set(
        `${source.object}/${source.name}`,
        new OuterMap({ ...source, template: source.inner, kernel: options.kernel, pinDir, codecs: mapCodecs(source) }),
      );
    }
  }

  /**
   * Removes version pins a previous run left behind. Until mimd restores its
   * state across restarts, versions do not outlive the daemon.
   */
  removeStalePins(): void {
    for (const object of new Set(this.options.maps.map((m) => m.object))) {
      const dir = this.slotsPinRoot(object);
      if (this.options.kernel.pinExists(dir)) {
        this.log.warn({ dir }, 'removing version pins left by a previous run');
        this.options.kernel.removePinTree(dir);
      }
    }
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

  // ---- writes --------------------------------------------------------------

  async putSlot(object: string, map: string, slotParam: string, body: VersionBody, expect?: Expectation): Promise<SwapResult> {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    const content = outer.encode(body);
    const slot = outer.slot(key);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      const version = await this.buildNext(outer, slot, content);
      try {
        return await this.swapIn(outer, slot, version);
      } catch (err) {
        outer.discard(version);
        throw err;
      }
    });
  }

  async stageVersion(object: string, map: string, slotParam: string, body: VersionBody): Promise<VersionView> {
    const outer = this.outer(object, map);
    const key = outer.slotKey(slotParam);
    const content = outer.encode(body);
    const slot = outer.slot(key);
    return slot.writes.run(async () => {
      const version = await this.buildNext(outer, slot, content);
      this.keep(slot, version);
      this.prune(outer, slot);
      this.log.info({ map: outer.ref, slot: slot.keyJson, version: version.number, mapId: version.mapId, entries: version.entryCount }, 'staged version');
      return slot.view(version);
    });
  }

  async activate(object: string, map: string, slotParam: string, number: number, expect?: Expectation): Promise<SwapResult> {
    const { outer, slot } = this.existingSlot(object, map, slotParam);
    return slot.writes.run(async () => {
      this.checkExpectation(outer, slot, expect);
      return this.swapIn(outer, slot, this.versionOf(outer, slot, number));
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
      return this.swapIn(outer, slot, target);
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
      if (outer.handle.innerId(slot.key) !== null) {
        try {
          await this.options.swaps.clear(outer.handle, slot.key);
        } catch (err) {
          throw this.swapError(err, outer, slot);
        }
      }
      slot.markEmpty();
      this.log.info({ map: outer.ref, slot: slot.keyJson, previousVersion }, 'emptied slot');
      return { slot: slot.keyJson, previousVersion };
    });
  }

  /** Unpins and closes every version, closes the outer maps. Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    for (const outer of this.maps.values()) outer.close();
    for (const object of new Set(this.options.maps.map((m) => m.object))) {
      this.options.kernel.removePinTree(this.slotsPinRoot(object));
      this.options.kernel.removeEmptyPinDir(path.posix.dirname(this.slotsPinRoot(object)));
    }
  }

  // ---- the steps -----------------------------------------------------------

  /** Builds the slot's next version; its number is taken only by keep(). */
  private buildNext(outer: OuterMap, slot: Slot, content: EncodedContent): Promise<Version> {
    return outer.build(slot, slot.lastVersion + 1, content);
  }

  private keep(slot: Slot, version: Version): void {
    slot.versions.set(version.number, version);
    slot.lastVersion = Math.max(slot.lastVersion, version.number);
  }

  /** Puts `version` into the slot through the swap queue, then updates the records. */
  private async swapIn(outer: OuterMap, slot: Slot, version: Version): Promise<SwapResult> {
    const previousVersion = slot.active;
    const before = outer.handle.innerId(slot.key);
    let swapMs = 0;
    // Already in the slot as mimd installed it: nothing to swap.
    if (!(previousVersion === version.number && before === version.mapId)) {
      try {
        ({ swapMs } = await this.options.swaps.set(outer.handle, slot.key, version.map));
      } catch (err) {
        throw this.swapError(err, outer, slot);
      }
    }
    this.keep(slot, version);
    slot.markActive(version, new Date());
    this.prune(outer, slot);
    this.log.info(
      { map: outer.ref, slot: slot.keyJson, version: version.number, previousVersion, mapId: version.mapId, swapMs },
      'swapped slot',
    );
    return {
      slot: slot.keyJson,
      version: version.number,
      previousVersion,
      mapId: version.mapId,
      entryCount: version.entryCount,
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
    const added = new Set(upserts.filter((u) => before.get(u.key.toString('hex')) === null).map((u) => u.key.toString('hex')));
    const removed = new Set(deletes.filter((k) => before.get(k.toString('hex')) !== null).map((k) => k.toString('hex')));
    for (const id of removed) added.delete(id);
    const entryCount = outer.arrayInner ? version.entryCount : version.entryCount + added.size - removed.size;
    if (entryCount > version.maxEntries) {
      throw templateViolation('upsert', `${entryCount} entries would exceed the inner map's maxEntries ${version.maxEntries}`);
    }
    try {
      for (const { key, value } of upserts) await map.update(key, value);
      for (const key of deletes) await map.delete(key);
    } catch (err) {
      await this.restore(map, before, outer, slot);
      throw fromKernel(err, `patching ${outer.ref} slot ${String(slot.keyJson)}`);
    }
    version.entryCount = entryCount;
    this.log.info({ map: outer.ref, slot: slot.keyJson, version: version.number, upserted: upserts.length, deleted: removed.size }, 'patched entries');
    return { slot: slot.keyJson, version: version.number, upserted: upserts.length, deleted: removed.size, entryCount };
  }

  private async restore(map: Version['map'], before: Map<string, Buffer | null>, outer: OuterMap, slot: Slot): Promise<void> {
    for (const [id, value] of before) {
      const key = Buffer.from(id, 'hex');
      try {
        if (value === null) await map.delete(key);
        else await map.update(key, value);
      } catch (err) {
        this.log.error({ err, map: outer.ref, slot: slot.keyJson, key: id }, 'cannot restore an entry after a failed patch');
      }
    }
  }

  /** Lets go of versions beyond retention: unpinned and closed, freed once no slot holds them. */
  private prune(outer: OuterMap, slot: Slot): void {
    for (const version of slot.beyondRetention(this.options.retain)) {
      slot.forget(version);
      outer.discard(version);
      this.log.debug({ map: outer.ref, slot: slot.keyJson, version: version.number }, 'released version');
    }
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
