// The typed codec: a key or value as the JSON an operator would write,
// derived from the object's BTF (btf.ts) plus per-field formats (formats.ts)
// from the configuration. Built once per type into a tree of small nodes;
// every later encode/decode only walks that tree.
//
// JSON forms (paths below are relative to the key or value: '' is the whole
// field, 'addr', 'inner.port', 'items[]' every element of an array):
//   integers       numbers; 64-bit (and wider) ones beyond 2^53 as decimal
//                  strings, both accepted on input; signed ones signed
//   bool           true/false (BTF bool encoding, or a 1-byte _Bool/bool)
//   char           a number, except in char arrays (below)
//   enum, enum64   by name, a number still accepted. Names lose the prefix
//                  all enumerators share and are lower-cased when they were
//                  all upper case: VERDICT_PASS, VERDICT_DROP -> pass, drop
//                  (the BTF spelling is accepted too). A value without a
//                  name decodes as the number.
//   struct         an object by member name; every member is required unless
//                  `defaults` gives it (a struct member only when its default
//                  is complete; a partial one fills in under what is given);
//                  unknown members are errors; padding is zero. Anonymous
//                  struct members are flattened into the parent as C does;
//                  of an anonymous union's members, exactly one is given.
//   union          an object with exactly one member; the others' bytes are
//                  zero. Decode gives one member: the first of the largest
//                  (so no byte goes unseen when one covers the whole union).
//   array          a JSON array of exactly nelems elements
//   char[N]        a string: UTF-8, NUL-padded, at most N bytes, no NUL
//                  inside; decoded up to the first NUL. Bytes that are not
//                  such a string (invalid UTF-8, data after the NUL) decode
//                  as an array of the chars as numbers, also accepted on input
//   bitfields      as their type, placed as clang lays them out on
//                  little-endian hosts (bit offsets count up from bit 0 of
//                  byte 0); refused at build time on big-endian hosts
//   float, double  numbers; "NaN", "Infinity", "-Infinity" as strings
//   pointers       opaque 64-bit unsigned integers
//
// At the top level a hex string "0x..." of exactly the field's size is also
// taken as the raw bytes: an escape hatch for values the typed form cannot
// say (or that a tool printed as hex). It shadows a root char array's text
// starting with "0x", which can still be given as an array of numbers.
//
// Anything the codec cannot handle, and formats or defaults that do not fit
// the type, throw a plain Error when the codec is built: a configuration
// error, found at start, never per request.
import { endianness } from 'node:os';
import type { BtfMember, BtfTable, BtfType } from './btf';
import type { FieldCodec, JsonSchema } from './codec';
import type { EntryJson } from './slots-api';
import { badInput, isMimdError } from './errors';
import {
  MAX_SAFE,
  SIGNED_DECIMAL,
  UNSIGNED_DECIMAL,
  cidrNode,
  describe,
  formatNode,
  hexSchema,
  isFormatName,
  parseHex,
  type CodecNode,
  type FormatName,
} from './formats';

export type { FormatName } from './formats';

export interface TypedCodecOptions {
  /** field path ('' for the root, 'addr', 'inner.port', 'items[]') -> format; FormatName values */
  formats: Readonly<Record<string, FormatName | string>>;
  /** merged under missing struct members, deeply; mirrors the struct (arrays and unions as whole values) */
  defaults?: unknown;
  /** names the field in build errors: 'key', 'value', 'slot' */
  name: string;
}

const LITTLE_ENDIAN = endianness() === 'LE';
const POINTER_SIZE = 8; // BPF is a 64-bit target
const MODIFIERS = new Set(['typedef', 'const', 'volatile', 'restrict', 'type_tag']);
const UNSIGNED_DECIMAL_RE = new RegExp(UNSIGNED_DECIMAL);
const SIGNED_DECIMAL_RE = new RegExp(SIGNED_DECIMAL);
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function typedCodec(btf: BtfTable, typeId: number, options: TypedCodecOptions): FieldCodec {
  return new TypedField(new Builder(btf, options).root(typeId));
}

class TypedField implements FieldCodec {
  readonly size: number;
  private cachedSchema: JsonSchema | undefined;

  constructor(private readonly node: CodecNode) {
    this.size = node.size;
  }

  encode(value: EntryJson, field: string): Buffer {
    const raw = parseHex(value, this.size, field);
    if (raw) return raw;
    const buf = Buffer.alloc(this.size);
    this.node.encode(value, buf, 0, field);
    return buf;
  }

  encodeInto(value: EntryJson, target: Buffer, offset: number, field: string): void {
    const raw = parseHex(value, this.size, field);
    if (raw) {
      raw.copy(target, offset);
      return;
    }
    // Nodes write only their members: padding must be zero, as in a fresh buffer.
    target.fill(0, offset, offset + this.size);
    this.node.encode(value, target, offset, field);
  }

  decode(bytes: Buffer): EntryJson {
    if (bytes.length !== this.size) throw new TypeError(`expected ${this.size} bytes to decode, got ${bytes.length}`);
    return this.node.decode(bytes, 0);
  }

  schema(): JsonSchema {
    this.cachedSchema ??= { anyOf: [this.node.schema(), hexSchema(this.size)] };
    return structuredClone(this.cachedSchema);
  }
}

// ----------------------------------------------------------------- building

type Resolved = Exclude<BtfType, { kind: 'typedef' | 'const' | 'volatile' | 'restrict' | 'type_tag' }>;
type IntType = Extract<BtfType, { kind: 'int' }>;
type EnumType = Extract<BtfType, { kind: 'enum' | 'enum64' }>;
type CompositeType = Extract<BtfType, { kind: 'struct' | 'union' }>;

/** A member as JSON sees it: anonymous struct members are flattened into these. */
interface Field {
  name: string;
  node: CodecNode;
  /** bytes from the start of the struct */
  offset: number;
  hasDefault: boolean;
  default: unknown;
}

/** Members of an anonymous union inside a struct: exactly one of them is given. */
interface Choice {
  fields: Field[];
}

class Builder {
  private readonly formats = new Map<string, FormatName>();
  private readonly usedFormats = new Set<string>();
  private readonly paths: string[] = [];

  constructor(
    private readonly btf: BtfTable,
    private readonly options: TypedCodecOptions,
  ) {
    for (const [path, format] of Object.entries(options.formats)) {
      if (!isFormatName(format)) {
        throw this.error(path, `unknown format ${JSON.stringify(format)} (formats: ipv4, ipv6, mac, be16, be32, be64, hex, cidr)`);
      }
      this.formats.set(path, format);
    }
  }

  root(typeId: number): CodecNode {
    const node = this.build(typeId, '', this.options.defaults);
    for (const path of this.formats.keys()) {
      if (!this.usedFormats.has(path)) {
        const some = this.paths.filter((p) => p !== '').slice(0, 20);
        throw this.error(path, `no such field for a format (fields: ${some.length ? some.join(', ') : 'none, only the root ""'})`);
      }
    }
    return node;
  }

  private error(path: string, message: string): Error {
    return new Error(`${this.options.name}: ${path === '' ? '(root)' : path}: ${message}`);
  }

  private type(id: number, path: string): BtfType {
    if (id === 0) throw this.error(path, 'void has no value');
    const type = this.btf[id];
    if (!type) throw this.error(path, `no BTF type with id ${id}`);
    return type;
  }

  /** Follows typedefs and qualifiers to the type that has a layout. */
  private resolve(id: number, path: string): Resolved {
    let type = this.type(id, path);
    for (let hops = 0; MODIFIERS.has(type.kind); hops++) {
      if (hops > 64) throw this.error(path, `typedef loop at BTF type ${id}`);
      type = this.type((type as { type: number }).type, path);
    }
    return type as Resolved;
  }

  private sizeOf(id: number, path: string): number {
    const type = this.resolve(id, path);
    switch (type.kind) {
      case 'int':
      case 'float':
      case 'struct':
      case 'union':
      case 'enum':
      case 'enum64':
        return type.size;
      case 'array':
        return type.nelems * this.sizeOf(type.type, path);
      case 'ptr':
        return POINTER_SIZE;
      default:
        throw this.unsupported(type, path);
    }
  }

  /** How a type reads in C: a typedef by its name, anything else by what it is. */
  private describeType(id: number, path: string): string {
    const named = this.type(id, path);
    if (named.kind === 'typedef') return named.name;
    if (MODIFIERS.has(named.kind)) return this.describeType((named as { type: number }).type, path);
    const type = this.resolve(id, path);
    switch (type.kind) {
      case 'int':
      case 'float':
        return type.name;
      case 'array':
        return `${this.describeType(type.type, path)}[${type.nelems}]`;
      case 'ptr':
        return 'a pointer';
      default:
        return `${type.kind} ${type.name || '(anonymous)'}`;
    }
  }

  private unsupported(type: BtfType, path: string): Error {
    if (type.kind === 'fwd') {
      return this.error(
        path,
        `${type.union ? 'union' : 'struct'} ${type.name} is only a forward declaration in BTF: clang emits types reached ` +
          "only through an inner-map template this way; name the type in a never-called function's signature " +
          '(see bpf/firewall.bpf.c)',
      );
    }
    return this.error(path, `cannot encode BTF ${type.kind} ${type.name || '(anonymous)'}`);
  }

  private build(id: number, path: string, defaults: unknown): CodecNode {
    this.paths.push(path);
    const format = this.formats.get(path);
    const node = format ? this.formatted(format, id, path) : this.fromBtf(id, path, defaults);
    const type = this.resolve(id, path);
    if (defaults !== undefined && (format || (type.kind !== 'struct' && type.kind !== 'union'))) {
      this.checkDefault(node, defaults, path);
    }
    return node;
  }

  /** A default of a field that is not a struct is encoded once now, so a bad one fails at start. */
  private checkDefault(node: CodecNode, value: unknown, path: string): void {
    try {
      node.encode(value, Buffer.alloc(node.size), 0, path === '' ? 'defaults' : `defaults.${path}`);
    } catch (err) {
      if (!isMimdError(err)) throw err;
      throw new Error(`${this.options.name}: ${err.message}`);
    }
  }

  private formatted(format: FormatName, id: number, path: string): CodecNode {
    this.usedFormats.add(path);
    if (format === 'cidr') return this.cidr(id, path);
    try {
      return formatNode(format, this.sizeOf(id, path));
    } catch (err) {
      throw this.error(path, `${(err as Error).message} (${this.describeType(id, path)})`);
    }
  }

  /** An LPM trie key: a 4-byte integer first (prefixlen), then 4 or 16 bytes of address. */
  private cidr(id: number, path: string): CodecNode {
    const type = this.resolve(id, path);
    const first = type.kind === 'struct' ? type.members[0] : undefined;
    const prefixlen = first ? this.resolve(first.type, path) : undefined;
    if (
      type.kind !== 'struct' ||
      (type.size !== 8 && type.size !== 20) ||
      !first ||
      first.bitOffset !== 0 ||
      first.bitfieldSize !== 0 ||
      prefixlen?.kind !== 'int' ||
      prefixlen.size !== 4
    ) {
      throw this.error(
        path,
        'format cidr needs an LPM trie key struct { __u32 prefixlen; 4 or 16 bytes of address }, ' +
          `got ${this.describeType(id, path)} (${this.sizeOf(id, path)} bytes)`,
      );
    }
    return cidrNode(type.size === 8 ? 4 : 16, LITTLE_ENDIAN);
  }

  private fromBtf(id: number, path: string, defaults: unknown): CodecNode {
    const type = this.resolve(id, path);
    switch (type.kind) {
      case 'int':
        if (type.bits === type.size * 8 && type.bitOffset === 0) return wholeBytes(this.intScalar(type, type.bits), type.size);
        // Old-style BTF bitfield: the int type itself says which bits of its bytes hold the value.
        return this.bits(this.intScalar(type, type.bits), type.bitOffset, type.bits, type.size, path);
      case 'enum':
      case 'enum64':
        return wholeBytes(this.enumScalar(type, type.size * 8), type.size);
      case 'float':
        if (type.size !== 4 && type.size !== 8) throw this.error(path, `cannot encode a ${type.size}-byte float (${type.name})`);
        return floatNode(type.size as 4 | 8);
      case 'ptr':
        return wholeBytes(intScalar(POINTER_SIZE * 8, false), POINTER_SIZE);
      case 'array':
        return this.array(type.type, type.nelems, path);
      case 'struct':
        return this.struct(type, path, defaults);
      case 'union':
        return this.union(type, path, defaults);
      default:
        throw this.unsupported(type, path);
    }
  }

  private intScalar(type: IntType, width: number): Scalar {
    if (type.bool || (type.size === 1 && (type.name === '_Bool' || type.name === 'bool'))) return boolScalar();
    return intScalar(width, type.signed);
  }

  private enumScalar(type: EnumType, width: number): Scalar {
    // Before enum64 (clang < 15) an 8-byte enum's BTF values are cut to 32 bits: its names cannot be trusted.
    if (type.kind === 'enum' && type.size > 4) return intScalar(width, type.signed);
    return enumScalar(type, width);
  }

  /** A scalar that occupies `width` bits from `bitOffset` within `size` bytes. */
  private bits(scalar: Scalar, bitOffset: number, width: number, size: number, path: string): CodecNode {
    if (!LITTLE_ENDIAN) throw this.error(path, 'bitfields are only supported on little-endian hosts');
    if (width === 0 || bitOffset + width > size * 8) {
      throw this.error(path, `bitfield of ${width} bits at bit ${bitOffset} does not fit ${size} bytes`);
    }
    return bitfieldNode(scalar, bitOffset, width, size);
  }

  private array(elementId: number, nelems: number, path: string): CodecNode {
    const element = this.resolve(elementId, path);
    const elementPath = `${path}[]`;
    if (isChar(element) && !this.formats.has(elementPath)) {
      this.paths.push(elementPath);
      return charArrayNode(nelems, intScalar(8, element.signed));
    }
    const node = this.build(elementId, elementPath, undefined);
    return arrayNode(node, nelems);
  }

  private struct(type: CompositeType, path: string, defaults: unknown): CodecNode {
    const defaultsObject = this.defaultsObject(defaults, type, path);
    const fields: Field[] = [];
    const choices: Choice[] = [];
    this.collect(type, 0, path, defaultsObject, fields, choices);
    const names = new Set<string>();
    for (const field of [...fields, ...choices.flatMap((c) => c.fields)]) {
      if (names.has(field.name)) throw this.error(path, `member ${JSON.stringify(field.name)} appears twice (anonymous members)`);
      names.add(field.name);
    }
    for (const key of Object.keys(defaultsObject ?? {})) {
      if (!names.has(key)) {
        const what = this.describeType(type.id, path);
        throw this.error(path, `defaults: no member ${JSON.stringify(key)} in ${what} (members: ${[...names].join(', ')})`);
      }
    }
    for (const choice of choices) {
      if (choice.fields.filter((f) => f.hasDefault).length > 1) {
        throw this.error(path, `defaults: at most one of ${choice.fields.map((f) => f.name).join(', ')} (an anonymous union)`);
      }
    }
    this.checkFit(type, [...fields, ...choices.flatMap((c) => c.fields)], path);
    return structNode(type.size, fields, choices);
  }

  /** BTF from a broken producer could place a member past the end; nothing may write there. */
  private checkFit(type: CompositeType, fields: Field[], path: string): void {
    for (const field of fields) {
      if (field.offset + field.node.size > type.size) {
        const where = path === '' ? field.name : `${path}.${field.name}`;
        throw this.error(where, `member ends past the ${type.size} bytes of ${this.describeType(type.id, path)}`);
      }
    }
  }

  private defaultsObject(defaults: unknown, type: CompositeType, path: string): Record<string, unknown> | undefined {
    if (defaults === undefined) return undefined;
    if (!isPlainObject(defaults)) {
      throw this.error(path, `defaults: expected an object for ${this.describeType(type.id, path)}, got ${describe(defaults)}`);
    }
    return defaults;
  }

  /** Members of `type` placed at `base` bytes, anonymous structs flattened, anonymous unions as choices. */
  private collect(
    type: CompositeType,
    base: number,
    path: string,
    defaults: Record<string, unknown> | undefined,
    fields: Field[],
    choices: Choice[],
  ): void {
    for (const member of type.members) {
      if (member.name === '') {
        const inner = this.resolve(member.type, path);
        if (member.bitfieldSize !== 0) continue; // unnamed bitfield: padding
        if (inner.kind === 'int') continue; // old-style unnamed bitfield: padding
        if (member.bitOffset % 8 !== 0) throw this.error(path, 'anonymous member at a bit offset');
        const offset = base + member.bitOffset / 8;
        if (inner.kind === 'struct') {
          this.collect(inner, offset, path, defaults, fields, choices);
        } else if (inner.kind === 'union') {
          const choice: Choice = { fields: [] };
          for (const alternative of inner.members) {
            if (alternative.name === '') throw this.error(path, 'anonymous member inside an anonymous union: not supported');
            choice.fields.push(this.member(alternative, offset, path, defaults));
          }
          choices.push(choice);
        } else {
          throw this.error(path, `anonymous ${inner.kind} member: not supported`);
        }
        continue;
      }
      fields.push(this.member(member, base, path, defaults));
    }
  }

  private member(member: BtfMember, base: number, parentPath: string, defaults: Record<string, unknown> | undefined): Field {
    const path = parentPath === '' ? member.name : `${parentPath}.${member.name}`;
    const hasDefault = defaults !== undefined && Object.hasOwn(defaults, member.name);
    const value = hasDefault ? defaults?.[member.name] : undefined;
    const type = this.resolve(member.type, path);
    let width = member.bitfieldSize;
    let bitOffset = member.bitOffset;
    if (width === 0 && type.kind === 'int' && (type.bits !== type.size * 8 || type.bitOffset !== 0 || member.bitOffset % 8 !== 0)) {
      // A struct without kind_flag: the member's int type carries the bitfield's width.
      width = type.bits;
      bitOffset += type.bitOffset;
    }
    if (width === 0) {
      if (member.bitOffset % 8 !== 0) throw this.error(path, `member at bit offset ${member.bitOffset} is not a bitfield`);
      const node = this.build(member.type, path, value);
      // A struct's default may be partial (filling in under what the request
      // gives); only a complete one makes the member optional.
      const complete = hasDefault && (this.formats.has(path) || type.kind !== 'struct' || encodes(node, value));
      return { name: member.name, node, offset: base + member.bitOffset / 8, hasDefault: complete, default: value };
    }
    this.paths.push(path);
    if (this.formats.has(path)) throw this.error(path, `format ${this.formats.get(path)} cannot apply to a bitfield`);
    let scalar: Scalar;
    if (type.kind === 'int') scalar = this.intScalar(type, width);
    else if (type.kind === 'enum' || type.kind === 'enum64') scalar = this.enumScalar(type, width);
    else throw this.error(path, `bitfield of ${type.kind}: not supported`);
    const first = Math.floor(bitOffset / 8);
    const span = Math.floor((bitOffset + width - 1) / 8) - first + 1;
    const node = this.bits(scalar, bitOffset - first * 8, width, span, path);
    if (hasDefault) this.checkDefault(node, value, path);
    return { name: member.name, node, offset: base + first, hasDefault, default: value };
  }

  private union(type: CompositeType, path: string, defaults: unknown): CodecNode {
    const defaultsObject = this.defaultsObject(defaults, type, path);
    const fields: Field[] = [];
    for (const member of type.members) {
      if (member.name === '') throw this.error(path, `anonymous member in ${this.describeType(type.id, path)}: not supported`);
      fields.push(this.member(member, 0, path, defaultsObject));
    }
    this.checkFit(type, fields, path);
    const node = unionNode(type.size, fields);
    if (defaultsObject) this.checkDefault(node, defaultsObject, path);
    return node;
  }
}

function encodes(node: CodecNode, value: unknown): boolean {
  try {
    node.encode(value, Buffer.alloc(node.size), 0, 'defaults');
    return true;
  } catch (err) {
    if (!isMimdError(err)) throw err;
    return false;
  }
}

function isChar(type: Resolved): type is IntType {
  return type.kind === 'int' && type.size === 1 && type.bits === 8 && !type.bool && (type.char || type.name === 'char');
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// ------------------------------------------------------------------ scalars

/** An integer-valued field's JSON form, apart from where its bits sit. */
interface Scalar {
  /** JSON -> an integer within the field's range (two's complement applied by the caller) */
  parse(value: unknown, path: string): bigint;
  /** the field's integer (sign already applied) -> JSON */
  format(n: bigint): unknown;
  readonly signed: boolean;
  /** what parse takes, for error messages */
  readonly expected: string;
  schema(): JsonSchema;
  /** The same without BigInt, for fields of at most 32 bits: the common case, kept fast. */
  readonly small?: SmallScalar;
}

interface SmallScalar {
  parse(value: unknown, path: string): number;
  format(n: number): unknown;
}

function intRange(width: number, signed: boolean): { min: bigint; max: bigint } {
  return signed
    ? { min: -(1n << BigInt(width - 1)), max: (1n << BigInt(width - 1)) - 1n }
    : { min: 0n, max: (1n << BigInt(width)) - 1n };
}

function intScalar(width: number, signed: boolean): Scalar {
  const { min, max } = intRange(width, signed);
  const wide = width > 53;
  const expected = `an integer from ${min} to ${max}${wide ? ' (a decimal string beyond 2^53)' : ''}`;
  const decimal = signed ? SIGNED_DECIMAL_RE : UNSIGNED_DECIMAL_RE;
  const maxDigits = max.toString().length + 1;
  const [smallMin, smallMax] = [Number(min), Number(max)];
  const scalar: Scalar = {
    signed,
    expected,
    parse(value, path) {
      let n: bigint;
      if (typeof value === 'number' && Number.isInteger(value)) {
        if (!Number.isSafeInteger(value)) {
          throw badInput(path, `expected ${expected}, got ${value} (numbers beyond 2^53 go as decimal strings)`);
        }
        n = BigInt(value);
      } else if (wide && typeof value === 'string' && value.length <= maxDigits && decimal.test(value)) {
        n = BigInt(value);
      } else {
        throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      }
      if (n < min || n > max) throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      return n;
    },
    format: (n) => (!wide || (n <= MAX_SAFE && n >= -MAX_SAFE) ? Number(n) : n.toString()),
    schema() {
      const integer = {
        type: 'integer',
        minimum: wide && min < -MAX_SAFE ? Number.MIN_SAFE_INTEGER : Number(min),
        maximum: wide && max > MAX_SAFE ? Number.MAX_SAFE_INTEGER : Number(max),
      };
      if (!wide) return integer;
      return { anyOf: [integer, { type: 'string', pattern: signed ? SIGNED_DECIMAL : UNSIGNED_DECIMAL, maxLength: maxDigits }] };
    },
    small:
      width > 32
        ? undefined
        : {
            parse(value, path) {
              if (typeof value === 'number' && Number.isInteger(value) && value >= smallMin && value <= smallMax) return value;
              return Number(scalar.parse(value, path));
            },
            format: (n) => n,
          },
  };
  return scalar;
}

function boolScalar(): Scalar {
  return {
    signed: false,
    expected: 'true or false',
    parse(value, path) {
      if (typeof value !== 'boolean') throw badInput(path, `expected true or false, got ${describe(value)}`);
      return value ? 1n : 0n;
    },
    // Anything but 0 is true to C, and so here.
    format: (n) => n !== 0n,
    schema: () => ({ type: 'boolean' }),
    small: {
      parse(value, path) {
        if (typeof value !== 'boolean') throw badInput(path, `expected true or false, got ${describe(value)}`);
        return value ? 1 : 0;
      },
      format: (n) => n !== 0,
    },
  };
}

/**
 * Enumerator names as JSON shows them: without the prefix every one shares
 * (up to an underscore) and lower-cased when all were upper case, as long as
 * the result is still a set of distinct identifiers.
 */
export function enumNames(names: readonly string[]): string[] {
  let result = [...names];
  if (names.length > 1) {
    let prefix = names[0] ?? '';
    for (const name of names) {
      while (!name.startsWith(prefix)) prefix = prefix.slice(0, -1);
    }
    prefix = prefix.slice(0, prefix.lastIndexOf('_') + 1);
    const stripped = names.map((n) => n.slice(prefix.length));
    if (prefix !== '' && stripped.every((n) => IDENTIFIER.test(n))) result = stripped;
  }
  if (result.every((n) => n === n.toUpperCase())) {
    const lower = result.map((n) => n.toLowerCase());
    if (new Set(lower).size === lower.length) result = lower;
  }
  return result;
}

function enumScalar(type: EnumType, width: number): Scalar {
  const signed = type.signed;
  // clang < 15 marks no enum signed and hands negative enumerators over as
  // their 32-bit pattern; both readings agree once cut to the field's width.
  const cut = (n: bigint): bigint => (signed ? BigInt.asIntN(width, n) : BigInt.asUintN(width, n));
  const short = enumNames(type.values.map((v) => v.name));
  const byName = new Map<string, bigint>();
  const byValue = new Map<bigint, string>();
  type.values.forEach((v, i) => {
    const value = cut(BigInt(v.value));
    const name = short[i] ?? v.name;
    byName.set(name, value);
    if (!byName.has(v.name)) byName.set(v.name, value);
    if (!byValue.has(value)) byValue.set(value, name);
  });
  const integer = intScalar(width, signed);
  const list = short.join(', ');
  const expected = `one of ${list} or ${integer.expected}`;
  const smallByName = new Map([...byName].map(([name, n]) => [name, Number(n)]));
  const smallByValue = new Map([...byValue].map(([n, name]) => [Number(n), name]));
  const scalar: Scalar = {
    signed,
    expected,
    parse(value, path) {
      if (typeof value === 'string') {
        const n = byName.get(value);
        if (n !== undefined) return n;
        if (width <= 53 || !/^-?[0-9]/.test(value)) throw badInput(path, `expected one of ${list}, got ${describe(value)}`);
      }
      try {
        return integer.parse(value, path);
      } catch (err) {
        if (!isMimdError(err)) throw err;
        throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      }
    },
    format: (n) => byValue.get(n) ?? integer.format(n),
    schema: () => ({ anyOf: [{ type: 'string', enum: [...new Set([...short, ...type.values.map((v) => v.name)])] }, integer.schema()] }),
    small:
      width > 32
        ? undefined
        : {
            parse(value, path) {
              const n = typeof value === 'string' ? smallByName.get(value) : undefined;
              return n ?? Number(scalar.parse(value, path));
            },
            format: (n) => smallByValue.get(n) ?? n,
          },
  };
  return scalar;
}

// -------------------------------------------------------------------- nodes

function wholeBytes(scalar: Scalar, size: number): CodecNode {
  const bits = size * 8;
  const small = scalar.small;
  if (small && size <= 4) return smallWholeBytes(small, scalar, size);
  return {
    size,
    encode(value, buf, offset, path) {
      writeUnsigned(buf, offset, size, BigInt.asUintN(bits, scalar.parse(value, path)));
    },
    decode(buf, offset) {
      const n = readUnsigned(buf, offset, size);
      return scalar.format(scalar.signed ? BigInt.asIntN(bits, n) : n);
    },
    schema: () => scalar.schema(),
  };
}

function smallWholeBytes(small: SmallScalar, scalar: Scalar, size: number): CodecNode {
  const signed = scalar.signed;
  return {
    size,
    encode(value, buf, offset, path) {
      const n = small.parse(value, path);
      if (signed) {
        if (LITTLE_ENDIAN) buf.writeIntLE(n, offset, size);
        else buf.writeIntBE(n, offset, size);
      } else if (LITTLE_ENDIAN) buf.writeUIntLE(n, offset, size);
      else buf.writeUIntBE(n, offset, size);
    },
    decode(buf, offset) {
      let n: number;
      if (signed) n = LITTLE_ENDIAN ? buf.readIntLE(offset, size) : buf.readIntBE(offset, size);
      else n = LITTLE_ENDIAN ? buf.readUIntLE(offset, size) : buf.readUIntBE(offset, size);
      return small.format(n);
    },
    schema: () => scalar.schema(),
  };
}

/** `width` bits from bit `shift` of `size` bytes, little-endian: bit 0 is the lowest bit of the first byte. */
function bitfieldNode(scalar: Scalar, shift: number, width: number, size: number): CodecNode {
  const mask = ((1n << BigInt(width)) - 1n) << BigInt(shift);
  const bigShift = BigInt(shift);
  return {
    size,
    encode(value, buf, offset, path) {
      const n = BigInt.asUintN(width, scalar.parse(value, path)) << bigShift;
      const old = readLittle(buf, offset, size);
      writeLittle(buf, offset, size, (old & ~mask) | n);
    },
    decode(buf, offset) {
      const n = (readLittle(buf, offset, size) & mask) >> bigShift;
      return scalar.format(scalar.signed ? BigInt.asIntN(width, n) : n);
    },
    schema: () => scalar.schema(),
  };
}

function readLittle(buf: Buffer, offset: number, size: number): bigint {
  let n = 0n;
  for (let i = size - 1; i >= 0; i--) n = (n << 8n) | BigInt(buf[offset + i] ?? 0);
  return n;
}

function writeLittle(buf: Buffer, offset: number, size: number, n: bigint): void {
  for (let i = 0; i < size; i++) {
    buf[offset + i] = Number(n & 0xffn);
    n >>= 8n;
  }
}

/** An unsigned integer of `size` bytes in host byte order. */
function readUnsigned(buf: Buffer, offset: number, size: number): bigint {
  if (size === 8) return LITTLE_ENDIAN ? buf.readBigUInt64LE(offset) : buf.readBigUInt64BE(offset);
  if (size <= 6) return BigInt(LITTLE_ENDIAN ? buf.readUIntLE(offset, size) : buf.readUIntBE(offset, size));
  if (LITTLE_ENDIAN) return readLittle(buf, offset, size);
  let n = 0n;
  for (let i = 0; i < size; i++) n = (n << 8n) | BigInt(buf[offset + i] ?? 0);
  return n;
}

function writeUnsigned(buf: Buffer, offset: number, size: number, n: bigint): void {
  if (size === 8) {
    if (LITTLE_ENDIAN) buf.writeBigUInt64LE(n, offset);
    else buf.writeBigUInt64BE(n, offset);
  } else if (size <= 6) {
    if (LITTLE_ENDIAN) buf.writeUIntLE(Number(n), offset, size);
    else buf.writeUIntBE(Number(n), offset, size);
  } else if (LITTLE_ENDIAN) {
    writeLittle(buf, offset, size, n);
  } else {
    for (let i = size - 1; i >= 0; i--) {
      buf[offset + i] = Number(n & 0xffn);
      n >>= 8n;
    }
  }
}

const NON_FINITE: Record<string, number> = { NaN: NaN, Infinity: Infinity, '-Infinity': -Infinity };

function floatNode(size: 4 | 8): CodecNode {
  const expected = `a number${size === 4 ? ' within the range of a 4-byte float' : ''} (or "NaN", "Infinity", "-Infinity")`;
  return {
    size,
    encode(value, buf, offset, path) {
      let n: number | undefined;
      if (typeof value === 'number') n = value;
      else if (typeof value === 'string' && Object.hasOwn(NON_FINITE, value)) n = NON_FINITE[value];
      if (n === undefined || (size === 4 && Number.isFinite(n) && !Number.isFinite(Math.fround(n)))) {
        throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      }
      if (size === 4) {
        if (LITTLE_ENDIAN) buf.writeFloatLE(n, offset);
        else buf.writeFloatBE(n, offset);
      } else if (LITTLE_ENDIAN) buf.writeDoubleLE(n, offset);
      else buf.writeDoubleBE(n, offset);
    },
    decode(buf, offset) {
      const n =
        size === 4
          ? LITTLE_ENDIAN ? buf.readFloatLE(offset) : buf.readFloatBE(offset)
          : LITTLE_ENDIAN ? buf.readDoubleLE(offset) : buf.readDoubleBE(offset);
      // JSON has no NaN or infinities.
      return Number.isFinite(n) ? n : String(n);
    },
    schema: () => ({ anyOf: [{ type: 'number' }, { type: 'string', enum: ['NaN', 'Infinity', '-Infinity'] }] }),
  };
}

function arrayNode(element: CodecNode, nelems: number): CodecNode {
  const stride = element.size;
  return {
    size: stride * nelems,
    encode(value, buf, offset, path) {
      if (!Array.isArray(value) || value.length !== nelems) {
        throw badInput(path, `expected an array of exactly ${nelems} elements, got ${describe(value)}`);
      }
      for (let i = 0; i < nelems; i++) element.encode(value[i], buf, offset + i * stride, `${path}[${i}]`);
    },
    decode(buf, offset) {
      const result: unknown[] = new Array(nelems);
      for (let i = 0; i < nelems; i++) result[i] = element.decode(buf, offset + i * stride);
      return result;
    },
    schema: () => ({ type: 'array', items: element.schema(), minItems: nelems, maxItems: nelems }),
  };
}

const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

function charArrayNode(nelems: number, char: Scalar): CodecNode {
  const chars = arrayNode(wholeBytes(char, 1), nelems);
  return {
    size: nelems,
    encode(value, buf, offset, path) {
      if (Array.isArray(value)) return chars.encode(value, buf, offset, path);
      if (typeof value !== 'string') {
        throw badInput(path, `expected a string of at most ${nelems} bytes, got ${describe(value)}`);
      }
      if (value.includes('\0')) throw badInput(path, 'expected a string without NUL characters');
      const bytes = Buffer.from(value, 'utf8');
      if (bytes.toString('utf8') !== value) throw badInput(path, 'expected a string of valid Unicode (it has a lone surrogate)');
      if (bytes.length > nelems) {
        throw badInput(path, `expected a string of at most ${nelems} bytes, got ${bytes.length} bytes of UTF-8`);
      }
      bytes.copy(buf, offset);
    },
    decode(buf, offset) {
      const bytes = buf.subarray(offset, offset + nelems);
      let end = bytes.indexOf(0);
      if (end < 0) end = nelems;
      if (bytes.subarray(end).every((b) => b === 0)) {
        try {
          const text = UTF8.decode(bytes.subarray(0, end));
          // A well-formed string, not an encoder's repair of one.
          if (Buffer.from(text, 'utf8').length === end) return text;
        } catch {
          // not UTF-8: the chars as numbers below
        }
      }
      return chars.decode(buf, offset);
    },
    schema: () => ({ anyOf: [{ type: 'string', maxLength: nelems }, chars.schema()] }),
  };
}

function structNode(size: number, fields: Field[], choices: Choice[]): CodecNode {
  const names = new Set([...fields, ...choices.flatMap((c) => c.fields)].map((f) => f.name));
  const list = [...names].join(', ');
  return {
    size,
    encode(value, buf, offset, path) {
      if (!isPlainObject(value)) throw badInput(path, `expected an object with members ${list}, got ${describe(value)}`);
      for (const key of Object.keys(value)) {
        if (!names.has(key)) throw badInput(path, `unknown member ${JSON.stringify(key)} (members: ${list})`);
      }
      for (const field of fields) {
        let member: unknown;
        if (Object.hasOwn(value, field.name)) member = value[field.name];
        else if (field.hasDefault) member = field.default;
        else throw badInput(path, `missing member ${JSON.stringify(field.name)}`);
        field.node.encode(member, buf, offset + field.offset, `${path}.${field.name}`);
      }
      for (const choice of choices) {
        const given = choice.fields.filter((f) => Object.hasOwn(value, f.name));
        if (given.length > 1) {
          throw badInput(path, `expected only one of ${quoted(choice.fields)} (an anonymous union), got ${quoted(given)}`);
        }
        const field = given[0] ?? choice.fields.find((f) => f.hasDefault);
        if (!field) throw badInput(path, `missing one of ${quoted(choice.fields)} (an anonymous union)`);
        const member = given.length ? value[field.name] : field.default;
        field.node.encode(member, buf, offset + field.offset, `${path}.${field.name}`);
      }
    },
    decode(buf, offset) {
      const result: Record<string, unknown> = {};
      for (const field of fields) result[field.name] = field.node.decode(buf, offset + field.offset);
      for (const choice of choices) {
        const field = widest(choice.fields);
        result[field.name] = field.node.decode(buf, offset + field.offset);
      }
      return result;
    },
    schema() {
      const properties: Record<string, JsonSchema> = {};
      const required: string[] = [];
      for (const field of [...fields, ...choices.flatMap((c) => c.fields)]) {
        properties[field.name] = field.hasDefault ? { ...field.node.schema(), default: field.default } : field.node.schema();
      }
      for (const field of fields) if (!field.hasDefault) required.push(field.name);
      const schema: JsonSchema = { type: 'object', properties, additionalProperties: false };
      if (required.length) schema.required = required;
      const constraints = choices.map((choice) => {
        const one = choice.fields.map((f) => ({ required: [f.name] }));
        // With a default for the union, giving none of its members is fine too.
        return choice.fields.some((f) => f.hasDefault) ? { oneOf: [...one, { not: { anyOf: one } }] } : { oneOf: one };
      });
      if (constraints.length === 1) Object.assign(schema, constraints[0]);
      else if (constraints.length > 1) schema.allOf = constraints;
      return schema;
    },
  };
}

function quoted(fields: Field[]): string {
  return fields.map((f) => JSON.stringify(f.name)).join(', ');
}

/** The member decode shows for a union: the first of the largest, so no byte goes unseen when one covers it all. */
function widest(fields: Field[]): Field {
  const size = Math.max(...fields.map((f) => f.offset + f.node.size));
  return fields.find((f) => f.offset === 0 && f.node.size === size) ?? (fields[0] as Field);
}

function unionNode(size: number, fields: Field[]): CodecNode {
  const byName = new Map(fields.map((f) => [f.name, f]));
  const list = quoted(fields);
  const shown = fields.length ? widest(fields) : undefined;
  return {
    size,
    encode(value, buf, offset, path) {
      if (!isPlainObject(value)) throw badInput(path, `expected an object with exactly one of ${list}, got ${describe(value)}`);
      const keys = Object.keys(value);
      for (const key of keys) {
        if (!byName.has(key)) throw badInput(path, `unknown member ${JSON.stringify(key)} (one of ${list})`);
      }
      if (keys.length !== 1) {
        const given = keys.length ? keys.map((k) => JSON.stringify(k)).join(', ') : 'none';
        throw badInput(path, `expected exactly one of ${list}, got ${given}`);
      }
      const field = byName.get(keys[0] as string) as Field;
      field.node.encode(value[field.name], buf, offset + field.offset, `${path}.${field.name}`);
    },
    decode(buf, offset) {
      if (!shown) return {};
      return { [shown.name]: shown.node.decode(buf, offset + shown.offset) };
    },
    schema: () => ({
      type: 'object',
      properties: Object.fromEntries(fields.map((f) => [f.name, f.node.schema()])),
      minProperties: 1,
      maxProperties: 1,
      additionalProperties: false,
    }),
  };
}
