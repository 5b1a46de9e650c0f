// The typed codec without a kernel: synthetic BTF tables for every kind and
// corner, and the real BTF of test/fixtures/types.bpf.o (read by the addon;
// opening an object does not touch the kernel).
import t, { type Test } from 'tap';
import Ajv from 'ajv';
import Ajv2020 from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { BtfMember, BtfTable, BtfType } from '../../daemon/src/domain/btf';
import type { FieldCodec, JsonSchema } from '../../daemon/src/domain/codec';
import { enumNames, typedCodec, type TypedCodecOptions } from '../../daemon/src/domain/typed-codec';
import { formatIpv6, parseIpv4, parseIpv6, parseMac } from '../../daemon/src/domain/formats';
import { BpfObject } from '../../daemon/src/kernel';
import { fixture } from '../helpers/sandbox';

// ------------------------------------------------------------ synthetic BTF

type Distribute<T> = T extends unknown ? Omit<T, 'id'> : never;

/** Builds a BTF table the way the addon hands one over; each method returns the new type's id. */
class Types {
  readonly table: (BtfType | null)[] = [null];

  add(type: Distribute<BtfType>): number {
    const id = this.table.length;
    this.table.push({ id, ...type } as BtfType);
    return id;
  }

  int(name: string, size: number, o: { signed?: boolean; bool?: boolean; char?: boolean; bits?: number; bitOffset?: number } = {}): number {
    return this.add({
      kind: 'int',
      name,
      size,
      bits: o.bits ?? size * 8,
      bitOffset: o.bitOffset ?? 0,
      signed: o.signed ?? false,
      char: o.char ?? false,
      bool: o.bool ?? false,
    });
  }

  typedef(name: string, type: number): number {
    return this.add({ kind: 'typedef', name, type });
  }

  qualifier(kind: 'const' | 'volatile' | 'restrict' | 'type_tag', type: number): number {
    return this.add({ kind, name: '', type });
  }

  enum(name: string, size: number, values: [string, number | string][], o: { signed?: boolean; kind?: 'enum' | 'enum64' } = {}): number {
    return this.add({
      kind: o.kind ?? 'enum',
      name,
      size,
      signed: o.signed ?? false,
      values: values.map(([n, value]) => ({ name: n, value })),
    });
  }

  /** members: [name, type, bitOffset, bitfieldSize?] */
  struct(name: string, size: number, members: [string, number, number, number?][], kind: 'struct' | 'union' = 'struct'): number {
    const list: BtfMember[] = members.map(([n, type, bitOffset, bitfieldSize]) => ({ name: n, type, bitOffset, bitfieldSize: bitfieldSize ?? 0 }));
    return this.add({ kind, name, size, members: list });
  }

  union(name: string, size: number, members: [string, number][]): number {
    return this.struct(name, size, members.map(([n, type]) => [n, type, 0]), 'union');
  }

  array(type: number, nelems: number): number {
    return this.add({ kind: 'array', name: '', type, indexType: 0, nelems });
  }

  float(name: string, size: number): number {
    return this.add({ kind: 'float', name, size });
  }

  ptr(type: number): number {
    return this.add({ kind: 'ptr', name: '', type });
  }

  fwd(name: string): number {
    return this.add({ kind: 'fwd', name, union: false });
  }
}

/** The integer types every test needs, with the kernel's typedef names. */
function basics(): Types & Record<'u8' | 'u16' | 'u32' | 'u64' | 's8' | 's16' | 's32' | 's64' | 'bool' | 'char', number> {
  const types = new Types();
  const u8 = types.typedef('__u8', types.int('unsigned char', 1));
  const u16 = types.typedef('__u16', types.int('unsigned short', 2));
  const u32 = types.typedef('__u32', types.int('unsigned int', 4));
  const u64 = types.typedef('__u64', types.int('unsigned long long', 8));
  const s8 = types.typedef('__s8', types.int('signed char', 1, { signed: true }));
  const s16 = types.typedef('__s16', types.int('short', 2, { signed: true }));
  const s32 = types.typedef('__s32', types.int('int', 4, { signed: true }));
  const s64 = types.typedef('__s64', types.int('long long', 8, { signed: true }));
  const bool = types.int('_Bool', 1, { bool: true });
  const char = types.int('char', 1, { signed: true });
  return Object.assign(types, { u8, u16, u32, u64, s8, s16, s32, s64, bool, char });
}

function codec(btf: BtfTable, typeId: number, options: Partial<TypedCodecOptions> = {}): FieldCodec {
  return typedCodec(btf, typeId, { formats: {}, name: 'value', ...options });
}

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** encode -> exact bytes, decode -> back to `decoded` (the value itself unless it has a canonical form). */
function roundTrip(t: Test, c: FieldCodec, value: unknown, bytes: string, decoded: unknown = value): void {
  const buf = c.encode(value, 'value');
  t.equal(buf.toString('hex'), bytes.replace(/\s+/g, ''), `${JSON.stringify(value)} encodes`);
  t.strictSame(c.decode(buf), decoded, `${JSON.stringify(value)} decodes`);
}

function badInput(t: Test, c: FieldCodec, value: unknown, field: string, message: string | RegExp, root = 'value'): void {
  t.throws(
    () => c.encode(value, root),
    { code: 'MIMD_BAD_INPUT', statusCode: 400, field, message: typeof message === 'string' ? `${field}: ${message}` : message },
    `${JSON.stringify(value)} is refused`,
  );
}

// ------------------------------------------------------- schema validators

// strictRequired off: it cannot see that an anonymous union's oneOf names members of the parent's properties.
const ajv07 = addFormats(new Ajv({ strict: true, strictRequired: false, allErrors: true }));
const ajv2020 = addFormats(new Ajv2020({ strict: true, strictRequired: false, allErrors: true }));

/** The schema compiles under draft-07 (what fastify uses) and 2020-12, strict; returns a validator. */
function validator(schema: JsonSchema): (value: unknown) => boolean {
  const v07 = ajv07.compile(schema);
  const v2020 = ajv2020.compile(schema);
  return (value) => {
    const a = v07(value);
    const b = v2020(value);
    if (a !== b) throw new Error(`draft-07 and 2020-12 disagree on ${JSON.stringify(value)}`);
    return a;
  };
}

// ------------------------------------------------------------------ tests

t.test('integers of every size and sign, at their bounds', async (t) => {
  const b = basics();
  roundTrip(t, codec(b.table, b.u8), 255, 'ff');
  roundTrip(t, codec(b.table, b.u16), 0xbeef, 'efbe');
  roundTrip(t, codec(b.table, b.u32), 4294967295, 'ffffffff');
  roundTrip(t, codec(b.table, b.s8), -128, '80');
  roundTrip(t, codec(b.table, b.s16), -2, 'feff');
  roundTrip(t, codec(b.table, b.s32), -2147483648, '00000080');
  const u64 = codec(b.table, b.u64);
  roundTrip(t, u64, Number.MAX_SAFE_INTEGER, 'ffffffffffff1f00');
  roundTrip(t, u64, '9007199254740992', '0000000000002000', '9007199254740992');
  roundTrip(t, u64, '18446744073709551615', 'ffffffffffffffff');
  roundTrip(t, u64, '12', '0c00000000000000', 12);
  const s64 = codec(b.table, b.s64);
  roundTrip(t, s64, -1, 'ffffffffffffffff');
  roundTrip(t, s64, '-9223372036854775808', '0000000000000080');
  roundTrip(t, s64, '9223372036854775807', 'ffffffffffffff7f');
  roundTrip(t, s64, -Number.MAX_SAFE_INTEGER, '010000000000e0ff');

  badInput(t, codec(b.table, b.u8), 256, 'value', 'expected an integer from 0 to 255, got 256');
  badInput(t, codec(b.table, b.u8), -1, 'value', 'expected an integer from 0 to 255, got -1');
  badInput(t, codec(b.table, b.s8), 128, 'value', 'expected an integer from -128 to 127, got 128');
  badInput(t, codec(b.table, b.u32), 1.5, 'value', 'expected an integer from 0 to 4294967295, got 1.5');
  badInput(t, codec(b.table, b.u32), '12', 'value', 'expected an integer from 0 to 4294967295, got "12"');
  badInput(t, codec(b.table, b.u32), null, 'value', 'expected an integer from 0 to 4294967295, got null');
  badInput(t, codec(b.table, b.u32), true, 'value', 'expected an integer from 0 to 4294967295, got true');
  badInput(t, u64, 2 ** 60, 'value', /numbers beyond 2\^53 go as decimal strings/);
  badInput(t, u64, '18446744073709551616', 'value', /expected an integer from 0 to 18446744073709551615 \(a decimal string beyond 2\^53\), got "18446744073709551616"/);
  badInput(t, u64, '-1', 'value', /got "-1"/);
  badInput(t, u64, '012', 'value', /got "012"/);
  badInput(t, u64, '1e3', 'value', /got "1e3"/);
  badInput(t, s64, '-9223372036854775809', 'value', /got "-9223372036854775809"/);
});

t.test('typedefs, qualifiers and type tags resolve to the type beneath', async (t) => {
  const b = basics();
  const chain = b.qualifier('type_tag', b.qualifier('restrict', b.qualifier('volatile', b.typedef('port_t', b.qualifier('const', b.u16)))));
  roundTrip(t, codec(b.table, chain), 80, '5000');
});

t.test('bool, char and pointers', async (t) => {
  const b = basics();
  const bool = codec(b.table, b.bool);
  roundTrip(t, bool, true, '01');
  roundTrip(t, bool, false, '00');
  t.equal(bool.decode(hex('02')), true, 'anything but 0 is true');
  badInput(t, bool, 1, 'value', 'expected true or false, got 1');
  // A _Bool without the BTF bool encoding (older compilers) is still a bool.
  roundTrip(t, codec(b.table, b.int('_Bool', 1)), true, '01');
  roundTrip(t, codec(b.table, b.int('bool', 1)), false, '00');
  roundTrip(t, codec(b.table, b.char), -1, 'ff');
  roundTrip(t, codec(b.table, b.char), 120, '78');
  const ptr = codec(b.table, b.ptr(0));
  roundTrip(t, ptr, 0x1234, '3412000000000000');
  roundTrip(t, ptr, '18446744073709551615', 'ffffffffffffffff');
});

t.test('floats and doubles', async (t) => {
  const b = basics();
  const f32 = codec(b.table, b.float('float', 4));
  const f64 = codec(b.table, b.float('double', 8));
  roundTrip(t, f32, 1.5, '0000c03f');
  roundTrip(t, f32, 0.1, 'cdcccc3d', Math.fround(0.1));
  roundTrip(t, f64, -2.25, '00000000000002c0');
  roundTrip(t, f64, 'NaN', '000000000000f87f');
  roundTrip(t, f64, 'Infinity', '000000000000f07f');
  roundTrip(t, f32, '-Infinity', '000080ff');
  badInput(t, f32, 1e300, 'value', /within the range of a 4-byte float/);
  badInput(t, f64, '1.5', 'value', /expected a number/);
  t.throws(() => codec(b.table, b.float('long double', 16)), { message: 'value: (root): cannot encode a 16-byte float (long double)' });
});

t.test('enums by name; prefixes dropped, numbers still taken', async (t) => {
  const b = basics();
  const verdict = b.enum('verdict', 4, [['VERDICT_PASS', 0], ['VERDICT_DROP', 1]]);
  const policyValue = b.struct('policy_value', 4, [['verdict', verdict, 0]]);
  const c = codec(b.table, policyValue);
  roundTrip(t, c, { verdict: 'drop' }, '01000000');
  roundTrip(t, c, { verdict: 'VERDICT_DROP' }, '01000000', { verdict: 'drop' });
  roundTrip(t, c, { verdict: 0 }, '00000000', { verdict: 'pass' });
  roundTrip(t, c, { verdict: 7 }, '07000000', { verdict: 7 });
  t.throws(() => c.encode({ verdict: 'dorp' }, 'entries[3].value'), {
    code: 'MIMD_BAD_INPUT',
    field: 'entries[3].value.verdict',
    message: 'entries[3].value.verdict: expected one of pass, drop, got "dorp"',
  });
  badInput(t, c, { verdict: -1 }, 'value.verdict', 'expected one of pass, drop or an integer from 0 to 4294967295, got -1');
  badInput(t, c, { verdict: 'pass ' }, 'value.verdict', 'expected one of pass, drop, got "pass "');

  // Signed per the kind flag; two names for one value decode as the first.
  const signed = codec(b.table, b.enum('delta', 1, [['DOWN', -1], ['NONE', 0], ['UP', 1], ['FLAT', 0]], { signed: true }));
  roundTrip(t, signed, 'down', 'ff');
  roundTrip(t, signed, 'flat', '00', 'none');
  roundTrip(t, signed, -128, '80');
  // clang 14: no signed flag, negative enumerators as their 32-bit pattern.
  const legacy = codec(b.table, b.enum('delta', 4, [['DELTA_DOWN', 4294967295], ['DELTA_UP', 1]]));
  roundTrip(t, legacy, 'down', 'ffffffff');
  const legacyByte = codec(b.table, b.enum('small', 1, [['SMALL_DOWN', 4294967295], ['SMALL_UP', 1]]));
  roundTrip(t, legacyByte, 'down', 'ff');

  // enum64: values beyond 2^53 arrive as decimal strings.
  const big = codec(b.table, b.enum('big', 8, [['BIG_SMALL', 1], ['BIG_HUGE', '18446744073709551615'], ['BIG_MID', '4294967296']], { kind: 'enum64' }));
  roundTrip(t, big, 'huge', 'ffffffffffffffff');
  roundTrip(t, big, 'mid', '0000000001000000');
  roundTrip(t, big, '18446744073709551614', 'feffffffffffffff');
  roundTrip(t, big, 2, '0200000000000000');
  badInput(t, big, 'tiny', 'value', 'expected one of small, huge, mid, got "tiny"');
  badInput(t, big, '18446744073709551616', 'value', /expected one of small, huge, mid or an integer from 0 to 18446744073709551615/);
  const big64s = codec(b.table, b.enum('s', 8, [['S_MIN', '-9223372036854775808']], { kind: 'enum64', signed: true }));
  roundTrip(t, big64s, 'S_MIN', '0000000000000080', 's_min');

  // An 8-byte BTF_KIND_ENUM comes from clang < 15 with values cut to 32 bits: a plain integer then.
  const cut = codec(b.table, b.enum('cut', 8, [['CUT_A', 1], ['CUT_B', 0]]));
  roundTrip(t, cut, '4294967296', '0000000001000000', 4294967296);
  badInput(t, cut, 'a', 'value', /expected an integer/);
});

t.test('enumerator names as JSON shows them', async (t) => {
  t.strictSame(enumNames(['VERDICT_PASS', 'VERDICT_DROP']), ['pass', 'drop']);
  t.strictSame(enumNames(['COUNTER_PASSED', 'COUNTER_DROPPED_BLOCKLIST', 'COUNTER_MAX']), ['passed', 'dropped_blocklist', 'max']);
  t.strictSame(enumNames(['XDP_ABORTED', 'XDP_DROP', 'XDP_PASS']), ['aborted', 'drop', 'pass']);
  t.strictSame(enumNames(['A_B_C', 'A_B_D']), ['c', 'd'], 'the whole shared prefix');
  t.strictSame(enumNames(['AB_X', 'AC_Y']), ['ab_x', 'ac_y'], 'prefix only up to an underscore');
  t.strictSame(enumNames(['SPEED_10G', 'SPEED_40G']), ['speed_10g', 'speed_40g'], 'not when a name would start with a digit');
  t.strictSame(enumNames(['Red', 'Green']), ['Red', 'Green'], 'mixed case stays');
  t.strictSame(enumNames(['ONLY_ONE']), ['only_one'], 'one enumerator: no prefix to speak of');
  t.strictSame(enumNames(['kRed', 'kGreen']), ['kRed', 'kGreen']);
});

t.test('structs: members by name, padding zeroed, missing and unknown members refused', async (t) => {
  const b = basics();
  const inner = b.struct('inner', 4, [['port', b.u16, 0], ['proto', b.u8, 16]]);
  // u8 a; (3 bytes padding) u32 b; struct inner in; u8 c; (3 bytes padding)
  const outer = b.struct('outer', 16, [['a', b.u8, 0], ['b', b.u32, 32], ['in', inner, 64], ['c', b.u8, 96]]);
  const c = codec(b.table, outer);
  roundTrip(t, c, { a: 1, b: 2, in: { port: 3, proto: 4 }, c: 5 }, '01000000 02000000 0300 04 00 05000000');
  t.strictSame(c.decode(hex('01ffffff 02000000 0300 04ff 05ffffff')), { a: 1, b: 2, in: { port: 3, proto: 4 }, c: 5 }, 'padding is not data');
  badInput(t, c, { a: 1, b: 2, in: { port: 3 }, c: 5 }, 'value.in', 'missing member "proto"');
  badInput(t, c, { a: 1, b: 2, in: { port: 3, proto: 4, extra: 1 }, c: 5 }, 'value.in', 'unknown member "extra" (members: port, proto)');
  badInput(t, c, { a: 1, b: 2, in: { port: 3, proto: 256 }, c: 5 }, 'value.in.proto', 'expected an integer from 0 to 255, got 256');
  badInput(t, c, [1, 2], 'value', 'expected an object with members a, b, in, c, got an array of 2');
  badInput(t, c, null, 'value', /got null/);
  // A JSON "__proto__" key is an own property, and no member.
  badInput(t, c, JSON.parse('{"a":1,"b":2,"in":{"port":3,"proto":4},"c":5,"__proto__":{}}'), 'value', 'unknown member "__proto__" (members: a, b, in, c)');
});

t.test('defaults fill missing members, deeply; bad defaults fail at build', async (t) => {
  const b = basics();
  const verdict = b.enum('verdict', 4, [['VERDICT_PASS', 0], ['VERDICT_DROP', 1]]);
  const inner = b.struct('inner', 4, [['port', b.u16, 0], ['proto', b.u8, 16]]);
  const outer = b.struct('outer', 12, [['verdict', verdict, 0], ['in', inner, 32], ['c', b.u32, 64]]);
  const c = codec(b.table, outer, { defaults: { verdict: 'drop', in: { proto: 6 } } });
  roundTrip(t, c, { in: { port: 80 }, c: 1 }, '01000000 5000 06 00 01000000', { verdict: 'drop', in: { port: 80, proto: 6 }, c: 1 });
  roundTrip(t, c, { verdict: 'pass', in: { port: 80, proto: 17 }, c: 1 }, '00000000 5000 11 00 01000000');
  badInput(t, c, { verdict: 'pass', c: 1, in: {} }, 'value.in', 'missing member "port"');
  // The default of `in` lacks a port: `in` itself stays required.
  badInput(t, c, { verdict: 'pass', c: 1 }, 'value', 'missing member "in"');
  badInput(t, c, { in: { port: 80 } }, 'value', 'missing member "c"');

  const schema = c.schema();
  const typed = (schema.anyOf as JsonSchema[])[0] as { required: string[]; properties: Record<string, JsonSchema> };
  t.strictSame(typed.required, ['in', 'c'], 'defaulted members are not required');
  t.equal(typed.properties.verdict?.default, 'drop');

  t.throws(() => codec(b.table, outer, { defaults: { verdict: 'dorp' } }), { message: 'value: defaults.verdict: expected one of pass, drop, got "dorp"' });
  t.throws(() => codec(b.table, outer, { defaults: { colour: 1 } }), { message: /value: \(root\): defaults: no member "colour" in struct outer \(members: verdict, in, c\)/ });
  t.throws(() => codec(b.table, outer, { defaults: { in: 5 } }), { message: /value: in: defaults: expected an object for struct inner, got 5/ });
  t.throws(() => codec(b.table, outer, { defaults: { in: { port: 'x' } } }), { message: /defaults\.in\.port: expected an integer/ });
  t.throws(() => codec(b.table, outer, { defaults: [1] }), { message: /defaults: expected an object/ });
});

t.test('unions: exactly one member in, the widest member out', async (t) => {
  const b = basics();
  const addr = b.union('addr', 16, [['v4', b.u32], ['v6', b.array(b.u8, 16)], ['w', b.array(b.u32, 4)]]);
  const c = codec(b.table, addr, { formats: { v4: 'ipv4', v6: 'ipv6' } });
  roundTrip(t, c, { v6: '2001:db8::1' }, '20010db8000000000000000000000001');
  roundTrip(t, c, { v4: '10.0.0.1' }, '0a000001 000000000000000000000000', { v6: 'a00:1::' });
  roundTrip(t, c, { w: [1, 2, 3, 4] }, '01000000020000000300000004000000', { v6: '100:0:200:0:300:0:400:0' });
  badInput(t, c, {}, 'value', 'expected exactly one of "v4", "v6", "w", got none');
  badInput(t, c, { v4: '10.0.0.1', w: [1, 2, 3, 4] }, 'value', 'expected exactly one of "v4", "v6", "w", got "v4", "w"');
  badInput(t, c, { v5: 1 }, 'value', 'unknown member "v5" (one of "v4", "v6", "w")');
  badInput(t, c, { v4: '10.0.0.256' }, 'value.v4', 'expected an IPv4 address "a.b.c.d", got "10.0.0.256"');
  badInput(t, c, 'x', 'value', /expected an object with exactly one of/);

  // No member covers it all: the first of the largest is shown.
  const odd = codec(b.table, b.union('odd', 8, [['a', b.u16], ['b', b.u32], ['c', b.s32]]));
  t.strictSame(odd.decode(hex('0100000000000000')), { b: 1 });
  // A union in a struct with a default for it.
  const holder = b.struct('holder', 20, [['kind', b.u32, 0], ['addr', addr, 32]]);
  const h = codec(b.table, holder, { defaults: { addr: { v4: '0.0.0.0' } }, formats: { 'addr.v4': 'ipv4', 'addr.v6': 'ipv6' } });
  roundTrip(t, h, { kind: 1 }, '01000000 00000000000000000000000000000000', { kind: 1, addr: { v6: '::' } });
  t.throws(() => codec(b.table, holder, { defaults: { addr: { v4: 0, w: [0, 0, 0, 0] } } }), { message: 'value: defaults.addr: expected exactly one of "v4", "v6", "w", got "v4", "w"' });
});

t.test('anonymous members: structs flattened, unions as one of their members', async (t) => {
  const b = basics();
  const pair = b.struct('', 2, [['ttl', b.u8, 0], ['tos', b.u8, 8]]);
  const mark = b.union('', 4, [['mark', b.u32], ['mark_bytes', b.array(b.u8, 4)]]);
  const s = b.struct('s', 8, [['', pair, 0], ['', mark, 32]]);
  const c = codec(b.table, s);
  roundTrip(t, c, { ttl: 64, tos: 1, mark: 0x01020304 }, '4001 0000 04030201');
  roundTrip(t, c, { ttl: 64, tos: 1, mark_bytes: [1, 2, 3, 4] }, '4001 0000 01020304', { ttl: 64, tos: 1, mark: 0x04030201 });
  badInput(t, c, { ttl: 64, tos: 1 }, 'value', 'missing one of "mark", "mark_bytes" (an anonymous union)');
  badInput(t, c, { ttl: 64, tos: 1, mark: 1, mark_bytes: [1, 2, 3, 4] }, 'value', /expected only one of "mark", "mark_bytes"/);
  const d = codec(b.table, s, { defaults: { mark: 7 } });
  roundTrip(t, d, { ttl: 1, tos: 2 }, '0102 0000 07000000', { ttl: 1, tos: 2, mark: 7 });
  roundTrip(t, d, { ttl: 1, tos: 2, mark_bytes: [0, 0, 0, 1] }, '0102 0000 00000001', { ttl: 1, tos: 2, mark: 0x01000000 });
  const v = validator(d.schema());
  t.ok(v({ ttl: 1, tos: 2 }) && v({ ttl: 1, tos: 2, mark: 1 }), 'schema: none or one of the union');
  t.notOk(v({ ttl: 1, tos: 2, mark: 1, mark_bytes: [1, 2, 3, 4] }), 'schema: not two');
  t.notOk(validator(c.schema())({ ttl: 1, tos: 2 }), 'schema: one is required without a default');
  // Unnamed bitfields are padding, not members.
  const padded = b.struct('p', 4, [['a', b.u32, 0, 3], ['', b.u32, 3, 5], ['c', b.u32, 8, 8]]);
  roundTrip(t, codec(b.table, padded), { a: 7, c: 255 }, '07ff0000');
});

t.test('arrays: exactly nelems elements, each with its path', async (t) => {
  const b = basics();
  const range = b.struct('range', 4, [['lo', b.u16, 0], ['hi', b.u16, 16]]);
  const s = b.struct('s', 24, [['counts', b.array(b.u32, 2), 0], ['ranges', b.array(range, 2), 64], ['grid', b.array(b.array(b.u8, 2), 4), 128]]);
  const c = codec(b.table, s);
  const value = { counts: [1, 2], ranges: [{ lo: 1, hi: 2 }, { lo: 3, hi: 4 }], grid: [[1, 2], [3, 4], [5, 6], [7, 8]] };
  roundTrip(t, c, value, '01000000 02000000 0100 0200 0300 0400 0102030405060708');
  badInput(t, c, { ...value, counts: [1] }, 'value.counts', 'expected an array of exactly 2 elements, got an array of 1');
  badInput(t, c, { ...value, counts: [1, 2, 3] }, 'value.counts', 'expected an array of exactly 2 elements, got an array of 3');
  badInput(t, c, { ...value, counts: { 0: 1 } }, 'value.counts', 'expected an array of exactly 2 elements, got an object');
  badInput(t, c, { ...value, ranges: [{ lo: 1, hi: 2 }, { lo: 3 }] }, 'value.ranges[1]', 'missing member "hi"');
  badInput(t, c, { ...value, grid: [[1, 2], [3, 4], [5, 256], [7, 8]] }, 'value.grid[2][1]', /got 256/);
  roundTrip(t, codec(b.table, b.array(b.u32, 0)), [], '');
});

t.test('char arrays are strings; bytes that are no string come out as numbers', async (t) => {
  const b = basics();
  const name = codec(b.table, b.struct('name_key', 20, [['name', b.array(b.char, 16), 0], ['ifindex', b.u32, 128]]));
  roundTrip(t, name, { name: 'eth0', ifindex: 3 }, '65746830000000000000000000000000 03000000');
  roundTrip(t, name, { name: '', ifindex: 3 }, '00000000000000000000000000000000 03000000');
  roundTrip(t, name, { name: 'exactly16bytes!!', ifindex: 0 }, '65786163746c793136627974657321 21 00000000', { name: 'exactly16bytes!!', ifindex: 0 });
  roundTrip(t, name, { name: 'grüße', ifindex: 0 }, '6772c3bc c39f65 000000000000000000 00000000');
  badInput(t, name, { name: 'seventeen bytes!!', ifindex: 0 }, 'value.name', 'expected a string of at most 16 bytes, got 17 bytes of UTF-8');
  badInput(t, name, { name: 'ééééééééé', ifindex: 0 }, 'value.name', 'expected a string of at most 16 bytes, got 18 bytes of UTF-8');
  badInput(t, name, { name: 'a\u0000b', ifindex: 0 }, 'value.name', 'expected a string without NUL characters');
  badInput(t, name, { name: '\ud800', ifindex: 0 }, 'value.name', /lone surrogate/);
  badInput(t, name, { name: 5, ifindex: 0 }, 'value.name', 'expected a string of at most 16 bytes, got 5');
  // Not a NUL-terminated UTF-8 string: the chars as numbers (char is signed here), and back.
  const junk = hex('ff 41 00 42 000000000000000000000000 00000000');
  const decoded = name.decode(junk);
  t.strictSame(decoded, { name: [-1, 65, 0, 66, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], ifindex: 0 });
  t.equal(name.encode(decoded, 'value').toString('hex'), junk.toString('hex'));
  badInput(t, name, { name: [1, 2], ifindex: 0 }, 'value.name', 'expected an array of exactly 16 elements, got an array of 2');
  // A char BTF encoding counts as char too; unsigned char (__u8) arrays stay arrays.
  roundTrip(t, codec(b.table, b.array(b.int('weird', 1, { char: true }), 2)), 'hi', '6869');
  roundTrip(t, codec(b.table, b.array(b.u8, 2)), [104, 105], '6869');
  // A format on the elements keeps it an array.
  roundTrip(t, codec(b.table, b.array(b.char, 2), { formats: { '[]': 'hex' } }), ['0x68', '0x69'], '6869');
});

t.test('bitfields as clang lays them out, signed and enum ones too', async (t) => {
  const b = basics();
  const color = b.enum('color', 4, [['COLOR_RED', 0], ['COLOR_GREEN', 2], ['COLOR_BLUE', 4]]);
  // struct { u32 low:3, mid:7, wide:12; s32 offset:5; enum color hue:3; _Bool on:1; u64 huge:40; u64 tail:24; u8 after; }
  const bits = b.struct('bits', 24, [
    ['low', b.u32, 0, 3],
    ['mid', b.u32, 3, 7],
    ['wide', b.u32, 10, 12],
    ['offset', b.s32, 22, 5],
    ['hue', color, 27, 3],
    ['on', b.bool, 30, 1],
    ['huge', b.u64, 64, 40],
    ['tail', b.u64, 104, 24],
    ['after', b.u8, 128],
  ]);
  const c = codec(b.table, bits);
  const value = { low: 5, mid: 99, wide: 3000, offset: -9, hue: 'green', on: true, huge: 0xabcdef0123, tail: 0x123456, after: 7 };
  // low=5 | mid=99<<3 | wide=3000<<10 | offset=(-9 & 31)<<22 | hue=2<<27 | on=1<<30 = 0x55eee31d
  roundTrip(t, c, value, '1de3ee55 00000000 2301efcdab 563412 07 00000000000000');
  t.strictSame(c.decode(hex('ffffffff ffffffff ffffffffff ffffff ff 00000000000000')), {
    low: 7,
    mid: 127,
    wide: 4095,
    offset: -1,
    hue: 7,
    on: true,
    huge: 0xffffffffff,
    tail: 0xffffff,
    after: 255,
  });
  badInput(t, c, { ...value, low: 8 }, 'value.low', 'expected an integer from 0 to 7, got 8');
  badInput(t, c, { ...value, offset: 16 }, 'value.offset', 'expected an integer from -16 to 15, got 16');
  badInput(t, c, { ...value, hue: 8 }, 'value.hue', 'expected one of red, green, blue or an integer from 0 to 7, got 8');
  badInput(t, c, { ...value, on: 1 }, 'value.on', 'expected true or false, got 1');
  // A 64-bit bitfield beyond 2^53, and one at an odd place.
  const wide = codec(b.table, b.struct('w', 16, [['pad', b.u8, 0, 4], ['big', b.u64, 4, 60]]));
  roundTrip(t, wide, { pad: 1, big: '1152921504606846975' }, 'f1ffffffffffffff 0000000000000000');
  // Old-style BTF: the member's int type carries width and offset, the struct no kind flag.
  const narrow = b.int('unsigned int', 4, { bits: 3 });
  const shifted = b.int('unsigned int', 4, { bits: 4, bitOffset: 2 });
  roundTrip(t, codec(b.table, b.struct('old', 4, [['a', narrow, 0], ['b', narrow, 3], ['c', shifted, 6]])), { a: 1, b: 2, c: 15 }, '11 0f 0000');
  roundTrip(t, codec(b.table, shifted), 15, '3c000000');
  t.throws(() => codec(b.table, bits, { formats: { low: 'hex' } }), { message: 'value: low: format hex cannot apply to a bitfield' });
  t.throws(() => codec(b.table, b.struct('f', 4, [['x', b.float('float', 4), 0, 3]])), { message: 'value: x: bitfield of float: not supported' });
});

t.test('formats: ipv4, ipv6, mac, be16/32/64, hex', async (t) => {
  const b = basics();
  const s = b.struct('endpoint', 40, [
    ['v4', b.u32, 0],
    ['v6', b.array(b.u8, 16), 32],
    ['mac', b.array(b.u8, 6), 160],
    ['port', b.typedef('__be16', b.u16), 208],
    ['seq', b.u32, 224],
    ['cookie', b.u64, 256],
  ]);
  const formats = { v4: 'ipv4', v6: 'ipv6', mac: 'mac', port: 'be16', seq: 'be32', cookie: 'be64' } as const;
  const c = codec(b.table, s, { formats });
  const value = { v4: '10.1.2.3', v6: '2001:db8::1', mac: 'aa:bb:cc:dd:ee:ff', port: 443, seq: 0x01020304, cookie: '18446744073709551615' };
  roundTrip(t, c, value, '0a010203 20010db8000000000000000000000001 aabbccddeeff 01bb 01020304 ffffffffffffffff');
  roundTrip(t, c, { ...value, mac: 'AA-BB-CC-DD-EE-FF', v6: '2001:0DB8:0:0:0:0:0:1', cookie: 5 }, '0a010203 20010db8000000000000000000000001 aabbccddeeff 01bb 01020304 0000000000000005', { ...value, cookie: 5 });
  badInput(t, c, { ...value, v4: '10.1.2' }, 'value.v4', 'expected an IPv4 address "a.b.c.d", got "10.1.2"');
  badInput(t, c, { ...value, v4: '010.1.2.3' }, 'value.v4', /got "010.1.2.3"/);
  badInput(t, c, { ...value, v4: 167837955 }, 'value.v4', /got 167837955/);
  badInput(t, c, { ...value, v6: '2001:db8::1::2' }, 'value.v6', 'expected an IPv6 address, got "2001:db8::1::2"');
  badInput(t, c, { ...value, mac: 'aa:bb-cc:dd:ee:ff' }, 'value.mac', 'expected a MAC address "aa:bb:cc:dd:ee:ff", got "aa:bb-cc:dd:ee:ff"');
  badInput(t, c, { ...value, port: 65536 }, 'value.port', 'expected an unsigned integer from 0 to 65535, got 65536');
  badInput(t, c, { ...value, port: '443' }, 'value.port', /got "443"/);
  badInput(t, c, { ...value, cookie: '18446744073709551616' }, 'value.cookie', /got "18446744073709551616"/);
  badInput(t, c, { ...value, seq: -1 }, 'value.seq', /got -1/);

  const h = codec(b.table, s, { formats: { '': 'hex' } });
  t.equal(h.decode(Buffer.alloc(40, 0xab)), `0x${'ab'.repeat(40)}`, 'a format on the root replaces the struct');
  t.throws(() => codec(b.table, s, { formats: { '': 'hex', v6: 'hex' } }), { message: /value: v6: no such field for a format \(fields: none, only the root ""\)/ });
  const hv6 = codec(b.table, s, { formats: { ...formats, v6: 'hex' } });
  t.equal((hv6.decode(Buffer.alloc(40)) as { v6: string }).v6, `0x${'00'.repeat(16)}`);
  badInput(t, hv6, { ...value, v6: '0x00' }, 'value.v6', 'expected 16 bytes, got 1');
  badInput(t, hv6, { ...value, v6: '2001:db8::1' }, 'value.v6', /expected a hex string "0x..." of exactly 16 bytes/);
});

t.test('format build errors name the path and the type', async (t) => {
  const b = basics();
  const s = b.struct('endpoint', 8, [['port', b.typedef('__be16', b.u16), 0], ['addr', b.u32, 32]]);
  t.throws(() => codec(b.table, s, { formats: { port: 'ipv4' } }), { message: 'value: port: format ipv4 needs a 4-byte field, got 2 bytes (__be16)' });
  t.throws(() => codec(b.table, s, { formats: { addr: 'ipv6' } }), { message: 'value: addr: format ipv6 needs a 16-byte field, got 4 bytes (__u32)' });
  t.throws(() => codec(b.table, s, { formats: { addr: 'be16' } }), { message: /format be16 needs a 2-byte field/ });
  t.throws(() => codec(b.table, s, { formats: { addr: 'ip' } }), { message: 'value: addr: unknown format "ip" (formats: ipv4, ipv6, mac, be16, be32, be64, hex, cidr)' });
  t.throws(() => codec(b.table, s, { formats: { adr: 'ipv4' } }), { message: 'value: adr: no such field for a format (fields: port, addr)' });
  t.throws(() => codec(b.table, s, { formats: { 'addr.x': 'ipv4' } }), { message: /value: addr\.x: no such field/ });
  t.throws(() => codec(b.table, s, { formats: { '': 'cidr' } }), { message: /value: \(root\): format cidr needs an LPM trie key struct/ });
  t.throws(() => codec(b.table, b.u32, { formats: { '': 'cidr' } }), { message: /format cidr needs an LPM trie key struct .* got __u32 \(4 bytes\)/ });
  t.throws(() => codec(b.table, b.fwd('policy_key')), { message: /value: \(root\): struct policy_key is only a forward declaration in BTF.*bpf\/firewall\.bpf\.c/ });
  t.throws(() => codec(b.table, b.struct('p', 8, [['p', b.ptr(0), 0]]), { formats: { p: 'ipv4' } }), { message: 'value: p: format ipv4 needs a 4-byte field, got 8 bytes (a pointer)' });
  t.throws(() => codec(b.table, b.array(b.u32, 2), { formats: { '': 'mac' } }), { message: 'value: (root): format mac needs a 6-byte field, got 8 bytes (__u32[2])' });
  t.throws(() => codec(b.table, b.float('float', 4), { formats: { '': 'be16' } }), { message: 'value: (root): format be16 needs a 2-byte field, got 4 bytes (float)' });
  t.throws(() => codec(b.table, b.union('u', 4, [['a', b.u32]]), { formats: { '': 'ipv6' } }), { message: /got 4 bytes \(union u\)/ });
  t.throws(() => codec(b.table, b.int('odd', 1, { bits: 4, bitOffset: 6 })), { message: 'value: (root): bitfield of 4 bits at bit 6 does not fit 1 bytes' });
  t.throws(() => codec(b.table, b.struct('short', 2, [['a', b.u16, 0], ['b', b.u8, 16]])), { message: 'value: b: member ends past the 2 bytes of struct short' });
  t.throws(() => codec(b.table, b.struct('short', 1, [['a', b.u16, 4, 8]])), { message: 'value: a: member ends past the 1 bytes of struct short' });
  t.throws(() => codec(b.table, b.struct('s', 4, [['a', b.array(b.u8, 2), 3]])), { message: 'value: a: member at bit offset 3 is not a bitfield' });
  const anon = b.union('', 4, [['mark', b.u32], ['bytes', b.array(b.u8, 4)]]);
  t.throws(() => codec(b.table, b.struct('s', 4, [['', anon, 0]]), { defaults: { mark: 1, bytes: [1, 2, 3, 4] } }), { message: 'value: (root): defaults: at most one of mark, bytes (an anonymous union)' });
  t.throws(() => codec(b.table, b.struct('s', 4, [['', b.array(b.u8, 4), 0]])), { message: 'value: (root): anonymous array member: not supported' });
  t.throws(() => codec(b.table, 0), { message: 'value: (root): void has no value' });
  t.throws(() => codec(b.table, 999), { message: 'value: (root): no BTF type with id 999' });
  t.throws(() => codec(b.table, b.add({ kind: 'func_proto', name: '' })), { message: 'value: (root): cannot encode BTF func_proto (anonymous)' });
});

t.test('cidr: LPM trie keys as prefixes', async (t) => {
  const b = basics();
  const v4 = codec(b.table, b.struct('lpm_v4', 8, [['prefixlen', b.u32, 0], ['addr', b.u32, 32]]), { formats: { '': 'cidr' }, name: 'key' });
  roundTrip(t, v4, '10.0.0.0/8', '08000000 0a000000');
  roundTrip(t, v4, '10.1.2.3/8', '08000000 0a000000', '10.0.0.0/8');
  roundTrip(t, v4, '10.1.2.3', '20000000 0a010203', '10.1.2.3/32');
  roundTrip(t, v4, '0.0.0.0/0', '00000000 00000000');
  roundTrip(t, v4, '192.168.255.255/23', '17000000 c0a8fe00', '192.168.254.0/23');
  badInput(t, v4, '10.0.0.0/33', 'value', 'prefix length 33 is longer than the 32 bits of the address');
  badInput(t, v4, '10.0.0.0/08', 'value', /expected an IPv4 prefix "a.b.c.d\/n" \(n from 0 to 32\), got "10.0.0.0\/08"/);
  badInput(t, v4, '10.0.0.0/', 'value', /got "10.0.0.0\/"/);
  badInput(t, v4, '::1/128', 'value', /expected an IPv4 prefix/);
  badInput(t, v4, { prefixlen: 8, addr: 10 }, 'value', /expected an IPv4 prefix/);
  t.equal(v4.decode(hex('08000000 0a010203')), '10.1.2.3/8', 'decode shows the bytes as they are');
  // The escape hatch still reaches the bytes.
  t.equal(v4.encode('0x080000000a000000', 'key').toString('hex'), '080000000a000000');

  const v6 = codec(b.table, b.struct('lpm_v6', 20, [['prefixlen', b.u32, 0], ['addr', b.array(b.u8, 16), 32]]), { formats: { '': 'cidr' } });
  roundTrip(t, v6, '2001:db8::/32', '20000000 20010db8000000000000000000000000');
  roundTrip(t, v6, '2001:db8:ffff::1/33', '21000000 20010db8800000000000000000000000', '2001:db8:8000::/33');
  roundTrip(t, v6, '::1', '80000000 00000000000000000000000000000001', '::1/128');
  roundTrip(t, v6, '::ffff:10.0.0.0/104', '68000000 00000000000000000000ffff0a000000', '::ffff:10.0.0.0/104');
  badInput(t, v6, '2001:db8::/129', 'value', 'prefix length 129 is longer than the 128 bits of the address');
  badInput(t, v6, '10.0.0.0/8', 'value', /expected an IPv6 prefix/);
});

t.test('the top level also takes raw hex of exactly its size', async (t) => {
  const b = basics();
  const s = b.struct('s', 4, [['a', b.u16, 0], ['b', b.u16, 16]]);
  const c = codec(b.table, s);
  t.equal(c.encode('0x01000200', 'key').toString('hex'), '01000200');
  t.equal(c.encode('0xABCDEF01', 'key').toString('hex'), 'abcdef01');
  badInput(t, c, '0x010002', 'key', 'expected 4 bytes, got 3', 'key');
  badInput(t, c, '0x0100020', 'key', 'expected 4 bytes, got an odd number of hex digits (7)', 'key');
  badInput(t, c, '0x0100020000', 'key', 'expected 4 bytes, got 5', 'key');
  badInput(t, c, '01000200', 'key', 'expected an object with members a, b, got "01000200"', 'key');
  // Only at the top: a nested struct wants its members.
  const outer = codec(b.table, b.struct('o', 4, [['in', s, 0]]));
  badInput(t, outer, { in: '0x01000200' }, 'value.in', /expected an object with members a, b/);
  t.throws(() => c.decode(Buffer.alloc(3)), { name: 'TypeError', message: 'expected 4 bytes to decode, got 3' });
});

t.test('formats: ipv6 text forms and canonical output', async (t) => {
  const cases: [string, string][] = [
    ['::', '::'],
    ['::1', '::1'],
    ['1::', '1::'],
    ['2001:DB8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8::0:1', '2001:db8::1'],
    ['0:0:1:0:0:0:1:0', '0:0:1::1:0'],
    ['1:0:0:2:0:0:3:4', '1::2:0:0:3:4'],
    ['::ffff:192.0.2.1', '::ffff:192.0.2.1'],
    ['::FFFF:c000:0201', '::ffff:192.0.2.1'],
    ['64:ff9b::192.0.2.33', '64:ff9b::c000:221'],
    ['::192.0.2.1', '::c000:201'],
    ['1:2:3:4:5:6:7::', '1:2:3:4:5:6:7:0'],
    ['::2:3:4:5:6:7:8', '0:2:3:4:5:6:7:8'],
    ['fe80::1:2:3:4', 'fe80::1:2:3:4'],
  ];
  for (const [input, canonical] of cases) {
    const bytes = parseIpv6(input);
    t.ok(bytes, `${input} parses`);
    if (bytes) t.equal(formatIpv6(bytes), canonical, `${input} -> ${canonical}`);
  }
  for (const bad of ['', ':', ':::', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '1::2::3', '12345::', 'g::', '::1.2.3', '1.2.3.4::', '::ffff:1.2.3.256', 'fe80::1%eth0', '1:2:3:4:5:6:7:8::', ':1::', '1::2:']) {
    t.equal(parseIpv6(bad), null, `${JSON.stringify(bad)} is refused`);
  }
  t.equal(parseIpv4('255.255.255.255')?.toString('hex'), 'ffffffff');
  for (const bad of ['1.2.3', '1.2.3.4.5', '256.1.1.1', '01.1.1.1', ' 1.1.1.1', '1.1.1.1 ', '1..1.1', '+1.1.1.1']) t.equal(parseIpv4(bad), null, `${JSON.stringify(bad)}`);
  t.equal(parseMac('01-23-45-67-89-AB')?.toString('hex'), '0123456789ab');
  for (const bad of ['01:23:45:67:89', '01:23:45:67:89:ab:cd', '0123.4567.89ab', '1:23:45:67:89:ab']) t.equal(parseMac(bad), null, bad);
});

// ------------------------------------------------------------- the fixture

const object = BpfObject.open(fixture('types.bpf.o'));
const btf = object.btf();
const maps = Object.fromEntries(object.maps().map((m) => [m.name, m]));
object.close();
if (!btf) throw new Error('types.bpf.o has no BTF');
const fixtureBtf: BtfTable = btf;

/** The codecs of types.bpf.o's maps, with the formats an operator would configure. */
const FIXTURE_FORMATS: Record<string, { key?: Record<string, string>; value?: Record<string, string> }> = {
  endpoints: {
    key: { addr: 'ipv6', mac: 'mac', port: 'be16' },
    value: { 'ends[].addr': 'ipv6', 'ends[].mac': 'mac', 'ends[].port': 'be16', 'any.v6': 'ipv6' },
  },
  colors: { key: { v4: 'ipv4', v6: 'ipv6' } },
  routes_v4: { key: { '': 'cidr' } },
  routes_v6: { key: { '': 'cidr' } },
};

function fixtureCodecs(name: string): { key: FieldCodec; value: FieldCodec } {
  const def = maps[name];
  if (!def) throw new Error(`no map ${name}`);
  const inner = def.inner ?? def;
  return {
    key: typedCodec(fixtureBtf, inner.btfKeyTypeId, { formats: FIXTURE_FORMATS[name]?.key ?? {}, name: 'key' }),
    value: typedCodec(fixtureBtf, inner.btfValueTypeId, { formats: FIXTURE_FORMATS[name]?.value ?? {}, name: 'value' }),
  };
}

t.test('the fixture: every map key and value has a typed codec of the map\'s sizes', async (t) => {
  for (const def of Object.values(maps)) {
    if (def.internal) continue;
    const inner = def.inner ?? def;
    const c = fixtureCodecs(def.name);
    t.equal(c.key.size, inner.keySize, `${def.name} key size`);
    t.equal(c.value.size, inner.valueSize, `${def.name} value size`);
  }
  const scalars = fixtureCodecs('scalars').value;
  const value = {
    u8: 255,
    u16: 65535,
    u32: 4294967295,
    u64: '18446744073709551615',
    s8: -128,
    s16: -32768,
    s32: -2147483648,
    s64: '-9223372036854775808',
    flag: true,
    letter: 120,
    color: 'blue',
    delta: 'down',
    ratio: 1.5,
    mean: -2.25,
    cookie: 4660,
  };
  const bytes = scalars.encode(value, 'value');
  t.strictSame(scalars.decode(bytes), value);
  t.equal(bytes.subarray(1, 2).toString('hex'), '00', 'padding after u8 is zero');
  const tenants = fixtureCodecs('tenants');
  t.strictSame(tenants.key.decode(tenants.key.encode({ vlan: 100, proto: 6, addr: 1 }, 'key')), { vlan: 100, proto: 6, addr: 1 });
  t.strictSame(tenants.value.decode(tenants.value.encode({ label: 'gold', trend: 'up', bytes: '1152921504606846976' }, 'value')), {
    label: 'gold',
    trend: 'up',
    bytes: '1152921504606846976',
  });
  const flags = fixtureCodecs('flags');
  t.equal(flags.key.encode('-1', 'key').toString('hex'), 'ffffffffffffffff', 'a signed 64-bit key as a decimal string');
  t.equal(flags.value.decode(flags.value.encode(true, 'value')), true);
});

t.test('schemas are valid JSON Schema and agree with the codec', async (t) => {
  const rng = mulberry32(0x5eed);
  for (const def of Object.values(maps)) {
    if (def.internal) continue;
    for (const [part, c] of Object.entries(fixtureCodecs(def.name))) {
      const valid = validator(c.schema());
      t.ok(valid(`0x${'00'.repeat(c.size)}`), `${def.name} ${part}: raw hex`);
      for (let i = 0; i < 50; i++) {
        const value = c.decode(randomBytes(rng, c.size, def.name));
        if (!valid(value)) t.fail(`${def.name} ${part}: ${JSON.stringify(value)} fails its schema`);
      }
    }
  }
  const endpoints = fixtureCodecs('endpoints');
  const keyValid = validator(endpoints.key.schema());
  t.ok(keyValid({ addr: '2001:db8::1', mac: 'aa-bb-cc-dd-ee-ff', port: 80 }));
  t.notOk(keyValid({ addr: '2001:db8::1', mac: 'aa-bb-cc-dd-ee-ff', port: 70000 }), 'range');
  t.notOk(keyValid({ addr: '2001:db8::1', mac: 'aa-bb-cc-dd-ee-ff' }), 'required');
  t.notOk(keyValid({ addr: '2001:db8::1', mac: 'aa-bb-cc-dd-ee-ff', port: 80, x: 1 }), 'additional');
  t.notOk(keyValid({ addr: '2001:db8::1', mac: 'aa:bb-cc-dd-ee-ff', port: 80 }), 'mac pattern');
  t.notOk(keyValid(`0x${'00'.repeat(23)}`), 'raw hex of the wrong size');
  const scalarValid = validator(fixtureCodecs('scalars').value.schema());
  const scalar = fixtureCodecs('scalars').value.decode(Buffer.alloc(64)) as Record<string, unknown>;
  t.ok(scalarValid({ ...scalar, color: 'blue', delta: 'DELTA_DOWN' }), 'enum names, both spellings');
  t.notOk(scalarValid({ ...scalar, color: 'purple' }), 'not an enumerator');
  t.ok(scalarValid({ ...scalar, u64: '18446744073709551615', s64: '-9223372036854775808' }), '64-bit as strings');
  t.notOk(scalarValid({ ...scalar, u32: '5' }), '32-bit not as a string');
  t.notOk(scalarValid({ ...scalar, flag: 1 }), 'bool is a boolean');
  t.ok(scalarValid({ ...scalar, ratio: 'NaN' }));
  const nameValid = validator(fixtureCodecs('bitfields').key.schema());
  t.ok(nameValid({ name: 'veth0', ifindex: 1 }));
  t.notOk(nameValid({ name: 'x'.repeat(17), ifindex: 1 }), 'maxLength');
  const cidrValid = validator(fixtureCodecs('routes_v4').key.schema());
  t.ok(cidrValid('10.0.0.0/8') && cidrValid('10.0.0.1'));
  t.notOk(cidrValid('10.0.0.0/33'));
  const cidr6Valid = validator(fixtureCodecs('routes_v6').key.schema());
  t.ok(cidr6Valid('2001:db8::/32') && cidr6Valid('::1'));
  t.notOk(cidr6Valid('2001:db8::/129'));
  t.not(fixtureCodecs('scalars').value.schema(), fixtureCodecs('scalars').value.schema(), 'a fresh copy each time');
});

// ------------------------------------------------------ randomized round trip

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let x = a;
    x = Math.imul(x ^ (x >>> 15), x | 1);
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61);
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Random bytes for a field; for LPM keys a valid prefix (prefixlen within the
 * address, host bits zero), as the kernel's trie would hold it. Half of the
 * buffers use few distinct bytes, so zeros, NULs, 0xff and enumerator values
 * turn up often.
 */
function randomBytes(rng: () => number, size: number, map = ''): Buffer {
  const bytes = Buffer.alloc(size);
  const pool = rng() < 0.5 ? [0, 0, 0, 1, 2, 4, 0x41, 0x7f, 0x80, 0xff] : null;
  for (let i = 0; i < size; i++) bytes[i] = pool ? (pool[Math.floor(rng() * pool.length)] ?? 0) : Math.floor(rng() * 256);
  if (map.startsWith('routes_') && size === 8 + (map === 'routes_v6' ? 12 : 0)) {
    const bits = (size - 4) * 8;
    const prefixlen = Math.floor(rng() * (bits + 1));
    bytes.writeUInt32LE(prefixlen, 0);
    for (let bit = prefixlen; bit < bits; bit++) bytes[4 + (bit >> 3)] = (bytes[4 + (bit >> 3)] ?? 0) & ~(0x80 >> (bit & 7));
  }
  return bytes;
}

t.test('randomized: decode(encode(x)) is x for values of every kind', async (t) => {
  const rng = mulberry32(20240611);
  const rounds = 400;
  const b = basics();
  const synthetic: [string, FieldCodec][] = [
    ['enum64', codec(b.table, b.enum('big', 8, [['BIG_A', 1], ['BIG_B', '18446744073709551615'], ['BIG_C', '-5']], { kind: 'enum64' }))],
    ['signed enum64', codec(b.table, b.enum('big', 8, [['BIG_A', '-9223372036854775808'], ['BIG_B', -1]], { kind: 'enum64', signed: true }))],
    ['int128', codec(b.table, b.int('__int128', 16, { signed: true }))],
    ['bitfields', codec(b.table, b.struct('w', 16, [['a', b.s64, 0, 1], ['b', b.u64, 1, 63], ['c', b.s32, 64, 17], ['d', b.u8, 81, 7]]))],
    ['old bitfield', codec(b.table, b.int('unsigned int', 4, { bits: 5, bitOffset: 9 }))],
    ['hex', codec(b.table, b.array(b.u8, 5), { formats: { '': 'hex' } })],
    ['mac', codec(b.table, b.array(b.u8, 6), { formats: { '': 'mac' } })],
    ['be64', codec(b.table, b.u64, { formats: { '': 'be64' } })],
    ['double', codec(b.table, b.float('double', 8))],
  ];
  const all: [string, FieldCodec, string][] = [...synthetic.map(([n, c]): [string, FieldCodec, string] => [n, c, ''])];
  for (const def of Object.values(maps)) {
    if (def.internal) continue;
    const c = fixtureCodecs(def.name);
    all.push([`${def.name} key`, c.key, def.name], [`${def.name} value`, c.value, def.name]);
  }
  for (const [name, c, map] of all) {
    let failures = 0;
    for (let i = 0; i < rounds && failures < 3; i++) {
      const x = c.decode(randomBytes(rng, c.size, map));
      let back: unknown;
      try {
        back = c.decode(c.encode(structuredClone(x), 'value'));
      } catch (err) {
        back = err;
      }
      if (!sameJson(back, x)) {
        failures++;
        t.strictSame(back, x, `${name}: ${JSON.stringify(x)}`);
      }
    }
    t.equal(failures, 0, `${name}: ${rounds} random values round-trip`);
  }
});

t.test('randomized: JSON first, for integers, strings and addresses', async (t) => {
  const rng = mulberry32(7);
  const b = basics();
  const int = (lo: bigint, hi: bigint): bigint => lo + (BigInt(Math.floor(rng() * 2 ** 32)) * BigInt(Math.floor(rng() * 2 ** 32)) + BigInt(Math.floor(rng() * 2 ** 32))) % (hi - lo + 1n);
  const cases: [FieldCodec, bigint, bigint][] = [
    [codec(b.table, b.u8), 0n, 255n],
    [codec(b.table, b.s16), -32768n, 32767n],
    [codec(b.table, b.s32), -(2n ** 31n), 2n ** 31n - 1n],
    [codec(b.table, b.u64), 0n, 2n ** 64n - 1n],
    [codec(b.table, b.s64), -(2n ** 63n), 2n ** 63n - 1n],
  ];
  for (const [c, lo, hi] of cases) {
    for (let i = 0; i < 300; i++) {
      const n = rng() < 0.2 ? [lo, hi, 0n][Math.floor(rng() * 3)] ?? 0n : int(lo, hi);
      const json = n >= -BigInt(Number.MAX_SAFE_INTEGER) && n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
      const back = c.decode(c.encode(json, 'value'));
      if (back !== json) t.fail(`${String(n)} came back as ${JSON.stringify(back)}`);
    }
  }
  const name = codec(b.table, b.array(b.char, 16));
  const alphabet = ['a', 'Z', '0', ' ', 'é', 'ß', '€', '😀', '\u200b', '\t', '\ufeff'];
  for (let i = 0; i < 300; i++) {
    let s = '';
    for (;;) {
      const next = s + (alphabet[Math.floor(rng() * alphabet.length)] ?? '');
      if (Buffer.byteLength(next) > 16 || rng() < 0.1) break;
      s = next;
    }
    const back = name.decode(name.encode(s, 'value'));
    if (back !== s) t.fail(`${JSON.stringify(s)} came back as ${JSON.stringify(back)}`);
  }
  const v6 = codec(b.table, b.array(b.u8, 16), { formats: { '': 'ipv6' } });
  for (let i = 0; i < 300; i++) {
    const words = Array.from({ length: 8 }, () => (rng() < 0.5 ? 0 : Math.floor(rng() * 65536)));
    const full = words.map((w) => w.toString(16)).join(':');
    // WHATWG URL serializes IPv6 as RFC 5952 does, except for the mixed IPv4 notation.
    const expected = new URL(`http://[${full}]/`).hostname.slice(1, -1);
    const back = v6.decode(v6.encode(full, 'value'));
    const mapped = words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff;
    if (!mapped && back !== expected) t.fail(`${full}: ${String(back)}, URL says ${expected}`);
    if (v6.decode(v6.encode(back, 'value')) !== back) t.fail(`${String(back)} is not stable`);
    // Upper case, leading zeros: the same address.
    const padded = words.map((w) => w.toString(16).padStart(4, '0').toUpperCase()).join(':');
    if (v6.decode(v6.encode(padded, 'value')) !== back) t.fail(`${padded} is another address`);
  }
  t.pass('JSON-first round trips');
});

function sameJson(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b) && typeof a === typeof b;
}
