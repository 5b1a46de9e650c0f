// Which codec each part of an outer map gets, and how a configuration that
// does not fit the object's types is refused.
import t from 'tap';
import { mapCodecs, type MapCodecSource } from '../../daemon/src/domain/map-codecs';
import type { BtfTable } from '../../daemon/src/domain/btf';

// 1: __u32 (int), 2: struct key { u32 prefixlen; u32 addr }, 3: enum verdict, 4: struct value { enum verdict verdict }
const BTF: BtfTable = [
  null,
  { id: 1, kind: 'int', name: 'unsigned int', size: 4, bits: 32, bitOffset: 0, signed: false, char: false, bool: false },
  {
    id: 2,
    kind: 'struct',
    name: 'policy_key',
    size: 8,
    members: [
      { name: 'prefixlen', type: 1, bitOffset: 0, bitfieldSize: 0 },
      { name: 'addr', type: 1, bitOffset: 32, bitfieldSize: 0 },
    ],
  },
  { id: 3, kind: 'enum', name: 'verdict', size: 4, signed: false, values: [{ name: 'VERDICT_PASS', value: 0 }, { name: 'VERDICT_DROP', value: 1 }] },
  { id: 4, kind: 'struct', name: 'policy_value', size: 4, members: [{ name: 'verdict', type: 3, bitOffset: 0, bitfieldSize: 0 }] },
];

function source(overrides: Partial<MapCodecSource> = {}): MapCodecSource {
  return {
    btf: BTF,
    keyTypeId: 1,
    keySize: 4,
    inner: { name: 'policy.inner', type: 'LPM_TRIE', keySize: 8, valueSize: 4, maxEntries: 16, flags: ['NO_PREALLOC'], btfKeyTypeId: 2, btfValueTypeId: 4 },
    codec: { formats: { key: 'cidr' } },
    field: 'objects[0].maps.policy',
    ...overrides,
  };
}

t.test('typed from BTF, with the configured formats', async (t) => {
  const codecs = mapCodecs(source());
  t.equal(codecs.slot.decode(codecs.slot.encode(7, 'slot')), 7);
  const key = codecs.entry.key.encode('10.0.0.0/8', 'entries[0].key');
  t.equal(key.toString('hex'), '080000000a000000');
  t.equal(codecs.entry.key.decode(key), '10.0.0.0/8');
  t.same(codecs.entry.value.decode(codecs.entry.value.encode({ verdict: 'drop' }, 'entries[0].value')), { verdict: 'drop' });
  t.throws(() => codecs.entry.value.encode({ verdict: 'dorp' }, 'entries[3].value'), {
    code: 'MIMD_BAD_INPUT',
    message: /^entries\[3\]\.value\.verdict: expected one of pass, drop/,
  });
});

t.test('without BTF: the raw codec', async (t) => {
  const codecs = mapCodecs(source({ btf: null, codec: undefined }));
  t.equal(codecs.entry.key.decode(codecs.entry.key.encode('0x080000000a000000', 'k')), Number(Buffer.from('080000000a000000', 'hex').readBigUInt64LE(0)));
  t.equal(codecs.entry.value.decode(codecs.entry.value.encode(1, 'v')), 1);
});

t.test('settings that do not fit stop the start, naming the map', async (t) => {
  t.throws(() => mapCodecs(source({ codec: { formats: { key: 'mac' } } })), {
    code: 'MIMD_CONFIG_MISMATCH',
    field: 'objects[0].maps.policy',
  });
  t.throws(() => mapCodecs(source({ btf: null })), {
    code: 'MIMD_CONFIG_MISMATCH',
    message: /key has no BTF type in the object, so it takes no formats or defaults/,
  });
  t.throws(() => mapCodecs(source({ codec: { formats: { 'value.nope': 'hex' } } })), { code: 'MIMD_CONFIG_MISMATCH', message: /nope/ });
});
