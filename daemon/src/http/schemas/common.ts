// Schemas shared by every resource: URL parameters, the error body, entries.
// Keys, values and slots are plain JSON here on purpose: the outer map's codec
// (domain) decides what a key looks like and names the field it rejects, so a
// typed codec can replace the integer/hex one without touching these schemas.
import { Type, type TSchema } from '@sinclair/typebox';

export const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** A key, value or slot as the codec reads it: a number, a decimal string, a "0x..." string. */
export const EntryJson = Type.Unknown({ description: 'a key or value as the map codec reads it' });

export const Entry = Type.Object(
  {
    key: EntryJson,
    value: EntryJson,
  },
  { additionalProperties: false },
);

/** Label keys in the style of Kubernetes label names; values are free text. */
export const Labels = Type.Record(
  Type.String({ pattern: '^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$' }),
  Type.String({ maxLength: 255 }),
  { additionalProperties: false, maxProperties: 64 },
);

const Name = Type.String({ minLength: 1, maxLength: 255 });

export const MapParams = Type.Object({
  object: Name,
  map: Name,
});

/** The slot stays a string: the outer map's codec parses it (decimal or "0x..."). */
export const SlotParams = Type.Object({
  object: Name,
  map: Name,
  slot: Type.String({ minLength: 1, maxLength: 1024 }),
});

export const Version = Type.Integer({ minimum: 1, maximum: Number.MAX_SAFE_INTEGER });

export const VersionParams = Type.Object({
  object: Name,
  map: Name,
  slot: Type.String({ minLength: 1, maxLength: 1024 }),
  version: Version,
});

export const ErrorBody = Type.Object({
  code: Type.String(),
  message: Type.String(),
  field: Type.Optional(Type.String()),
  errno: Type.Optional(Type.String()),
});

/** Every route answers errors in the same shape. */
export const errorResponses = { '4xx': ErrorBody, '5xx': ErrorBody } as const;

/** /healthz and /readyz */
export const ProbeStatus = Type.Object({ status: Type.String() });
