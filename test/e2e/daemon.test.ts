// The daemon as a process: start it with an override config that attaches the
// example firewall to a veth of the test's own, stop it with a signal, and see
// the program come and go on the interface. Needs root, iproute2, the addon
// (build/Release/mimd.node) and bpf/firewall.bpf.o.
import t from 'tap';
import * as fs from 'node:fs';
import { netnsLink, pinDir, vethPair } from '../helpers/sandbox';
import { FIREWALL_MAPS, ensureBuilt, firewallConfig, skipUnlessRoot, startDaemon, withTimeout, xdpProgram } from '../helpers/daemon';

const EX_CONFIG = 78;

const skip = skipUnlessRoot;

if (!skip) ensureBuilt();

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  t.test(`attaches xdp_firewall to a veth and detaches it on ${signal}, exit 0`, { skip }, async (t) => {
    const pinRoot = pinDir(t);
    const link = netnsLink(t);
    t.equal(xdpProgram(link.host), null, 'nothing attached before');

    const daemon = startDaemon(t, firewallConfig(pinRoot, link.host));
    const started = await daemon.waitForLog('started');
    t.match(started, { component: 'main', objects: ['firewall'], attachments: 1 });
    const attached = daemon.logs.find((l) => l.msg === `attached xdp_firewall to ${link.host} (xdp, generic mode)`);
    t.ok(attached, 'the attachment is logged');

    const prog = xdpProgram(link.host);
    t.match(prog, { name: 'xdp_firewall', mode: 2 }, 'ip link shows xdp_firewall in generic mode (XDP_ATTACHED_SKB)');
    t.equal(prog?.id, attached?.programId, 'the program the daemon reported');

    daemon.child.kill(signal);
    const exit = await withTimeout(daemon.exited, 5_000, 'daemon exit');
    t.same(exit, { code: 0, signal: null }, 'clean exit');
    t.equal(xdpProgram(link.host), null, 'the program is gone from the interface');
    t.ok(daemon.logs.some((l) => l.msg === 'shutting down' && l.signal === signal));
    t.ok(daemon.logs.some((l) => l.msg === `detached xdp_firewall from ${link.host} (xdp, generic mode)`));
    t.equal(daemon.logs.at(-1)?.msg, 'stopped', 'the last line made it out before exit');
    t.same(fs.readdirSync(pinRoot), [], 'nothing pinned');
    t.equal(daemon.stderr(), '');
  });
}

t.test('a bad config exits 78 naming the key, before touching the kernel', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const link = netnsLink(t);
  const config = { ...firewallConfig(pinRoot, link.host), log: { level: 'loud' } };
  const daemon = startDaemon(t, config);
  const exit = await withTimeout(daemon.exited, 10_000, 'daemon exit');
  t.same(exit, { code: EX_CONFIG, signal: null });
  t.match(daemon.stderr(), /^config: log\.level: expected one of fatal, error, warn, info, debug, trace, silent, got "loud" \(from .*mimd\.yaml, line \d+\)\n$/);
  t.notMatch(daemon.stderr(), /\n\s+at /, 'no stack trace');
  t.same(daemon.logs, [], 'no logger yet, nothing on stdout');
  t.equal(xdpProgram(link.host), null, 'nothing attached');
});

t.test('a program the object does not have exits 78 naming the key, and attaches nothing', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const link = netnsLink(t);
  const daemon = startDaemon(t, firewallConfig(pinRoot, link.host, 'xdp_firewal'));
  const exit = await withTimeout(daemon.exited, 10_000, 'daemon exit');
  t.same(exit, { code: EX_CONFIG, signal: null });
  t.match(daemon.stderr(), 'config: objects[0].attach[0].program: no program "xdp_firewal" in object firewall');
  t.match(daemon.stderr(), 'it has: xdp_firewall');
  t.ok(daemon.logs.some((l) => l.msg === 'start failed' && (l.error as { code?: string } | undefined)?.code === 'MIMD_CONFIG_MISMATCH'));
  t.notOk(daemon.logs.some((l) => l.msg === 'loaded object'), 'nothing was loaded');
  t.equal(xdpProgram(link.host), null, 'nothing attached');
  t.same(fs.readdirSync(pinRoot), []);
});

t.test('an interface that does not exist exits 78 naming the key', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const daemon = startDaemon(t, firewallConfig(pinRoot, 'mimd-no-such'));
  const exit = await withTimeout(daemon.exited, 10_000, 'daemon exit');
  t.same(exit, { code: EX_CONFIG, signal: null });
  t.match(daemon.stderr(), 'config: objects[0].attach[0].interface: interface "mimd-no-such" not found');
});

t.test('a format that does not fit the BTF type exits 78 naming the map, and attaches nothing', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  // policy's key is struct policy_key (8 bytes): ipv4 is for a 4-byte field.
  const daemon = startDaemon(t, firewallConfig(pinRoot, veth.host, { maps: { ...FIREWALL_MAPS, policy: { formats: { key: 'ipv4' } } } }));
  const exit = await withTimeout(daemon.exited, 10_000, 'daemon exit');
  t.same(exit, { code: EX_CONFIG, signal: null });
  t.match(daemon.stderr(), 'config: objects[0].maps.policy: key: (root): format ipv4 needs a 4-byte field, got 8 bytes (struct policy_key)');
  t.ok(daemon.logs.some((l) => l.msg === 'start failed' && (l.error as { code?: string } | undefined)?.code === 'MIMD_CONFIG_MISMATCH'));
  t.equal(xdpProgram(veth.host), null, 'nothing attached');
  t.same(fs.readdirSync(pinRoot), []);
});

t.test('a kernel failure at the second attach exits 1 and undoes the first', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const first = netnsLink(t);
  const second = vethPair(t);
  const config = firewallConfig(pinRoot, first.host) as { objects: { attach: object[] }[] };
  // veth has no offload device: the kernel refuses the second attach.
  config.objects[0]!.attach.push({ program: 'xdp_firewall', type: 'xdp', interface: second.host, mode: 'offload' });
  const daemon = startDaemon(t, config);
  const exit = await withTimeout(daemon.exited, 10_000, 'daemon exit');
  t.same(exit, { code: 1, signal: null });
  t.ok(daemon.logs.some((l) => l.msg === `attached xdp_firewall to ${first.host} (xdp, generic mode)`), 'the first attach happened');
  const failure = daemon.logs.find((l) => l.msg === 'start failed');
  t.match(failure, { error: { code: 'MIMD_START_FAILED', field: 'objects[0].attach[1]' }, cause: { syscall: String } });
  t.match(daemon.stderr(), `mimd: start failed: objects[0].attach[1]: cannot attach xdp_firewall (object firewall) to ${second.host} (xdp, offload mode): `);
  t.ok(daemon.logs.some((l) => l.msg === `detached xdp_firewall from ${first.host} (xdp, generic mode)` && l.why === 'rollback'));
  t.equal(xdpProgram(first.host), null, 'the first attachment was undone');
  t.equal(xdpProgram(second.host), null);
  t.same(fs.readdirSync(pinRoot), []);
});
