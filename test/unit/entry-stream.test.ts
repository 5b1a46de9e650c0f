// The pure parts of streamed fills: NDJSON and binary bodies cut anywhere
// become the same chunks, the digest is that of the binary records, and the
// fingerprint set finds every key seen before, through its growth.
import { createHash } from 'node:crypto';
import t from 'tap';
import { rawCodec } from '../../daemon/src/domain/codec';
import { binaryContent, ndjsonContent, type ChunkShape, type EntryChunk, type VersionContent } from '../../daemon/src/domain/entry-stream';
import { FingerprintSet } from '../../daemon/src/domain/key-set';

const shape = (extra: Partial<ChunkShape> = {}): ChunkShape => ({
  keySize: 4,
  valueSize: 2,
  chunkEntries: 3,
  maxEntries: 1000,
  requestLimit: 1000,
  checkKey: () => undefined,
  ...extra,
});

async function* cut(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < data.length; at += size) yield data.subarray(at, at + size);
}

/** The chunks as (key, value) hex pairs with their indexes; copies, since the builder reuses its buffers. */
async function read(content: VersionContent): Promise<{ entries: [number, string, string][]; sizes: number[] }> {
  const entries: [number, string, string][] = [];
  const sizes: number[] = [];
  for await (const chunk of content.chunks as AsyncIterable<EntryChunk>) {
    sizes.push(chunk.count);
    for (let i = 0; i < chunk.count; i++) {
      entries.push([chunk.first + i, chunk.keys.toString('hex', i * 4, i * 4 + 4), chunk.values.toString('hex', i * 2, i * 2 + 2)]);
    }
  }
  return { entries, sizes };
}

const ENTRIES = Array.from({ length: 8 }, (_, i) => ({ key: 1000 + i, value: i * 3 }));
const BINARY = Buffer.concat(ENTRIES.map(({ key, value }) => {
  const b = Buffer.alloc(6);
  b.writeUInt32LE(key, 0);
  b.writeUInt16LE(value, 4);
  return b;
}));

t.test('NDJSON and binary, cut into pieces of any size, give the same chunks and the digest of the records', async (t) => {
  const ndjson = Buffer.from(ENTRIES.map((e) => JSON.stringify(e)).join('\n'));
  const digest = createHash('sha256').update(BINARY).digest('hex');
  for (const size of [1, 2, 5, 7, 64, 4096]) {
    const fromJson = ndjsonContent(cut(ndjson, size), rawCodec(4, 2), shape(), {});
    const a = await read(fromJson);
    const fromBinary = binaryContent(cut(BINARY, size), shape(), {});
    const b = await read(fromBinary);
    t.same(a.sizes, [3, 3, 2], `pieces of ${size}: chunks of chunkEntries`);
    t.same(a.entries, b.entries, `pieces of ${size}: the same entries either way`);
    t.same(fromJson.summary(), { count: 8, digest }, `pieces of ${size}: NDJSON digest`);
    t.same(fromBinary.summary(), { count: 8, digest }, `pieces of ${size}: binary digest`);
  }
});

t.test('UTF-8 cut inside a character still parses (hex keys, a label-like string value is refused cleanly)', async (t) => {
  const line = Buffer.from('{"key":"0x01020304","value":"0x0a0b"}\n{"key":1,"value":"ü"}\n');
  const content = ndjsonContent(cut(line, 1), rawCodec(4, 2), shape(), {});
  await t.rejects(read(content), { code: 'MIMD_BAD_INPUT', field: 'entries[1].value', message: /"ü".*NDJSON line 2/ });
});

t.test('limits: api.maxEntries is 413, the map\'s maxEntries 422, counted as entries arrive', async (t) => {
  const ndjson = Buffer.from(ENTRIES.map((e) => JSON.stringify(e)).join('\n'));
  await t.rejects(read(ndjsonContent(cut(ndjson, 10), rawCodec(4, 2), shape({ requestLimit: 5 }), {})), {
    code: 'MIMD_TOO_MANY_ENTRIES',
    statusCode: 413,
    field: 'entries',
  });
  await t.rejects(read(binaryContent(cut(BINARY, 10), shape({ maxEntries: 7 }), {})), { code: 'MIMD_TEMPLATE_VIOLATION', statusCode: 422, field: 'entries' });
});

t.test('a line longer than the limit without a newline is refused before it grows further', async (t) => {
  async function* endless(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 5000; i++) yield Buffer.alloc(1024, 0x20);
  }
  await t.rejects(read(ndjsonContent(endless(), rawCodec(4, 2), shape(), {})), { code: 'MIMD_BAD_INPUT', field: 'entries[0]', message: /longer than/ });
});

t.test('the fingerprint set finds every key seen before, across growth, and no key it has not seen', async (t) => {
  const set = new FingerprintSet(16);
  const key = Buffer.alloc(6);
  let repeatsFound = 0;
  let falseHits = 0;
  for (let i = 0; i < 200_000; i++) {
    key.writeUIntLE(i * 2654435761 % 2 ** 48, 0, 6);
    if (set.add(key, 0, 6)) falseHits++;
  }
  for (let i = 0; i < 200_000; i += 97) {
    key.writeUIntLE(i * 2654435761 % 2 ** 48, 0, 6);
    if (set.add(key, 0, 6)) repeatsFound++;
  }
  t.equal(repeatsFound, Math.ceil(200_000 / 97), 'every repeated key is suspected');
  t.equal(falseHits, 0, 'no distinct key is taken for a repeat (64-bit fingerprints)');
});
