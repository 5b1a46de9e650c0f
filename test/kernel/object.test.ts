// Opening, describing, configuring and loading BPF objects through the addon.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BpfObject, BpfMap, MapType, MapFlag, routeLibbpfLog } from '../../daemon/src/kernel';
import { FIREWALL_OBJECT, fixture, pinDir, u32, u64 } from '../helpers/sandbox';

// maps.bpf.o pins `plain` by name: always under the test's own pin directory.
function openMapsFixture(t: Parameters<typeof pinDir>[0]): BpfObject {
  const obj = BpfObject.open(fixture('maps.bpf.o'), { pinRoot: pinDir(t) });
  t.teardown(() => obj.close());
  return obj;
}

t.test('maps and programs of the example firewall, with inner templates', async (t) => {
  const obj = BpfObject.open(FIREWALL_OBJECT);
  t.teardown(() => obj.close());
  t.equal(obj.name, 'firewall', 'the file name without .bpf.o');
  const maps = Object.fromEntries(obj.maps().filter((m) => !m.internal).map((m) => [m.name, m]));
  t.match(maps.blocklist, {
    type: MapType.ARRAY_OF_MAPS,
    typeName: 'ARRAY_OF_MAPS',
    keySize: 4,
    valueSize: 4,
    maxEntries: 4,
    inner: { type: MapType.HASH, keySize: 4, valueSize: 1, maxEntries: 65536, flags: 0 },
  });
  t.match(maps.policy, {
    type: MapType.HASH_OF_MAPS,
    keySize: 4,
    maxEntries: 64,
    inner: { type: MapType.LPM_TRIE, keySize: 8, valueSize: 4, flags: MapFlag.NO_PREALLOC },
  });
  t.match(maps.counters, { type: MapType.PERCPU_ARRAY, inner: null });
  t.same(
    obj.programs().map((p) => ({ name: p.name, section: p.section, typeName: p.typeName })),
    [{ name: 'xdp_firewall', section: 'xdp', typeName: 'xdp' }],
  );
  t.equal(obj.loaded, false);
});

t.test('open errors carry the code and the file', async (t) => {
  t.throws(() => BpfObject.open('/nonexistent/x.bpf.o'), { code: 'ENOENT', syscall: 'bpf_object__open_file' });
  const notElf = path.join(t.testdir({ 'x.o': 'not an ELF file' }), 'x.o');
  t.throws(() => BpfObject.open(notElf), {
    code: 'LIBBPF_ERRNO__FORMAT',
    errno: 4001,
    syscall: 'bpf_object__open_file',
    message: /x\.o.*libbpf: elf: .* is not a proper ELF object/,
  });
});

t.test("libbpf's own messages reach the logger", async (t) => {
  const messages: [string, string][] = [];
  routeLibbpfLog((level, message) => messages.push([level, message]));
  t.teardown(() => routeLibbpfLog(null));
  const notElf = path.join(t.testdir({ 'y.o': 'junk' }), 'y.o');
  t.throws(() => BpfObject.open(notElf));
  // Delivered through a thread-safe function: on a later turn of the loop.
  await new Promise((resolve) => setTimeout(resolve, 50));
  t.ok(messages.some(([level, text]) => level === 'warn' && text.includes('is not a proper ELF object')), 'the warning arrived');
  t.ok(messages.some(([level]) => level === 'debug'), 'debug messages too, for the logger to filter');
});

t.test('load, maps by handle, program id; calls in the wrong phase are refused', async (t) => {
  const obj = openMapsFixture(t);
  t.throws(() => obj.map('outer_array'), { message: /only after load/ });
  t.throws(() => obj.programId('xdp_lookup'), { message: /only after load/ });
  const dir = pinDir(t);
  obj.setPinPath('plain', path.join(dir, 'plain'));
  await obj.load();
  t.equal(obj.loaded, true);
  t.throws(() => obj.setPinPath('plain', null), { message: /only before load/ });
  await t.rejects(obj.load(), { message: /only before load/ });
  t.ok(obj.programId('xdp_lookup') > 0);
  t.throws(() => obj.programId('nope'), { message: /no program named "nope".*it has: xdp_lookup/ });
  t.throws(() => obj.map('nope'), { message: /no map named "nope"/ });

  const outer = obj.map('outer_array');
  t.teardown(() => outer.close());
  t.equal(outer.info().type, MapType.ARRAY_OF_MAPS);
  t.ok(fs.existsSync(path.join(dir, 'plain')), 'pinned where setPinPath said');

  obj.close();
  obj.close();
  t.equal(obj.closed, true, 'close is idempotent');
  t.equal(outer.info().type, MapType.ARRAY_OF_MAPS, 'a map handle outlives its object');
});

t.test('pin by name under pinRoot, and reuse of the pin on the next load', async (t) => {
  const dir = pinDir(t);
  const first = BpfObject.open(fixture('maps.bpf.o'), { pinRoot: dir });
  t.teardown(() => first.close());
  t.equal(first.mapDef('plain').pinPath, path.join(dir, 'plain'));
  await first.load();
  const plain = first.map('plain');
  t.teardown(() => plain.close());
  await plain.update(u32(1), u64(99));
  first.close();

  const second = BpfObject.open(fixture('maps.bpf.o'), { pinRoot: dir });
  t.teardown(() => second.close());
  await second.load();
  const reused = second.map('plain');
  t.teardown(() => reused.close());
  t.equal(reused.info().id, plain.info().id, 'libbpf reused the pinned map');
  t.same(reused.lookup(u32(1)), u64(99));
});

t.test('reuseMapFd: the object uses an existing outer map', async (t) => {
  const template = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 8 });
  t.teardown(() => template.close());
  const outer = await BpfMap.create({ type: MapType.ARRAY_OF_MAPS, name: 'outer_array', keySize: 4, valueSize: 4, maxEntries: 4, innerMap: template });
  t.teardown(() => outer.close());
  const obj = openMapsFixture(t);
  obj.reuseMap('outer_array', outer);
  await obj.load();
  const fromObject = obj.map('outer_array');
  t.teardown(() => fromObject.close());
  t.equal(fromObject.info().id, outer.info().id);
});

t.test('setInnerMap replaces the declared inner template', async (t) => {
  const template = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 32, flags: MapFlag.INNER_MAP });
  const obj = openMapsFixture(t);
  obj.setInnerMap('outer_dyn', template);
  template.close(); // the object owns its own reference until load
  t.match(obj.mapDef('outer_dyn').inner, { type: MapType.ARRAY, maxEntries: 32, flags: MapFlag.INNER_MAP });
  t.throws(() => obj.setInnerMap('outer_dyn', template), { message: /used after close/ });
  await obj.load();
  const outer = obj.map('outer_dyn');
  t.teardown(() => outer.close());
  const big = await BpfMap.create({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 1000, flags: MapFlag.INNER_MAP });
  t.teardown(() => big.close());
  await outer.update(u32(0), u32(big.fd));
  t.equal(outer.lookup(u32(0))?.readUInt32LE(0), big.info().id);
});

t.test('a program the verifier rejects: the error carries the verifier log', async (t) => {
  const obj = BpfObject.open(fixture('bad_verifier.bpf.o'));
  t.teardown(() => obj.close());
  const err = await obj.load().then(
    () => null,
    (e: unknown) => e as Error & { code: string; syscall: string; verifierLog?: string },
  );
  t.ok(err, 'load failed');
  t.equal(err?.syscall, 'bpf_object__load');
  t.match(err?.code, /^E[A-Z]+$/);
  t.match(err?.verifierLog, /invalid access to packet|R\d+ /, 'the verifier says why');
  t.match(err?.message, /libbpf: .*failed to load/i, "libbpf's explanation is in the message");
  t.equal(obj.loaded, false);
});

t.test('testRun runs a program on given bytes', async (t) => {
  const obj = BpfObject.open(fixture('attach.bpf.o'));
  t.teardown(() => obj.close());
  await obj.load();
  const frame = Buffer.alloc(64, 0xab);
  const result = await obj.testRun('xdp_pass', frame, { repeat: 10 });
  t.equal(result.retval, 2, 'XDP_PASS');
  t.same(result.data, frame, 'the output bytes are the packet');
  t.type(result.duration, 'number');
});
