// A slot of an outer map and the versions built for it. Plain state and the
// rules on it (which version is active, which are kept, which one a rollback
// returns to); the kernel calls are made by the service.
import type { KernelMap } from './ports';
import type { EntryJson, Labels, VersionState, VersionView } from './slots-api';
import type { PendingChange, SlotRecord, VersionRecord } from './state';
import { SerialQueue } from './serial';

/** Activations remembered per slot: rollback needs only the recent end. */
const HISTORY_KEPT = 64;

/** One inner map built for one slot. */
export interface Version {
  readonly number: number;
  readonly map: KernelMap;
  readonly mapId: number;
  readonly pinPath: string;
  readonly maxEntries: number;
  entryCount: number;
  readonly createdAt: Date;
  activatedAt: Date | null;
  readonly labels: Labels;
  /** sha256 of the content as built (null: restored from a record without one) */
  readonly digest: string | null;
}

export class Slot {
  readonly versions = new Map<number, Version>();
  /** the version in the slot, as mimd installed it; null when none (never set, or emptied) */
  active: number | null = null;
  /** the highest version number handed out; numbers only grow */
  lastVersion = 0;
  /** the inner map id mimd last put into the slot (null: mimd emptied it or never filled it) */
  installedMapId: number | null = null;
  /** version numbers in the order they were made active (the recent end) */
  readonly history: number[] = [];
  /** a change started and not yet recorded as done (see state.ts) */
  pending: PendingChange | null = null;
  /** writes to one slot run one at a time */
  readonly writes = new SerialQueue();

  constructor(
    readonly key: Buffer,
    readonly keyJson: EntryJson,
  ) {}

  /** True when mimd has nothing for this slot: no versions, nothing installed. */
  get unused(): boolean {
    return this.versions.size === 0 && this.installedMapId === null;
  }

  activeVersion(): Version | null {
    return this.active === null ? null : (this.versions.get(this.active) ?? null);
  }

  /** Records that `version` is now in the slot. */
  markActive(version: Version, at: Date): void {
    this.active = version.number;
    this.installedMapId = version.mapId;
    version.activatedAt = at;
    this.history.push(version.number);
    if (this.history.length > HISTORY_KEPT) this.history.splice(0, this.history.length - HISTORY_KEPT);
  }

  /** Records that the slot was emptied; its versions stay for rollback. */
  markEmpty(): void {
    this.active = null;
    this.installedMapId = null;
  }

  /** The version a rollback returns to: the last one active before the current, if still kept. */
  rollbackTarget(): Version | null {
    for (let i = this.history.length - 1; i >= 0; i--) {
      const number = this.history[i];
      if (number === undefined || number === this.active) continue;
      const version = this.versions.get(number);
      if (version) return version;
    }
    return null;
  }

  /**
   * The versions to let go: everything but the active one and the `retain`
   * most recent others.
   */
  beyondRetention(retain: number): Version[] {
    const others = [...this.versions.values()].filter((v) => v.number !== this.active).sort((a, b) => b.number - a.number);
    return others.slice(retain);
  }

  forget(version: Version): void {
    this.versions.delete(version.number);
  }

  state(version: Version): VersionState {
    if (version.number === this.active) return 'active';
    return version.activatedAt === null ? 'staged' : 'retained';
  }

  view(version: Version): VersionView {
    return {
      version: version.number,
      state: this.state(version),
      mapId: version.mapId,
      entryCount: version.entryCount,
      maxEntries: version.maxEntries,
      createdAt: version.createdAt.toISOString(),
      activatedAt: version.activatedAt?.toISOString() ?? null,
      labels: { ...version.labels },
      pinPath: version.pinPath,
      digest: version.digest,
    };
  }

  /** What survives a restart; `without` leaves out versions about to be released. */
  record(without: readonly Version[] = []): SlotRecord {
    const versions: VersionRecord[] = [...this.versions.values()]
      .filter((v) => !without.includes(v))
      .sort((a, b) => a.number - b.number)
      .map((v) => ({
        number: v.number,
        mapId: v.mapId,
        maxEntries: v.maxEntries,
        entryCount: v.entryCount,
        createdAt: v.createdAt.toISOString(),
        activatedAt: v.activatedAt?.toISOString() ?? null,
        labels: { ...v.labels },
        ...(v.digest === null ? {} : { digest: v.digest }),
      }));
    return {
      key: this.key.toString('hex'),
      lastVersion: this.lastVersion,
      active: this.active,
      installedMapId: this.installedMapId,
      history: [...this.history],
      versions,
      pending: this.pending,
    };
  }

  /** Newest first. */
  views(): VersionView[] {
    return [...this.versions.values()].sort((a, b) => b.number - a.number).map((v) => this.view(v));
  }
}
