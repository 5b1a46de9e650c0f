// A version: one inner map built for one slot. The body that builds one (PUT
// of a slot, stage) and the view of a retained one.
import { Type } from '@sinclair/typebox';
import { Entry, Labels, Nullable } from './common';

export const VersionBody = Type.Object(
  {
    entries: Type.Array(Entry),
    labels: Type.Optional(Labels),
    /** only where the kernel allows an inner map of another size than the template (domain checks) */
    maxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 0xffffffff })),
  },
  { additionalProperties: false },
);

export const VersionView = Type.Object({
  version: Type.Integer(),
  state: Type.Union([Type.Literal('active'), Type.Literal('staged'), Type.Literal('retained')]),
  mapId: Type.Integer(),
  entryCount: Type.Integer(),
  maxEntries: Type.Integer(),
  createdAt: Type.String(),
  activatedAt: Nullable(Type.String()),
  labels: Type.Record(Type.String(), Type.String()),
  pinPath: Type.String(),
  digest: Nullable(Type.String()),
});

export const VersionList = Type.Object({
  versions: Type.Array(VersionView),
});

/** Query parameters of PUT and stage: what an NDJSON or binary body cannot carry itself. */
export const UploadQuery = Type.Object(
  {
    maxEntries: Type.Optional(Type.Integer({ minimum: 1, maximum: 0xffffffff })),
    /** name=value; repeat for more labels */
    label: Type.Optional(Type.Union([Type.String({ maxLength: 400 }), Type.Array(Type.String({ maxLength: 400 }), { maxItems: 64 })])),
  },
  { additionalProperties: false },
);

/** Media types a new version's entries may come in (OpenAPI). */
export const VERSION_MEDIA_TYPES = ['application/json', 'application/x-ndjson', 'application/octet-stream'];
