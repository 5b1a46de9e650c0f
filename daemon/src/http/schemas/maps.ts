// Outer maps: every map-in-map map of every loaded object.
import { Type } from '@sinclair/typebox';
import { Nullable } from './common';
import { SlotSummary } from './slots';

export const InnerTemplateView = Type.Object({
  type: Type.String(),
  keySize: Type.Integer(),
  valueSize: Type.Integer(),
  maxEntries: Type.Integer(),
  flags: Type.Array(Type.String()),
  resizable: Type.Boolean(),
});

const outerMapProperties = {
  object: Type.String(),
  name: Type.String(),
  type: Type.String(),
  maxEntries: Type.Integer(),
  keySize: Type.Integer(),
  innerTemplate: InnerTemplateView,
  slotsInUse: Type.Integer(),
  mapId: Type.Integer(),
  pinPath: Nullable(Type.String()),
};

export const OuterMapView = Type.Object(outerMapProperties);

export const OuterMapList = Type.Object({
  maps: Type.Array(OuterMapView),
});

export const OuterMapDetail = Type.Object({
  ...outerMapProperties,
  slots: Type.Array(SlotSummary),
  /** JSON Schemas of the slot keys and of the inner maps' keys and values */
  schema: Type.Object({ slot: Type.Unknown(), key: Type.Unknown(), value: Type.Unknown() }),
});
