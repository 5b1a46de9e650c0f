// Which codec each part of an outer map gets: typed from the object's BTF
// where it has the type, with the configuration's formats and defaults;
// the raw integer/hex codec where it has none.
import type { BtfTable } from './btf';
import type { InnerMapDefinition } from './ports';
import type { MapCodecConfig } from '../config/schema';
import { rawCodec, type EntryCodec, type FieldCodec } from './codec';
import { typedCodec } from './typed-codec';
import { ConfigMismatchError } from './host';

export interface MapCodecs {
  /** the outer map's key, as it appears in URLs and answers */
  slot: FieldCodec;
  /** the inner maps' entries */
  entry: EntryCodec;
}

export interface MapCodecSource {
  btf: BtfTable | null;
  keyTypeId: number;
  keySize: number;
  inner: InnerMapDefinition;
  codec: MapCodecConfig | undefined;
  /** objects[0].maps.policy, for errors */
  field: string;
}

type Root = 'slot' | 'key' | 'value';

export function mapCodecs(source: MapCodecSource): MapCodecs {
  const raw = rawCodec(source.inner.keySize, source.inner.valueSize);
  return {
    slot: field(source, 'slot', source.keyTypeId, rawCodec(source.keySize, 4).key),
    entry: {
      key: field(source, 'key', source.inner.btfKeyTypeId, raw.key),
      value: field(source, 'value', source.inner.btfValueTypeId, raw.value),
    },
  };
}

function field(source: MapCodecSource, root: Root, typeId: number, fallback: FieldCodec): FieldCodec {
  const formats = formatsUnder(source.codec?.formats ?? {}, root);
  const defaults = root === 'slot' ? undefined : source.codec?.defaults?.[root];
  if (!source.btf || typeId === 0) {
    if (Object.keys(formats).length > 0 || defaults !== undefined) {
      throw mismatch(source, root, `${root} has no BTF type in the object, so it takes no formats or defaults`);
    }
    return fallback;
  }
  try {
    const codec = typedCodec(source.btf, typeId, { formats, defaults, name: root });
    if (codec.size !== fallback.size) {
      throw new Error(`BTF says ${codec.size} bytes, the map ${fallback.size}`);
    }
    return codec;
  } catch (err) {
    throw mismatch(source, root, err instanceof Error ? err.message : String(err));
  }
}

/** { 'key': 'cidr', 'key.addr': 'ipv4', 'value.x': ... } under 'key' -> { '': 'cidr', 'addr': 'ipv4' } */
function formatsUnder(formats: Record<string, string>, root: Root): Record<string, string> {
  const result: Record<string, string> = {};
  for (const [path, format] of Object.entries(formats)) {
    if (path === root) result[''] = format;
    else if (path.startsWith(`${root}.`)) result[path.slice(root.length + 1)] = format;
  }
  return result;
}

function mismatch(source: MapCodecSource, root: Root, message: string): Error {
  return Object.assign(new ConfigMismatchError(`${source.field}: ${message}`), { field: source.field });
}
