// The addon's map operations against the real kernel.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfMap, MapType, MapFlag, possibleCpus, isKernelError } from '../../daemon/src/kernel';
import { pinDir, u32, u64 } from '../helpers/sandbox';

async function hash(maxEntries = 16, flags = 0): Promise<BpfMap> {
  return BpfMap.create({ type: MapType.HASH, name: 'test_hash', keySize: 4, valueSize: 8, maxEntries, flags });
}

t.test('create reports what the kernel made', async (t) => {
  const map = await BpfMap.create({
    type: MapType.HASH,
    name: 'mimd_t_create',
    keySize: 4,
    valueSize: 8,
    maxEntries: 32,
    flags: MapFlag.NO_PREALLOC,
  });
  t.teardown(() => map.close());
  const info = map.info();
  t.equal(info.type, MapType.HASH);
  t.equal(info.typeName, 'HASH');
  t.equal(info.keySize, 4);
  t.equal(info.valueSize, 8);
  t.equal(info.maxEntries, 32);
  t.equal(info.flags, MapFlag.NO_PREALLOC);
  t.equal(info.name, 'mimd_t_create');
  t.ok(info.id > 0, 'kernel id');
});

t.test('create rejects what the kernel rejects, with code, errno and syscall', async (t) => {
  const err = await BpfMap.create({ type: MapType.ARRAY, keySize: 8, valueSize: 8, maxEntries: 4 }).then(
    () => null,
    (e: unknown) => e,
  );
  t.ok(isKernelError(err), 'a kernel error');
  t.match(err, { code: 'EINVAL', errno: 22, syscall: 'bpf_map_create' });
});

t.test('lookup, update modes, delete', async (t) => {
  const map = await hash();
  t.teardown(() => map.close());
  const key = u32(7);
  t.equal(map.lookup(key), null, 'absent key is null');
  await map.update(key, u64(1), 'noexist');
  t.same(map.lookup(key), u64(1));
  await t.rejects(map.update(key, u64(2), 'noexist'), { code: 'EEXIST', syscall: 'bpf_map_update_elem' });
  await map.update(key, u64(3), 'exist');
  t.same(map.lookup(key), u64(3));
  await t.rejects(map.update(u32(8), u64(3), 'exist'), { code: 'ENOENT' });
  await map.update(u32(8), u64(4), 'any');
  t.equal(await map.delete(key), true);
  t.equal(await map.delete(key), false, 'second delete finds nothing');
  t.equal(map.lookup(key), null);
});

t.test('sizes are checked before the kernel is asked', async (t) => {
  const map = await hash();
  t.teardown(() => map.close());
  t.throws(() => map.lookup(Buffer.alloc(3)), { name: 'TypeError', message: 'key: expected 4 bytes, got 3' });
  await t.rejects(map.update(u32(1), Buffer.alloc(4)), { message: 'value: expected 8 bytes, got 4' });
  await t.rejects(map.updateBatch(Buffer.alloc(8), Buffer.alloc(8)), { message: /values: expected 2 values/ });
  await t.rejects(BpfMap.create({ type: MapType.HASH, keySize: -1, valueSize: 8, maxEntries: 1 }), {
    message: /keySize: expected an integer/,
  });
  await t.rejects(BpfMap.create({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1 }), {
    message: 'innerMap: required for ARRAY_OF_MAPS',
  });
});

t.test('next key walks every key once', async (t) => {
  const map = await hash();
  t.teardown(() => map.close());
  for (let i = 0; i < 10; i++) await map.update(u32(i), u64(i * 10));
  const seen = [...map.keys()].map((k) => k.readUInt32LE(0)).sort((a, b) => a - b);
  t.same(seen, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.equal(map.nextKey(null)?.length, 4);
});

t.test('batch update, lookup and delete', async (t) => {
  const map = await hash(1024);
  t.teardown(() => map.close());
  const n = 500;
  const keys = Buffer.alloc(n * 4);
  const values = Buffer.alloc(n * 8);
  for (let i = 0; i < n; i++) {
    keys.writeUInt32LE(i, i * 4);
    values.writeBigUInt64LE(BigInt(i) * 3n, i * 8);
  }
  t.equal(await map.updateBatch(keys, values), n);

  const found = new Map<number, bigint>();
  let cursor: Buffer | null = null;
  let pages = 0;
  do {
    const page = await map.lookupBatch(cursor, 64);
    for (let i = 0; i < page.count; i++) found.set(page.keys.readUInt32LE(i * 4), page.values.readBigUInt64LE(i * 8));
    cursor = page.cursor;
    pages++;
  } while (cursor && pages < 100);
  t.equal(found.size, n, 'every entry read back');
  t.equal(found.get(123), 369n);
  t.ok(pages > 1, 'paginated');

  const gone = Buffer.alloc(100 * 4);
  for (let i = 0; i < 100; i++) gone.writeUInt32LE(i, i * 4);
  t.equal(await map.deleteBatch(gone), 100);
  t.equal(map.lookup(u32(5)), null);
  t.same(map.lookup(u32(100)), u64(300));
});

t.test('a failing batch says how far it got', async (t) => {
  const map = await hash(4);
  t.teardown(() => map.close());
  const keys = Buffer.alloc(6 * 4);
  for (let i = 0; i < 6; i++) keys.writeUInt32LE(i, i * 4);
  const err = await map.updateBatch(keys, Buffer.alloc(6 * 8)).then(
    () => null,
    (e: unknown) => e as Error & { processed: number },
  );
  t.match(err, { code: 'E2BIG', syscall: 'bpf_map_update_batch', processed: 4 });
});

t.test('freeze makes the map read-only for user space', async (t) => {
  const map = await hash();
  t.teardown(() => map.close());
  await map.update(u32(1), u64(1));
  map.freeze();
  await t.rejects(map.update(u32(1), u64(2)), { code: 'EPERM' });
  t.same(map.lookup(u32(1)), u64(1));
});

t.test('per-CPU maps carry one value per possible CPU', async (t) => {
  const map = await BpfMap.create({ type: MapType.PERCPU_ARRAY, keySize: 4, valueSize: 4, maxEntries: 2 });
  t.teardown(() => map.close());
  const cpus = possibleCpus();
  t.ok(cpus >= 1);
  t.equal(map.userValueSize, 8 * cpus, 'each value rounded up to 8 bytes');
  const value = Buffer.alloc(8 * cpus);
  for (let c = 0; c < cpus; c++) value.writeUInt32LE(c + 1, c * 8);
  await map.update(u32(1), value);
  t.same(map.lookup(u32(1)), value);
});

t.test('pin, open the pin, fd from id, close', async (t) => {
  const dir = pinDir(t);
  const map = await hash();
  const pin = path.join(dir, 'pinned');
  map.pin(pin);
  t.ok(fs.existsSync(pin), 'pinned on bpffs');
  const id = map.info().id;
  await map.update(u32(1), u64(42));
  map.close();
  map.close();
  t.equal(map.closed, true, 'close is idempotent');
  t.throws(() => map.lookup(u32(1)), { message: /used after close/ });

  const again = BpfMap.openPinned(pin);
  t.teardown(() => again.close());
  t.equal(again.info().id, id, 'the same kernel map through its pin');
  t.same(again.lookup(u32(1)), u64(42));

  const byId = BpfMap.fromId(id);
  t.teardown(() => byId.close());
  t.same(byId.lookup(u32(1)), u64(42));

  t.throws(() => BpfMap.openPinned(path.join(dir, 'missing')), { code: 'ENOENT', syscall: 'bpf_obj_get' });
  t.throws(() => map.pin(path.join(dir, 'x')), { message: /used after close/ });
  t.throws(() => again.pin(pin), { code: 'EEXIST', syscall: 'bpf_obj_pin' });
});

t.test('map-in-map: insert checks the template; PROG_ARRAY templates are ENOTSUPP', async (t) => {
  const template = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 1, maxEntries: 8 });
  t.teardown(() => template.close());
  const outer = await BpfMap.create({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 2, innerMap: template });
  t.teardown(() => outer.close());
  const inner = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 1, maxEntries: 1000 });
  t.teardown(() => inner.close());
  await outer.update(u32(0), u32(inner.fd));
  t.equal(outer.lookup(u32(0))?.readUInt32LE(0), inner.info().id, 'a slot reads back as the inner map id');
  await t.rejects(outer.update(u32(0), u32(inner.fd), 'noexist'), { code: 'EINVAL' });
  await t.rejects(outer.update(u32(2), u32(inner.fd)), { code: 'E2BIG' });

  const progArray = await BpfMap.create({ type: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
  t.teardown(() => progArray.close());
  await t.rejects(
    BpfMap.create({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1, innerMap: progArray }),
    { code: 'ENOTSUPP', errno: 524 },
  );
});

t.test('BPF_F_INNER_MAP lets arrays of other sizes into a slot', async (t) => {
  const template = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 4, flags: MapFlag.INNER_MAP });
  t.teardown(() => template.close());
  const outer = await BpfMap.create({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1, innerMap: template });
  t.teardown(() => outer.close());
  const bigger = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 100, flags: MapFlag.INNER_MAP });
  t.teardown(() => bigger.close());
  await outer.update(u32(0), u32(bigger.fd));
  t.equal(outer.lookup(u32(0))?.readUInt32LE(0), bigger.info().id);

  const plain = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 100 });
  t.teardown(() => plain.close());
  await t.rejects(outer.update(u32(0), u32(plain.fd)), { code: 'EINVAL' }, 'flags differ');
});

t.test('HASH_OF_MAPS update modes', async (t) => {
  const template = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 8 });
  t.teardown(() => template.close());
  const outer = await BpfMap.create({ type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1, innerMap: template });
  t.teardown(() => outer.close());
  await t.rejects(outer.update(u32(1), u32(template.fd), 'exist'), { code: 'ENOENT' });
  await outer.update(u32(1), u32(template.fd), 'noexist');
  await t.rejects(outer.update(u32(1), u32(template.fd), 'noexist'), { code: 'EEXIST' });
  await t.rejects(outer.update(u32(2), u32(template.fd)), { code: 'E2BIG' }, 'full');
  t.equal(await outer.delete(u32(1)), true);
});
