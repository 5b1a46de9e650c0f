// What mimd must remember across restarts beyond what the kernel holds: the
// inner template an outer map was created with (the kernel does not report
// it), and per slot the version numbers, labels and history. The kernel stays
// the truth for which inner map is in a slot; these records say which of
// mimd's pinned versions it is. The domain reads and writes them through the
// StateStore port; daemon/src/state/file-store.ts keeps them on disk.
import type { Labels } from './slots-api';
import type { MapShape } from './ports';

/** Written before an outer map is first pinned; read before a pin is reused. */
export interface OuterMapRecord {
  /** the outer map as the object declared it */
  outer: MapShape;
  /** the inner template the kernel compares every inserted inner map with */
  innerTemplate: MapShape;
  /** the kernel's id of the outer map the record is about */
  mapId: number;
  createdAt: string;
}

export interface VersionRecord {
  number: number;
  mapId: number;
  maxEntries: number;
  entryCount: number;
  createdAt: string;
  activatedAt: string | null;
  labels: Labels;
  /** sha256 of the content as built */
  digest?: string;
}

/**
 * A change to the slot that was started and may not have finished: written
 * before the kernel is touched, cleared once the result is recorded. After a
 * crash the kernel's slot tells whether it happened.
 */
export type PendingChange =
  /** `version` goes into the slot; `discardOnAbort`: it was built for this change (PUT) */
  | { op: 'activate'; version: number; discardOnAbort: boolean }
  | { op: 'clear' }
  /** entries of the active version are changed in place: its entry count is unknown */
  | { op: 'patch' };

export interface SlotRecord {
  /** the outer key, hex in memory order */
  key: string;
  lastVersion: number;
  active: number | null;
  installedMapId: number | null;
  /** version numbers in the order they were made active (the recent end) */
  history: number[];
  versions: VersionRecord[];
  pending: PendingChange | null;
}

/** Where records live. Writes are atomic: after a crash a record is the old or the new one, whole. */
export interface StateStore {
  readOuter(object: string, map: string): OuterMapRecord | null;
  writeOuter(object: string, map: string, record: OuterMapRecord): void;
  /** Every slot record of an outer map. Throws, naming the file, on a record it cannot read. */
  readSlots(object: string, map: string): SlotRecord[];
  writeSlot(object: string, map: string, record: SlotRecord): Promise<void>;
  removeSlot(object: string, map: string, key: string): Promise<void>;
  /** Removes every record of an outer map (it was replaced) or of an object (purge). */
  removeMap(object: string, map: string): void;
  removeObject(object: string): void;
}
