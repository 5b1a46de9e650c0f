// Entries of an inner map: read a page from the kernel, or change them in place.
import { Type } from '@sinclair/typebox';
import { Entry, EntryJson, Nullable } from './common';

export const EntriesQuery = Type.Object(
  {
    limit: Type.Integer({ minimum: 1, maximum: 10000, default: 100 }),
    cursor: Type.Optional(Type.String({ minLength: 1, maxLength: 4096 })),
  },
  { additionalProperties: false },
);

export const EntryPage = Type.Object({
  entries: Type.Array(Entry),
  nextCursor: Nullable(Type.String()),
});

export const PatchBody = Type.Object(
  {
    upsert: Type.Optional(Type.Array(Entry)),
    delete: Type.Optional(Type.Array(EntryJson)),
  },
  { additionalProperties: false, minProperties: 1 },
);

export const PatchResult = Type.Object({
  slot: EntryJson,
  version: Type.Integer(),
  upserted: Type.Integer(),
  deleted: Type.Integer(),
  entryCount: Type.Integer(),
  digest: Type.String(),
});
