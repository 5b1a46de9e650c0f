// The point of mimd, against the real kernel: a program loaded once sees a new
// inner map as soon as it is swapped into a slot.
import t from 'tap';
import { BpfObject, BpfMap, MapFlag, MapType, XdpAction } from '../../daemon/src/kernel';
import { FIREWALL_OBJECT, bpfFds, O_CLOEXEC, openFdCount, u32, vethPair } from '../helpers/sandbox';
import { arpFrame, ipv4Frame, ipv4Prefix, ipv4ToBeU32Buffer, ipv6Frame } from '../helpers/packet';

const LISTED = '198.51.100.7';

async function loadFirewall(t: { teardown(fn: () => void): void }): Promise<{ obj: BpfObject; blocklist: BpfMap }> {
  const obj = BpfObject.open(FIREWALL_OBJECT);
  t.teardown(() => obj.close());
  await obj.load();
  const blocklist = obj.map('blocklist');
  t.teardown(() => blocklist.close());
  return { obj, blocklist };
}

/** An inner map of the blocklist template holding the given sources. */
async function blocklistInner(sources: string[]): Promise<BpfMap> {
  const inner = await BpfMap.create({ type: MapType.HASH, name: 'bl_inner', keySize: 4, valueSize: 1, maxEntries: 65536 });
  for (const source of sources) await inner.update(ipv4ToBeU32Buffer(source), Buffer.from([1]));
  return inner;
}

const slotMapId = (outer: BpfMap, slot: number): number | null => outer.lookup(u32(slot))?.readUInt32LE(0) ?? null;

t.test('swapping slot 0 changes the verdict of a program loaded once', async (t) => {
  const { obj, blocklist } = await loadFirewall(t);
  const programId = obj.programId('xdp_firewall');
  const listing = await blocklistInner([LISTED]);
  t.teardown(() => listing.close());
  const empty = await blocklistInner(['203.0.113.1']);
  t.teardown(() => empty.close());
  const frame = ipv4Frame({ src: LISTED, dst: '192.0.2.1' });

  t.equal((await obj.testRun('xdp_firewall', frame)).retval, XdpAction.PASS, 'no inner map in any slot: pass');

  for (let round = 0; round < 3; round++) {
    await blocklist.update(u32(0), u32(listing.fd));
    t.equal(slotMapId(blocklist, 0), listing.info().id);
    t.equal((await obj.testRun('xdp_firewall', frame)).retval, XdpAction.DROP, `round ${round}: listed source dropped`);

    await blocklist.update(u32(0), u32(empty.fd));
    t.equal(slotMapId(blocklist, 0), empty.info().id);
    t.equal((await obj.testRun('xdp_firewall', frame)).retval, XdpAction.PASS, `round ${round}: other map, source passes`);
  }
  t.equal(obj.programId('xdp_firewall'), programId, 'the same program throughout: no reload');

  // The inner map lives on in its slot after user space closes its fd.
  const transient = await blocklistInner([LISTED]);
  await blocklist.update(u32(3), u32(transient.fd));
  transient.close();
  t.equal((await obj.testRun('xdp_firewall', frame)).retval, XdpAction.DROP, 'slot 3 keeps its map without an fd');
  t.equal(await blocklist.delete(u32(3)), true);
  await blocklist.update(u32(0), u32(empty.fd));
  t.equal((await obj.testRun('xdp_firewall', frame)).retval, XdpAction.PASS, 'emptied slot: pass');
});

t.test('an inner map with the wrong value size is refused and the slot keeps its map', async (t) => {
  const { blocklist } = await loadFirewall(t);
  const good = await blocklistInner([LISTED]);
  t.teardown(() => good.close());
  await blocklist.update(u32(0), u32(good.fd));

  const wrong = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 2, maxEntries: 65536 });
  t.teardown(() => wrong.close());
  await t.rejects(blocklist.update(u32(0), u32(wrong.fd)), { code: 'EINVAL', errno: 22, syscall: 'bpf_map_update_elem' });
  t.equal(slotMapId(blocklist, 0), good.info().id, 'the previous inner map is still in the slot');
});

t.test('the event loop keeps turning while an outer-map update is in flight', async (t) => {
  const { blocklist } = await loadFirewall(t);
  const inners = await Promise.all([0, 1, 2, 3].map(() => blocklistInner([LISTED])));
  t.teardown(() => inners.forEach((m) => m.close()));

  let turns = 0;
  let settled = false;
  const spin = (): void => {
    if (settled) return;
    turns++;
    setImmediate(spin);
  };
  // Many swaps, each waiting for an RCU grace period in a worker thread.
  const swaps = (async () => {
    for (let i = 0; i < 20; i++) await Promise.all(inners.map((m, slot) => blocklist.update(u32(slot), u32(m.fd))));
  })();
  const turnsAtCall = turns;
  setImmediate(spin);
  await swaps;
  settled = true;
  t.equal(turnsAtCall, 0, 'update() returned before doing the work');
  t.ok(turns >= 20, `setImmediate callbacks ran while swaps were in flight (${turns})`);
});

t.test('1,000 create / insert / close cycles leak no fd', async (t) => {
  const { blocklist } = await loadFirewall(t);
  // Warm up lazily opened fds (worker threads, libbpf probes) before counting.
  const warm = await blocklistInner([]);
  await blocklist.update(u32(1), u32(warm.fd));
  warm.close();

  const before = openFdCount();
  for (let i = 0; i < 1000; i++) {
    const inner = await blocklistInner([]);
    await blocklist.update(u32(1), u32(inner.fd));
    inner.close();
  }
  t.equal(openFdCount(), before, 'same number of open fds');
  t.ok(slotMapId(blocklist, 1), 'the last map is in the slot');
});

t.test('every bpf fd the addon holds is close-on-exec', async (t) => {
  const { obj } = await loadFirewall(t);
  const inner = await blocklistInner([]);
  t.teardown(() => inner.close());
  const counters = obj.map('counters');
  t.teardown(() => counters.close());
  const fds = bpfFds();
  t.ok(fds.length >= 3, `found ${fds.length} bpf fds`);
  for (const fd of fds) t.ok(fd.flags & O_CLOEXEC, `fd ${fd.fd} (${fd.kind}) has O_CLOEXEC`);
});

t.test('policy: each interface gets its own trie; the longest prefix decides', async (t) => {
  const { obj } = await loadFirewall(t);
  const policy = obj.map('policy');
  t.teardown(() => policy.close());
  const net = vethPair(t);
  const trie = async (rules: [string, number][]): Promise<BpfMap> => {
    const inner = await BpfMap.create({ type: MapType.LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 16384, flags: MapFlag.NO_PREALLOC });
    for (const [prefix, verdict] of rules) await inner.update(ipv4Prefix(prefix), u32(verdict));
    return inner;
  };
  const DROP = 1;
  const PASS = 0;
  const strict = await trie([['10.0.0.0/8', DROP], ['10.1.0.0/16', PASS]]);
  t.teardown(() => strict.close());
  const lenient = await trie([['10.0.0.0/8', PASS]]);
  t.teardown(() => lenient.close());
  const run = async (src: string, ifindex: number): Promise<number> =>
    (await obj.testRun('xdp_firewall', ipv4Frame({ src, dst: '192.0.2.1' }), { ingressIfindex: ifindex })).retval;

  t.equal(await run('10.2.3.4', net.hostIfindex), XdpAction.PASS, 'no trie for the interface: pass');
  await policy.update(u32(net.hostIfindex), u32(strict.fd));
  t.equal(await run('10.2.3.4', net.hostIfindex), XdpAction.DROP, '/8 drop');
  t.equal(await run('10.1.3.4', net.hostIfindex), XdpAction.PASS, 'longer /16 pass wins');
  t.equal(await run('11.0.0.1', net.hostIfindex), XdpAction.PASS, 'no match: pass');
  t.equal(await run('10.2.3.4', 1), XdpAction.PASS, 'another interface is not affected');

  await policy.update(u32(net.hostIfindex), u32(lenient.fd), 'exist');
  t.equal(await run('10.2.3.4', net.hostIfindex), XdpAction.PASS, 'replaced trie passes');
  t.equal(await policy.delete(u32(net.hostIfindex)), true);
  t.equal(await run('10.2.3.4', net.hostIfindex), XdpAction.PASS);
  t.equal(obj.mapDef('policy').inner?.type, MapType.LPM_TRIE);
});

t.test('non-IPv4 and runt frames pass; counters count per verdict', async (t) => {
  const { obj, blocklist } = await loadFirewall(t);
  const counters = obj.map('counters');
  t.teardown(() => counters.close());
  const listing = await blocklistInner([LISTED]);
  t.teardown(() => listing.close());
  await blocklist.update(u32(2), u32(listing.fd));
  t.equal((await obj.testRun('xdp_firewall', ipv6Frame({ src: '2001:db8::1', dst: '2001:db8::2' }))).retval, XdpAction.PASS);
  t.equal((await obj.testRun('xdp_firewall', arpFrame())).retval, XdpAction.PASS);
  t.equal((await obj.testRun('xdp_firewall', Buffer.alloc(20))).retval, XdpAction.PASS, 'runt frame');
  t.equal((await obj.testRun('xdp_firewall', ipv4Frame({ src: LISTED, dst: '192.0.2.1' }))).retval, XdpAction.DROP);
  const sum = (index: number): bigint => {
    const value = counters.lookup(u32(index));
    let total = 0n;
    for (let off = 0; value && off < value.length; off += 8) total += value.readBigUInt64LE(off);
    return total;
  };
  t.equal(sum(0), 3n, 'passed');
  t.equal(sum(1), 1n, 'dropped by blocklist');
  t.equal(sum(2), 0n, 'dropped by policy');
});
