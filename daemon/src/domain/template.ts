// The kernel's rules for when two maps are "the same" (kernel/bpf/map_in_map.c,
// bpf_map_meta_equal): an inner map fits a slot when its type, key size, value
// size and flags equal the template's; max_entries counts too for an array
// without BPF_F_INNER_MAP. mimd applies the same rules before it reuses a
// pinned outer map or carries a slot over to a new one.
import type { MapShape } from './ports';

const ARRAY_TYPES = new Set(['ARRAY', 'PERCPU_ARRAY']);

export interface ShapeDifference {
  /** 'type', 'keySize', 'valueSize', 'maxEntries' or 'flags' */
  field: keyof MapShape;
  /** as found (the pin, the inner map) */
  found: string;
  /** as wanted (the object, the template) */
  wanted: string;
}

function shown(value: MapShape[keyof MapShape]): string {
  return Array.isArray(value) ? `[${value.join(', ')}]` : String(value);
}

function difference(found: MapShape, wanted: MapShape, fields: readonly (keyof MapShape)[]): ShapeDifference | null {
  for (const field of fields) {
    // flags compare as sets: the order names are listed in means nothing
    const same =
      field === 'flags' ? shown([...found.flags].sort()) === shown([...wanted.flags].sort()) : found[field] === wanted[field];
    if (!same) return { field, found: shown(found[field]), wanted: shown(wanted[field]) };
  }
  return null;
}

/** Whether the template's max_entries is part of the kernel's comparison. */
export function maxEntriesCompared(template: MapShape): boolean {
  return ARRAY_TYPES.has(template.type) && !template.flags.includes('INNER_MAP');
}

/** The first way `inner` would be refused by a slot of an outer map with `template`, or null when it fits. */
export function innerMapMisfit(inner: MapShape, template: MapShape): ShapeDifference | null {
  const fields: (keyof MapShape)[] = ['type', 'keySize', 'valueSize', 'flags'];
  if (maxEntriesCompared(template)) fields.push('maxEntries');
  return difference(inner, template, fields);
}

/** The first difference between two map definitions, every field compared. */
export function shapeDifference(found: MapShape, wanted: MapShape): ShapeDifference | null {
  return difference(found, wanted, ['type', 'keySize', 'valueSize', 'maxEntries', 'flags']);
}
