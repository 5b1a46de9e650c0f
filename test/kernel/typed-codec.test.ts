// The typed codec through the real kernel: entries of test/fixtures/types.bpf.o
// encoded from JSON, written into its maps (and into an inner map made from
// the map-in-map template), read back with lookup/nextKey and decoded. Bad
// input is refused with the field's path before anything reaches the kernel.
// The object pins nothing; its maps go with the object at teardown.
import t, { type Test } from 'tap';
import { BpfMap, BpfObject, type MapDef } from '../../daemon/src/kernel';
import type { FieldCodec } from '../../daemon/src/domain/codec';
import type { BtfTable } from '../../daemon/src/domain/btf';
import { typedCodec } from '../../daemon/src/domain/typed-codec';
import { fixture, u32 } from '../helpers/sandbox';

interface Codecs {
  key: FieldCodec;
  value: FieldCodec;
}

interface Entry {
  key: unknown;
  value: unknown;
}

/** What an operator would configure for these maps' fields. */
const FORMATS: Record<string, { key?: Record<string, string>; value?: Record<string, string> }> = {
  endpoints: {
    key: { addr: 'ipv6', mac: 'mac', port: 'be16' },
    value: { 'ends[].addr': 'ipv6', 'ends[].mac': 'mac', 'ends[].port': 'be16', 'any.v4': 'ipv4', 'any.v6': 'ipv6' },
  },
  colors: { key: { v4: 'ipv4', v6: 'ipv6' } },
  routes_v4: { key: { '': 'cidr' } },
  routes_v6: { key: { '': 'cidr' } },
};

interface Loaded {
  obj: BpfObject;
  btf: BtfTable;
  /** The map definitions as opened: libbpf zeroes an outer map's BTF key type id on load. */
  defs: Map<string, MapDef>;
}

async function loadFixture(t: Test): Promise<Loaded> {
  const obj = BpfObject.open(fixture('types.bpf.o'));
  t.teardown(() => obj.close());
  const btf = obj.btf();
  if (!btf) throw new Error('types.bpf.o has no BTF');
  const defs = new Map(obj.maps().map((m) => [m.name, m]));
  await obj.load();
  return { obj, btf, defs };
}

function defOf({ defs }: Loaded, mapName: string): MapDef {
  const def = defs.get(mapName);
  if (!def) throw new Error(`no map ${mapName}`);
  return def;
}

/** Codecs of a map's entries: the inner template's for a map-in-map. */
function codecsOf(loaded: Loaded, mapName: string): Codecs {
  const { btf } = loaded;
  const def = defOf(loaded, mapName);
  const inner = def.inner ?? def;
  return {
    key: typedCodec(btf, inner.btfKeyTypeId, { formats: FORMATS[mapName]?.key ?? {}, name: 'key' }),
    value: typedCodec(btf, inner.btfValueTypeId, { formats: FORMATS[mapName]?.value ?? {}, name: 'value' }),
  };
}

function openMap(t: Test, obj: BpfObject, name: string): BpfMap {
  const map = obj.map(name);
  t.teardown(() => map.close());
  return map;
}

/** As a PUT does it: every entry encoded (and so checked) first, then written. */
async function put(map: BpfMap, codecs: Codecs, entries: Entry[]): Promise<void> {
  const encoded = entries.map((e, i) => ({
    key: codecs.key.encode(e.key, `entries[${i}].key`),
    value: codecs.value.encode(e.value, `entries[${i}].value`),
  }));
  for (const { key, value } of encoded) await map.update(key, value);
}

/** Every entry the kernel holds, decoded, in key order. */
function dump(map: BpfMap, codecs: Codecs): Entry[] {
  const entries: Entry[] = [];
  for (const key of map.keys()) {
    const value = map.lookup(key);
    if (value) entries.push({ key: codecs.key.decode(key), value: codecs.value.decode(value) });
  }
  return entries.sort((a, b) => (JSON.stringify(a.key) < JSON.stringify(b.key) ? -1 : 1));
}

/** The kernel's bytes, to show that a refused request changed nothing. */
function snapshot(map: BpfMap): string[] {
  return [...map.keys()].map((k) => `${k.toString('hex')}=${map.lookup(k)?.toString('hex')}`).sort();
}

const sorted = (entries: Entry[]): Entry[] => [...entries].sort((a, b) => (JSON.stringify(a.key) < JSON.stringify(b.key) ? -1 : 1));

const SCALARS = {
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
  cookie: '18446744073709551615',
};

const BITS = { low: 5, mid: 99, wide: 3000, offset: -9, hue: 'green', on: true, huge: 737894400291, tail: 1193046, after: 7 };

const ENDPOINT_KEY = { addr: '2001:db8::1', mac: '02:00:00:00:00:01', port: 443 };

const NESTED = {
  ends: [
    { addr: '2001:db8::1', mac: '02:00:00:00:00:01', port: 80 },
    { addr: '::ffff:10.0.0.1', mac: '02:00:00:00:00:02', port: 443 },
  ],
  any: { v6: 'fe80::1' },
  counts: [1, 2, 3, 4294967295],
  ranges: [
    { lo: 10, hi: 20 },
    { lo: 30, hi: 40 },
  ],
  ttl: 64,
  tos: 16,
  mark: 51966,
};

/** Typed entries for each plain map: in -> what the kernel gives back, decoded. */
const CASES: Record<string, { entries: Entry[]; expected?: Entry[] }> = {
  scalars: {
    entries: [
      { key: 1, value: SCALARS },
      {
        key: 4294967295,
        value: { ...SCALARS, u64: 0, s64: 5, flag: false, letter: -1, color: 'red', delta: 'up', ratio: 'NaN', mean: '-Infinity', cookie: 0 },
      },
      // Names in the BTF spelling, numbers for enums, and a value with no name.
      { key: 2, value: { ...SCALARS, color: 'COLOR_GREEN', delta: 0, u64: '9007199254740993', ratio: 0.1 } },
      { key: 3, value: { ...SCALARS, color: 3 } },
    ],
    expected: [
      { key: 1, value: SCALARS },
      { key: 2, value: { ...SCALARS, color: 'green', delta: 'none', u64: '9007199254740993', ratio: Math.fround(0.1) } },
      { key: 3, value: { ...SCALARS, color: 3 } },
      {
        key: 4294967295,
        value: { ...SCALARS, u64: 0, s64: 5, flag: false, letter: -1, color: 'red', delta: 'up', ratio: 'NaN', mean: '-Infinity', cookie: 0 },
      },
    ],
  },
  bitfields: {
    entries: [
      { key: { name: 'veth0', ifindex: 7 }, value: BITS },
      { key: { name: 'exactly16bytes!!', ifindex: 8 }, value: { low: 7, mid: 127, wide: 4095, offset: -16, hue: 7, on: false, huge: 1099511627775, tail: 16777215, after: 255 } },
      { key: { name: 'grüße', ifindex: 9 }, value: { ...BITS, offset: 15, hue: 'COLOR_BLUE' } },
    ],
    expected: [
      { key: { name: 'exactly16bytes!!', ifindex: 8 }, value: { low: 7, mid: 127, wide: 4095, offset: -16, hue: 7, on: false, huge: 1099511627775, tail: 16777215, after: 255 } },
      { key: { name: 'grüße', ifindex: 9 }, value: { ...BITS, offset: 15, hue: 'blue' } },
      { key: { name: 'veth0', ifindex: 7 }, value: BITS },
    ],
  },
  endpoints: {
    entries: [
      { key: ENDPOINT_KEY, value: NESTED },
      {
        key: { addr: '2001:DB8:0:0:0:0:0:2', mac: 'AA-BB-CC-DD-EE-FF', port: 0 },
        value: { ...NESTED, any: { v4: '127.0.0.1' }, mark_bytes: [1, 2, 3, 4], mark: undefined },
      },
    ],
    expected: [
      { key: ENDPOINT_KEY, value: NESTED },
      {
        key: { addr: '2001:db8::2', mac: 'aa:bb:cc:dd:ee:ff', port: 0 },
        // Unions come back as their widest member, the anonymous one as `mark`.
        value: { ...NESTED, any: { v6: '7f00:1::' }, mark: 0x04030201 },
      },
    ],
  },
  flags: {
    entries: [
      { key: '-9223372036854775808', value: true },
      { key: -1, value: false },
      { key: '9223372036854775807', value: true },
    ],
  },
  colors: {
    entries: [
      { key: { v4: '10.0.0.1' }, value: 'green' },
      { key: { v6: '2001:db8::1' }, value: 'blue' },
      { key: '0x000000000000000000000000000000ff', value: 'COLOR_RED' },
    ],
    expected: [
      { key: { v6: '2001:db8::1' }, value: 'blue' },
      { key: { v6: '::ff' }, value: 'red' },
      { key: { v6: 'a00:1::' }, value: 'green' },
    ],
  },
  routes_v4: {
    entries: [
      { key: '10.0.0.0/8', value: { ifindex: 1, metric: 'up' } },
      { key: '10.1.2.3/16', value: { ifindex: 2, metric: 'down' } },
      { key: '192.168.1.7', value: { ifindex: 3, metric: 'none' } },
      { key: '0.0.0.0/0', value: { ifindex: 4, metric: 0 } },
    ],
    expected: [
      { key: '0.0.0.0/0', value: { ifindex: 4, metric: 'none' } },
      { key: '10.0.0.0/8', value: { ifindex: 1, metric: 'up' } },
      { key: '10.1.0.0/16', value: { ifindex: 2, metric: 'down' } },
      { key: '192.168.1.7/32', value: { ifindex: 3, metric: 'none' } },
    ],
  },
  routes_v6: {
    entries: [
      { key: '2001:db8::/32', value: { ifindex: 1, metric: 'up' } },
      { key: '2001:db8:1:2::ff/64', value: { ifindex: 2, metric: 'down' } },
      { key: '::1', value: { ifindex: 3, metric: 'none' } },
    ],
    expected: [
      { key: '2001:db8:1:2::/64', value: { ifindex: 2, metric: 'down' } },
      { key: '2001:db8::/32', value: { ifindex: 1, metric: 'up' } },
      { key: '::1/128', value: { ifindex: 3, metric: 'none' } },
    ],
  },
};

t.test('every kind round-trips through the kernel maps', async (t) => {
  const loaded = await loadFixture(t);
  const { obj } = loaded;
  for (const [name, { entries, expected }] of Object.entries(CASES)) {
    const map = openMap(t, obj, name);
    const codecs = codecsOf(loaded, name);
    await put(map, codecs, entries.map((e) => ({ key: e.key, value: withoutUndefined(e.value) })));
    t.strictSame(dump(map, codecs), sorted((expected ?? entries).map((e) => ({ key: e.key, value: withoutUndefined(e.value) }))), `${name}: what the kernel holds`);
    for (const entry of entries) {
      const value = map.lookup(codecs.key.encode(entry.key, 'key'));
      t.ok(value, `${name}: ${JSON.stringify(entry.key)} is found by its typed key`);
    }
  }
});

t.test('LPM trie: typed prefixes behave as the kernel matches them', async (t) => {
  const loaded = await loadFixture(t);
  const { obj } = loaded;
  const map = openMap(t, obj, 'routes_v4');
  const codecs = codecsOf(loaded, 'routes_v4');
  await put(map, codecs, CASES.routes_v4?.entries ?? []);
  const match = (address: string): unknown => {
    const value = map.lookup(codecs.key.encode(address, 'key'));
    return value && codecs.value.decode(value);
  };
  t.strictSame(match('10.1.200.9'), { ifindex: 2, metric: 'down' }, 'the /16 is the longest match');
  t.strictSame(match('10.2.0.1'), { ifindex: 1, metric: 'up' }, 'then the /8');
  t.strictSame(match('172.16.0.1'), { ifindex: 4, metric: 'none' }, 'then the default route');
  // Host bits are zeroed on input: the same prefix is the same key.
  await put(map, codecs, [{ key: '10.255.255.255/8', value: { ifindex: 9, metric: 'up' } }]);
  t.equal([...map.keys()].length, 4, 'no new entry');
  t.strictSame(match('10.2.0.1'), { ifindex: 9, metric: 'up' }, 'the /8 was replaced');
});

t.test('map-in-map: typed entries in an inner map made from the template, typed slot keys', async (t) => {
  const loaded = await loadFixture(t);
  const { obj, btf } = loaded;
  const def = defOf(loaded, 'tenants');
  const template = def.inner;
  if (!template) throw new Error('tenants has no inner template');
  const codecs = codecsOf(loaded, 'tenants');
  const slotCodec = typedCodec(btf, def.btfKeyTypeId, { formats: {}, name: 'slot' });
  const outer = openMap(t, obj, 'tenants');
  const inner = await BpfMap.create({
    type: template.type,
    name: 'tenants_t',
    keySize: template.keySize,
    valueSize: template.valueSize,
    maxEntries: template.maxEntries,
    flags: template.flags,
  });
  t.teardown(() => inner.close());
  const entries: Entry[] = [
    { key: { vlan: 100, proto: 6, addr: 167772161 }, value: { label: 'gold', trend: 'up', bytes: '1152921504606846976' } },
    { key: { vlan: 4095, proto: 17, addr: 0 }, value: { label: 'bronze!!', trend: 'down', bytes: 0 } },
    { key: { vlan: 0, proto: 255, addr: 4294967295 }, value: { label: '', trend: 'DELTA_NONE', bytes: 9007199254740991 } },
  ];
  await put(inner, codecs, entries);
  const slot = slotCodec.encode(3, 'slot');
  await outer.update(slot, u32(inner.fd));
  const id = outer.lookup(slot)?.readUInt32LE(0);
  t.equal(id, inner.info().id, 'the slot holds the inner map');
  const viaSlot = BpfMap.fromId(id ?? 0);
  t.teardown(() => viaSlot.close());
  t.strictSame(
    dump(viaSlot, codecs),
    sorted(entries.map((e) => (e.value as { trend: string }).trend === 'DELTA_NONE' ? { ...e, value: { ...(e.value as object), trend: 'none' } } : e)),
    'read back through the slot',
  );
  t.strictSame([...outer.keys()].map((k) => slotCodec.decode(k)), [3], 'slot keys decode');
});

t.test("the codec's layout is the compiler's: clang's initializers read back from .rodata", async (t) => {
  const loaded = await loadFixture(t);
  const { obj, btf } = loaded;
  const samples = btf.find((type) => type?.kind === 'struct' && type.name === 'samples');
  if (!samples) throw new Error('no struct samples');
  const codec = typedCodec(btf, samples.id, {
    name: 'samples',
    formats: {
      'nested.ends[].addr': 'ipv6',
      'nested.ends[].mac': 'mac',
      'nested.ends[].port': 'be16',
      'nested.any.v4': 'ipv4',
      'nested.any.v6': 'ipv6',
      v6: 'cidr',
    },
  });
  const rodata = obj.maps().find((m) => m.internal && m.name.endsWith('.rodata'));
  if (!rodata) throw new Error('no .rodata map');
  const map = openMap(t, obj, rodata.name);
  t.equal(map.valueSize, codec.size, '.rodata holds nothing but the samples');
  const bytes = map.lookup(u32(0));
  if (!bytes) throw new Error('.rodata is empty');
  t.strictSame(codec.decode(bytes), {
    scalars: {
      u8: 0xab,
      u16: 0xbeef,
      u32: 0xdeadbeef,
      u64: '18364758544493064720',
      s8: -5,
      s16: -300,
      s32: -70000,
      s64: -5000000000,
      flag: true,
      letter: 120,
      color: 'blue',
      delta: 'down',
      ratio: 1.5,
      mean: -2.25,
      cookie: 0x1234,
    },
    bits: BITS,
    name: { name: 'veth0', ifindex: 42 },
    nested: {
      ends: [
        { addr: '2001:db8::1', mac: '02:00:00:00:00:01', port: 80 },
        { addr: '::ffff:10.0.0.1', mac: '02:00:00:00:00:02', port: 443 },
      ],
      any: { v6: '7f00:1::' },
      counts: [1, 2, 3, 4],
      ranges: [
        { lo: 10, hi: 20 },
        { lo: 30, hi: 40 },
      ],
      ttl: 64,
      tos: 16,
      mark: 0xcafe,
    },
    v6: '2001:db8::/32',
    tenant: { label: 'gold', trend: 'up', bytes: '1152921504606846976' },
  });
  t.equal(codec.encode(codec.decode(bytes), 'samples').toString('hex'), bytes.toString('hex'), 'and encoding gives clang\'s bytes back');
});

/** [map, entries (the last one bad), the field named, the message] */
const BAD: [string, Entry[], string, RegExp][] = [
  ['scalars', [{ key: 10, value: SCALARS }, { key: 11, value: { ...SCALARS, u8: 256 } }], 'entries[1].value.u8', /expected an integer from 0 to 255, got 256/],
  ['scalars', [{ key: 11, value: { ...SCALARS, s16: -32769 } }], 'entries[0].value.s16', /from -32768 to 32767, got -32769/],
  ['scalars', [{ key: 11, value: { ...SCALARS, u64: '18446744073709551616' } }], 'entries[0].value.u64', /got "18446744073709551616"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, s64: 2 ** 60 } }], 'entries[0].value.s64', /numbers beyond 2\^53 go as decimal strings/],
  ['scalars', [{ key: 11, value: { ...SCALARS, u32: '5' } }], 'entries[0].value.u32', /got "5"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, flag: 'yes' } }], 'entries[0].value.flag', /expected true or false, got "yes"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, letter: 'x' } }], 'entries[0].value.letter', /expected an integer from -128 to 127, got "x"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, color: 'purple' } }], 'entries[0].value.color', /expected one of red, green, blue, got "purple"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, delta: -1 } }], 'entries[0].value.delta', /expected one of down, none, up or an integer from 0 to 4294967295, got -1/],
  ['scalars', [{ key: 11, value: { ...SCALARS, ratio: 1e39 } }], 'entries[0].value.ratio', /4-byte float/],
  ['scalars', [{ key: 11, value: { ...SCALARS, mean: '1.5' } }], 'entries[0].value.mean', /expected a number/],
  ['scalars', [{ key: 11, value: { ...SCALARS, cookie: -1 } }], 'entries[0].value.cookie', /got -1/],
  ['scalars', [{ key: 11, value: { ...SCALARS, u8: undefined } }], 'entries[0].value', /missing member "u8"/],
  ['scalars', [{ key: 11, value: { ...SCALARS, u9: 1 } }], 'entries[0].value', /unknown member "u9"/],
  ['scalars', [{ key: -1, value: SCALARS }], 'entries[0].key', /expected an integer from 0 to 4294967295, got -1/],
  ['scalars', [{ key: '0x0100', value: SCALARS }], 'entries[0].key', /expected 4 bytes, got 2/],
  ['scalars', [{ key: 11, value: '0x00' }], 'entries[0].value', /expected 64 bytes, got 1/],
  ['bitfields', [{ key: { name: 'x', ifindex: 1 }, value: { ...BITS, low: 8 } }], 'entries[0].value.low', /from 0 to 7, got 8/],
  ['bitfields', [{ key: { name: 'x', ifindex: 1 }, value: { ...BITS, offset: -17 } }], 'entries[0].value.offset', /from -16 to 15, got -17/],
  ['bitfields', [{ key: { name: 'x', ifindex: 1 }, value: { ...BITS, hue: 8 } }], 'entries[0].value.hue', /or an integer from 0 to 7, got 8/],
  ['bitfields', [{ key: { name: 'x', ifindex: 1 }, value: { ...BITS, huge: 2 ** 40 } }], 'entries[0].value.huge', /from 0 to 1099511627775/],
  ['bitfields', [{ key: { name: 'seventeen bytes!!', ifindex: 1 }, value: BITS }], 'entries[0].key.name', /at most 16 bytes, got 17/],
  ['bitfields', [{ key: { name: 'a\u0000b', ifindex: 1 }, value: BITS }], 'entries[0].key.name', /without NUL/],
  ['endpoints', [{ key: { ...ENDPOINT_KEY, addr: '2001:db8::g' }, value: NESTED }], 'entries[0].key.addr', /expected an IPv6 address/],
  ['endpoints', [{ key: { ...ENDPOINT_KEY, mac: '02:00:00:00:00' }, value: NESTED }], 'entries[0].key.mac', /expected a MAC address/],
  ['endpoints', [{ key: { ...ENDPOINT_KEY, port: 65536 }, value: NESTED }], 'entries[0].key.port', /from 0 to 65535, got 65536/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, counts: [1, 2, 3] } }], 'entries[0].value.counts', /exactly 4 elements, got an array of 3/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, ranges: [{ lo: 1, hi: 2 }, { lo: 1 }] } }], 'entries[0].value.ranges[1]', /missing member "hi"/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, ends: [NESTED.ends[0], { ...NESTED.ends[1], port: -1 }] } }], 'entries[0].value.ends[1].port', /got -1/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, any: { v4: '10.0.0.1', v6: '::1' } } }], 'entries[0].value.any', /expected exactly one of "v4", "v6"/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, mark: undefined } }], 'entries[0].value', /missing one of "mark", "mark_bytes"/],
  ['endpoints', [{ key: ENDPOINT_KEY, value: { ...NESTED, mark_bytes: [0, 0, 0, 0] } }], 'entries[0].value', /expected only one of "mark", "mark_bytes"/],
  ['colors', [{ key: { v4: '10.0.0.1' }, value: 'cyan' }], 'entries[0].value', /expected one of red, green, blue, got "cyan"/],
  ['colors', [{ key: { v4: '10.0.0.300' }, value: 'red' }], 'entries[0].key.v4', /expected an IPv4 address/],
  ['routes_v4', [{ key: '10.0.0.0/33', value: { ifindex: 1, metric: 'up' } }], 'entries[0].key', /prefix length 33 is longer than the 32 bits/],
  ['routes_v4', [{ key: '2001:db8::/32', value: { ifindex: 1, metric: 'up' } }], 'entries[0].key', /expected an IPv4 prefix/],
  ['routes_v6', [{ key: '2001:db8::/129', value: { ifindex: 1, metric: 'up' } }], 'entries[0].key', /prefix length 129/],
  ['flags', [{ key: '9223372036854775808', value: true }], 'entries[0].key', /from -9223372036854775808 to 9223372036854775807/],
  ['flags', [{ key: 1, value: 1 }], 'entries[0].value', /expected true or false, got 1/],
];

t.test('bad input of every kind names the field, and the kernel map is unchanged', async (t) => {
  const loaded = await loadFixture(t);
  const { obj } = loaded;
  const maps = new Map<string, { map: BpfMap; codecs: Codecs }>();
  for (const [name] of BAD) {
    if (maps.has(name)) continue;
    const map = openMap(t, obj, name);
    const codecs = codecsOf(loaded, name);
    // Something in the map, so "unchanged" means something.
    await put(map, codecs, (CASES[name]?.entries ?? []).slice(0, 1).map((e) => ({ key: e.key, value: withoutUndefined(e.value) })));
    maps.set(name, { map, codecs });
  }
  for (const [name, entries, field, message] of BAD) {
    const { map, codecs } = maps.get(name) ?? (undefined as never);
    const before = snapshot(map);
    await t.rejects(
      put(map, codecs, entries.map((e) => ({ key: e.key, value: withoutUndefined(e.value) }))),
      { code: 'MIMD_BAD_INPUT', statusCode: 400, field, message },
      `${name}: ${field}`,
    );
    t.strictSame(snapshot(map), before, `${name}: ${field}: the map is unchanged`);
  }
});

t.test('a bad slot key is refused before the outer map is touched', async (t) => {
  const loaded = await loadFixture(t);
  const { obj, btf } = loaded;
  const def = defOf(loaded, 'tenants');
  const slotCodec = typedCodec(btf, def.btfKeyTypeId, { formats: {}, name: 'slot' });
  const outer = openMap(t, obj, 'tenants');
  t.throws(() => slotCodec.encode(-1, 'slot'), { code: 'MIMD_BAD_INPUT', field: 'slot', message: 'slot: expected an integer from 0 to 4294967295, got -1' });
  t.throws(() => slotCodec.encode('one', 'slot'), { field: 'slot', message: /got "one"/ });
  t.strictSame(snapshot(outer), [], 'no slot was filled');
});

/** `{ ...x, member: undefined }` is how the cases above leave a member out. */
function withoutUndefined(value: unknown): unknown {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined));
}
