// Streamed fills against the real kernel: NDJSON and binary uploads build a
// version chunk by chunk (batch updates), duplicates are refused across
// chunks the way a JSON body's are, any error leaves the slot, its versions
// and its pins as they were, and a dump (batch lookup) gives back exactly
// what went in, in both forms.
import { createHash } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import t from 'tap';
import pino from 'pino';
import { HostService } from '../../daemon/src/domain/host';
import { SlotsService } from '../../daemon/src/domain/slots-service';
import { SwapQueue } from '../../daemon/src/domain/swap-queue';
import type { VersionUpload } from '../../daemon/src/domain/slots-api';
import { KernelAdapter } from '../../daemon/src/kernel/adapter';
import { BpfMap } from '../../daemon/src/kernel';
import { FileStateStore } from '../../daemon/src/state/file-store';
import { FIREWALL_OBJECT, fixture, pinDir, stateDir } from '../helpers/sandbox';

type Test = Parameters<Parameters<typeof t.test>[0]>[0];

interface Fixture {
  slots: SlotsService;
  pinRoot: string;
}

async function setup(t: Test, object: 'maps' | 'firewall'): Promise<Fixture> {
  const pinRoot = pinDir(t);
  const state = new FileStateStore(stateDir(t));
  const logger = pino({ level: 'silent' });
  const kernel = new KernelAdapter();
  const config: ConstructorParameters<typeof HostService>[0]['objects'][number] =
    object === 'maps'
      ? { name: 'maps', path: fixture('maps.bpf.o'), attach: [], maps: {}, onIncompatiblePin: 'refuse' as const }
      : {
          name: 'firewall',
          path: FIREWALL_OBJECT,
          attach: [],
          maps: { blocklist: { formats: { key: 'ipv4' as const } }, policy: { formats: { key: 'cidr' as const } } },
          onIncompatiblePin: 'refuse' as const,
        };
  const host = new HostService({ objects: [config], pinRoot, kernel, state, logger });
  await host.start();
  t.teardown(() => host.close('remove'));
  const slots = new SlotsService({
    maps: host.managedMaps(),
    kernel,
    swaps: new SwapQueue({ capacity: 64, concurrency: 4 }),
    retain: 3,
    pinRoot,
    state,
    logger,
    ready: () => host.running,
  });
  t.teardown(() => slots.close());
  return { slots, pinRoot };
}

/** A body in pieces of `pieceBytes`, cutting lines and records anywhere. */
async function* pieces(data: Buffer | string, pieceBytes = 1000): AsyncGenerator<Buffer> {
  const bytes = Buffer.isBuffer(data) ? data : Buffer.from(data);
  for (let at = 0; at < bytes.length; at += pieceBytes) yield bytes.subarray(at, at + pieceBytes);
}

function upload(format: 'ndjson' | 'binary', data: Buffer | string, extra: Partial<VersionUpload> = {}): VersionUpload {
  return { format, body: pieces(data), requestLimit: 1_000_000, ...extra };
}

/** u32 keys and u32 values, as NDJSON lines and as binary records. */
function hashEntries(count: number, keyOf = (i: number) => i * 7 + 1): { ndjson: string; binary: Buffer } {
  const lines: string[] = [];
  const binary = Buffer.alloc(count * 8);
  for (let i = 0; i < count; i++) {
    lines.push(JSON.stringify({ key: keyOf(i), value: i }));
    binary.writeUInt32LE(keyOf(i), i * 8);
    binary.writeUInt32LE(i, i * 8 + 4);
  }
  return { ndjson: `${lines.join('\n')}\n`, binary };
}

async function collect(stream: AsyncIterable<Buffer>): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part);
  return Buffer.concat(parts);
}

function sha256(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

/** Pins under the slot's directory (versions). */
function versionPins(pinRoot: string, object: string, map: string): string[] {
  const dir = `${pinRoot}/${object}/slots/${map}`;
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { recursive: true }).map(String).sort();
}

t.test('NDJSON and binary uploads of the same entries build the same inner map, with the digest of the binary body', async (t) => {
  const { slots } = await setup(t, 'maps');
  const count = 10_000; // three chunks
  const { ndjson, binary } = hashEntries(count);

  const put = await slots.putSlot('maps', 'outer_hash', '1', upload('ndjson', ndjson, { maxEntries: count, labels: { source: 'test' } }));
  t.equal(put.entryCount, count, 'every line is an entry');
  t.equal(put.digest, sha256(binary), 'digest: sha256 of the entries as binary records');
  const staged = await slots.stageVersion('maps', 'outer_hash', '1', upload('binary', binary, { maxEntries: count }));
  t.equal(staged.entryCount, count);
  t.equal(staged.digest, put.digest, 'the same entries in binary: the same digest');
  t.same(staged.labels, {});
  t.same(slots.listVersions('maps', 'outer_hash', '1').find((v) => v.version === 1)?.labels, { source: 'test' }, 'labels from the upload');

  // What the kernel holds, read through a handle of the test's own.
  const inner = BpfMap.fromId(put.mapId);
  t.teardown(() => inner.close());
  let kernelCount = 0;
  for (const key of inner.keys()) {
    const index = (key.readUInt32LE(0) - 1) / 7;
    if (inner.lookup(key)?.readUInt32LE(0) !== index) t.fail(`key ${key.readUInt32LE(0)} holds the wrong value`);
    kernelCount++;
  }
  t.equal(kernelCount, count, 'the kernel holds every entry');

  // Dumps: every entry once, in both forms.
  const lines = (await collect(slots.dumpEntries('maps', 'outer_hash', '1', 'ndjson'))).toString().trimEnd().split('\n');
  t.equal(lines.length, count, 'NDJSON dump: a line per entry');
  const dumped = new Map(lines.map((line) => {
    const { key, value } = JSON.parse(line) as { key: number; value: number };
    return [key, value];
  }));
  t.equal(dumped.size, count, 'no key twice');
  t.ok([...dumped].every(([key, value]) => key === value * 7 + 1), 'every value belongs to its key');
  const records = await collect(slots.dumpEntries('maps', 'outer_hash', '1', 'binary', 2));
  t.equal(records.length, count * 8, 'binary dump of version 2: a record per entry');
  const sorted = (buf: Buffer): string[] => Array.from({ length: buf.length / 8 }, (_, i) => buf.toString('hex', i * 8, i * 8 + 8)).sort();
  t.same(sorted(records), sorted(binary), 'the binary dump has exactly the uploaded records');
});

t.test('a key sent twice is refused, within a chunk, across chunks and far apart, and nothing changes', async (t) => {
  const { slots, pinRoot } = await setup(t, 'maps');
  const first = await slots.putSlot('maps', 'outer_hash', '2', upload('ndjson', hashEntries(10).ndjson));
  const pinsBefore = versionPins(pinRoot, 'maps', 'outer_hash');
  const cases: [string, number, number, string][] = [
    ['within a chunk', 3, 10, 'duplicate of entries[3].key'],
    ['in the chunk before', 100, 5000, 'duplicate of entries[100].key'],
    ['two chunks back', 100, 9000, 'duplicate of an earlier entry'],
  ];
  for (const [name, earlier, later, message] of cases) {
    for (const format of ['ndjson', 'binary'] as const) {
      const data = hashEntries(10_000, (i) => (i === later ? earlier * 7 + 1 : i * 7 + 1));
      const err = await slots
        .putSlot('maps', 'outer_hash', '2', upload(format, format === 'ndjson' ? data.ndjson : data.binary, { maxEntries: 10_000 }))
        .then(() => null, (e: unknown) => e as { code: string; field: string; message: string });
      t.equal(err?.code, 'MIMD_BAD_INPUT', `${name} (${format})`);
      t.equal(err?.field, `entries[${later}].key`, `${name} (${format}): names the later entry`);
      t.match(err?.message, message, `${name} (${format}): ${message}`);
    }
  }
  const slot = slots.getSlot('maps', 'outer_hash', '2');
  t.equal(slot.activeVersion, 1, 'the slot keeps its version');
  t.equal(slot.kernelMapId, first.mapId, 'and its inner map');
  t.same(slot.versions.map((v) => v.version), [1], 'no version was added');
  t.same(versionPins(pinRoot, 'maps', 'outer_hash'), pinsBefore, 'no pin left behind');
  const next = await slots.putSlot('maps', 'outer_hash', '2', upload('ndjson', hashEntries(3).ndjson));
  t.equal(next.version, 2, 'the refused uploads took no version number');
});

t.test('array inner maps: an index past maxEntries breaks the template, a repeated index is a duplicate', async (t) => {
  const { slots, pinRoot } = await setup(t, 'maps');
  const record = (index: number, value: number): Buffer => {
    const b = Buffer.alloc(12);
    b.writeUInt32LE(index, 0);
    b.writeBigUInt64LE(BigInt(value), 4);
    return b;
  };
  const ok = await slots.putSlot('maps', 'outer_dyn', '0', upload('binary', Buffer.concat(Array.from({ length: 6000 }, (_, i) => record(i, i * 2))), { maxEntries: 6000 }));
  t.equal(ok.entryCount, 6000, 'an array holds every index');
  const value = BpfMap.fromId(ok.mapId);
  t.teardown(() => value.close());
  const k = Buffer.alloc(4);
  k.writeUInt32LE(5999);
  t.equal(value.lookup(k)?.readBigUInt64LE(0), 11998n, 'the last record landed');

  const past = await slots
    .putSlot('maps', 'outer_array', '0', upload('ndjson', '{"key":0,"value":1}\n{"key":8,"value":1}\n'))
    .catch((e: { code: string; field: string }) => e);
  t.match(past, { code: 'MIMD_TEMPLATE_VIOLATION', field: 'entries[1].key' }, 'index 8 of an 8-entry array');
  const twice = await slots
    .putSlot('maps', 'outer_dyn', '1', upload('binary', Buffer.concat([...Array.from({ length: 5000 }, (_, i) => record(i, 1)), record(7, 2)]), { maxEntries: 6000 }))
    .catch((e: { code: string; field: string; message: string }) => e);
  t.match(twice, { code: 'MIMD_BAD_INPUT', field: 'entries[5000].key' }, 'index 7 again');
  t.match((twice as { message: string }).message, 'duplicate of entries[7].key');
  t.same(versionPins(pinRoot, 'maps', 'outer_array').length + versionPins(pinRoot, 'maps', 'outer_dyn').filter((p) => p.startsWith('01')).length, 0, 'no pin for the refused uploads');
});

t.test('bad lines and records name the entry; limits are 413 and 422; nothing is left behind', async (t) => {
  const { slots, pinRoot } = await setup(t, 'maps');
  const good = hashEntries(5000).ndjson.split('\n');
  const withLine = (at: number, line: string): string => [...good.slice(0, at), line, ...good.slice(at)].join('\n');
  const cases: [string, VersionUpload, Record<string, unknown>, RegExp][] = [
    ['not JSON', upload('ndjson', withLine(4500, '{"key": 1,'), { maxEntries: 6000 }), { code: 'MIMD_BAD_INPUT', field: 'entries[4500]' }, /not JSON.*NDJSON line 4501/],
    ['a key too big', upload('ndjson', withLine(10, '{"key": 4294967296, "value": 1}')), { code: 'MIMD_BAD_INPUT', field: 'entries[10].key' }, /line 11/],
    ['no value', upload('ndjson', withLine(0, '{"key": 3}')), { code: 'MIMD_BAD_INPUT', field: 'entries[0].value' }, /missing/],
    ['an unknown property', upload('ndjson', withLine(2, '{"key": 3, "value": 1, "ttl": 5}')), { code: 'MIMD_BAD_INPUT', field: 'entries[2].ttl' }, /unknown property/],
    ['not an object', upload('ndjson', withLine(1, '[3, 1]')), { code: 'MIMD_BAD_INPUT', field: 'entries[1]' }, /expected an object/],
    ['a partial record', upload('binary', Buffer.concat([hashEntries(10).binary, Buffer.alloc(5)])), { code: 'MIMD_BAD_INPUT', field: 'body' }, /5 bytes after the last whole entry/],
    ['more than api.maxEntries', upload('ndjson', good.join('\n'), { requestLimit: 4000, maxEntries: 5000 }), { code: 'MIMD_TOO_MANY_ENTRIES', field: 'entries' }, /4000/],
    ['more than the inner map holds', upload('ndjson', good.join('\n')), { code: 'MIMD_TEMPLATE_VIOLATION', field: 'entries' }, /maxEntries 64/],
  ];
  for (const [name, body, expected, message] of cases) {
    const err = await slots.putSlot('maps', 'outer_hash', '3', body).then(() => null, (e: Error) => e);
    t.match(err, expected, name);
    t.match(err?.message, message, `${name}: message`);
  }
  t.same(versionPins(pinRoot, 'maps', 'outer_hash'), [], 'no version pinned');
  t.throws(() => slots.getSlot('maps', 'outer_hash', '3'), { code: 'MIMD_NOT_FOUND' }, 'the slot was never filled');
  const blank = await slots.putSlot('maps', 'outer_hash', '3', upload('ndjson', '\r\n{"key":1,"value":2}\r\n\n  \n{"key":2,"value":3}'));
  t.equal(blank.entryCount, 2, 'blank lines and CRLF are fine; the last line needs no newline');
});

t.test('LPM trie keys are canonical: a prefix given twice with different host bits is a duplicate', async (t) => {
  const { slots } = await setup(t, 'firewall');
  const lines = ['{"key":"10.0.0.0/8","value":{"verdict":"drop"}}', '{"key":"192.168.1.0/24","value":{"verdict":"pass"}}'];
  const ok = await slots.putSlot('firewall', 'policy', '1', upload('ndjson', lines.join('\n')));
  t.equal(ok.entryCount, 2);
  const dump = (await collect(slots.dumpEntries('firewall', 'policy', '1', 'ndjson'))).toString().trimEnd().split('\n').map((l) => JSON.parse(l) as { key: string });
  t.same(dump.map((e) => e.key).sort(), ['10.0.0.0/8', '192.168.1.0/24'], 'a trie is dumped key by key');
  const twice = await slots
    .putSlot('firewall', 'policy', '1', upload('ndjson', [...lines, '{"key":"10.1.2.3/8","value":{"verdict":"pass"}}'].join('\n')))
    .catch((e: Error) => e);
  t.match(twice, { code: 'MIMD_BAD_INPUT', field: 'entries[2].key', message: /duplicate of entries\[0\]\.key/ });
});

t.test('inner maps carry the type information of their template (BTF), as some kernels require on insert', async (t) => {
  const { slots } = await setup(t, 'firewall');
  const put = await slots.putSlot('firewall', 'policy', '2', upload('ndjson', '{"key":"10.0.0.0/8","value":{"verdict":"drop"}}\n'));
  const inner = BpfMap.fromId(put.mapId);
  t.teardown(() => inner.close());
  const outerId = slots.listMaps().find((m) => m.name === 'policy')?.mapId ?? 0;
  const outer = BpfMap.fromId(outerId);
  t.teardown(() => outer.close());
  t.ok(inner.info().btfId > 0, 'the inner map has BTF');
  // The object's BTF: the one its program was loaded with (libbpf makes the outer map itself without BTF).
  const programs = JSON.parse(execFileSync('bpftool', ['-j', 'prog', 'show'], { encoding: 'utf8' })) as { map_ids?: number[]; btf_id?: number }[];
  const program = programs.find((p) => p.map_ids?.includes(outerId));
  t.ok(program, 'the firewall program that uses the outer map');
  t.equal(inner.info().btfId, program?.btf_id, "the object's BTF, the one the template was made with");
});
