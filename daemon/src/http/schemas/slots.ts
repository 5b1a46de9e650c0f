// A slot of an outer map: what is in it, what replaced what, and the bodies
// of the writes that change it.
import { Type } from '@sinclair/typebox';
import { EntryJson, Nullable, Version } from './common';
import { VersionView } from './versions';

export const SlotSummary = Type.Object({
  slot: EntryJson,
  activeVersion: Nullable(Type.Integer()),
  mapId: Nullable(Type.Integer()),
  entryCount: Nullable(Type.Integer()),
  createdAt: Nullable(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  drift: Type.Boolean(),
});

export const SlotList = Type.Object({
  slots: Type.Array(SlotSummary),
});

export const SlotDetail = Type.Object({
  slot: EntryJson,
  activeVersion: Nullable(Type.Integer()),
  kernelMapId: Nullable(Type.Integer()),
  installedMapId: Nullable(Type.Integer()),
  drift: Type.Boolean(),
  versions: Type.Array(VersionView),
});

export const SwapResult = Type.Object({
  slot: EntryJson,
  version: Type.Integer(),
  previousVersion: Nullable(Type.Integer()),
  mapId: Type.Integer(),
  previousMapId: Nullable(Type.Integer()),
  entryCount: Type.Integer(),
  digest: Nullable(Type.String()),
  swapMs: Type.Number(),
  created: Type.Boolean(),
});

export const ClearResult = Type.Object({
  slot: EntryJson,
  previousVersion: Nullable(Type.Integer()),
  previousMapId: Nullable(Type.Integer()),
});

/** No body, or `{}`: the previous active version; `{ version }`: that one. */
export const RollbackBody = Type.Union([
  Type.Object({ version: Type.Optional(Version) }, { additionalProperties: false }),
  Type.Null(),
]);
