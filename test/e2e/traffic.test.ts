// The product end to end: mimd as a process, xdp_firewall attached to the host
// end of a veth pair whose other end is in a network namespace of the test's
// own, real IPv4 datagrams sent from the namespace to a UDP socket of this
// process. One HTTP call changes what the running program does to them; the
// program itself is never replaced.
import t from 'tap';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { randomBytes, randomInt } from 'node:crypto';
import { netnsLink, pinDir, xdpProgId } from '../helpers/sandbox';
import {
  bpftool,
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelEntries,
  kernelMap,
  kernelSlots,
  skipUnlessRoot,
  sleep,
  startApi,
  u32Hex,
  withTimeout,
  xdpProgram,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

/** Datagrams per probe: enough that a partial drop would show. */
const PROBE = 20;

interface Sink {
  port: number;
  /** datagrams received from `from` carrying `tag` */
  count(tag: string): number;
}

/** A UDP socket on the host end's address, counting datagrams per tag from the peer only. */
async function udpSink(t: { teardown(fn: () => void): void }, address: string, from: string): Promise<Sink> {
  const socket = dgram.createSocket('udp4');
  const counts = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    if (rinfo.address !== from) return;
    const tag = msg.toString('utf8').split(':')[0] ?? '';
    counts.set(tag, (counts.get(tag) ?? 0) + 1);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => resolve());
  });
  t.teardown(() => socket.close());
  return { port: socket.address().port, count: (tag) => counts.get(tag) ?? 0 };
}

interface Sender {
  /** Sends `count` datagrams "<tag>:<i>"; resolves once all were handed to the namespace's kernel. */
  send(tag: string, count: number): Promise<void>;
}

/**
 * One node process inside the namespace, sending on request: starting a
 * process per probe would cost more than the probes.
 */
async function netnsSender(t: { teardown(fn: () => void | Promise<void>): void }, netns: string, to: string, port: number): Promise<Sender> {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    const rl = require('node:readline').createInterface({ input: process.stdin });
    rl.on('line', (line) => {
      const [tag, count] = line.split(' ');
      let i = 0;
      const next = (err) => {
        if (err) { console.error(err.message); process.exit(1); }
        if (i === Number(count)) return process.stdout.write('sent ' + tag + '\\n');
        s.send(tag + ':' + i++, ${port}, ${JSON.stringify(to)}, next);
      };
      next();
    });
    rl.on('close', () => s.close());
    process.stdout.write('ready\\n');`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      await Promise.race([exited, sleep(2_000).then(() => child.kill('SIGKILL'))]);
    }
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const lines = createInterface({ input: child.stdout });
  const waiting = new Map<string, () => void>();
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => (ready = resolve));
  lines.on('line', (line) => {
    if (line === 'ready') return ready();
    const tag = line.replace(/^sent /, '');
    waiting.get(tag)?.();
    waiting.delete(tag);
  });
  const died = exited.then(([code]) => {
    throw new Error(`the sender in ${netns} exited (${String(code)}): ${stderr}`);
  });
  died.catch(() => {}); // only awaited while a send is pending
  await withTimeout(Promise.race([isReady, died]), 10_000, 'sender start');
  return {
    send(tag, count) {
      const sent = new Promise<void>((resolve) => waiting.set(tag, resolve));
      child.stdin.write(`${tag} ${count}\n`);
      return withTimeout(Promise.race([sent, died]), 10_000, `sending ${tag}`);
    },
  };
}

/** Sums of the firewall's per-CPU counters: [passed, dropped by blocklist, dropped by policy]. */
const countersIds = new Map<number, number>();
function firewallCounters(programId: number): number[] {
  let id = countersIds.get(programId);
  if (id === undefined) {
    const prog = bpftool('prog', 'show', 'id', String(programId)) as { map_ids: number[] };
    id = prog.map_ids.find((m) => kernelMap(m)?.name === 'counters');
    if (id === undefined) throw new Error(`program ${programId} uses no map named counters`);
    countersIds.set(programId, id);
  }
  const dump = bpftool('map', 'dump', 'id', String(id)) as { key: string[]; values: { cpu: number; value: string[] }[] }[];
  const sums = [0, 0, 0];
  for (const { key, values } of dump) {
    const index = Buffer.from(key.map((b) => parseInt(b, 16))).readUInt32LE(0);
    for (const { value } of values) sums[index] = (sums[index] ?? 0) + Number(Buffer.from(value.map((b) => parseInt(b, 16))).readBigUInt64LE(0));
  }
  return sums;
}

t.test('blocklist and policy changes take effect on real traffic; the program is never replaced', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  // A subnet of its own inside 192.0.2.0/24, so this test's addresses do not
  // clash with another test's pair in this namespace.
  const link = netnsLink(t, randomInt(16, 64));
  const sink = await udpSink(t, link.hostAddress, link.peerAddress);
  const daemon = await startApi(t, firewallConfig(pinRoot, link.host));
  const { api } = daemon;

  const attached = daemon.logs.find((l) => l.msg === `attached xdp_firewall to ${link.host} (xdp, generic mode)`);
  const programId = xdpProgId(link.host);
  if (programId === null) throw new Error(`nothing attached to ${link.host}`);
  t.equal(programId, attached?.programId, 'the program id from the kernel is the one the daemon reported');
  t.match(xdpProgram(link.host), { name: 'xdp_firewall', mode: 2 }, 'xdp_firewall in generic mode');
  const progInfo = bpftool('prog', 'show', 'id', String(programId)) as { id: number; tag: string; loaded_at: number };

  const sender = await netnsSender(t, link.netns, link.hostAddress, sink.port);

  let probes = 0;
  const nextTag = (): string => `p${++probes}${randomBytes(3).toString('hex')}`;
  const passes = async (what: string): Promise<void> => {
    const tag = nextTag();
    await sender.send(tag, PROBE);
    for (const deadline = Date.now() + 5_000; Date.now() < deadline && sink.count(tag) < PROBE; ) await sleep(10);
    t.equal(sink.count(tag), PROBE, `${what}: all ${PROBE} datagrams arrive`);
  };
  const COUNTER = { blocklist: 1, policy: 2 } as const;
  const dropped = async (what: string, by: keyof typeof COUNTER): Promise<void> => {
    const tag = nextTag();
    const before = firewallCounters(programId)[COUNTER[by]] ?? 0;
    await sender.send(tag, PROBE);
    // The program's own count says when every datagram has had its verdict.
    let counted = 0;
    for (const deadline = Date.now() + 5_000; Date.now() < deadline; await sleep(10)) {
      counted = (firewallCounters(programId)[COUNTER[by]] ?? 0) - before;
      if (counted >= PROBE) break;
    }
    t.equal(counted, PROBE, `${what}: the program counted ${PROBE} drops by the ${by}`);
    await sleep(50);
    t.equal(sink.count(tag), 0, `${what}: none of ${PROBE} datagrams arrive`);
  };

  const { body: maps } = await api('GET', '/v1/maps');
  const outerId = (name: string): number => (maps.maps as { name: string; mapId: number }[]).find((m) => m.name === name)!.mapId;
  const blocklistId = outerId('blocklist');
  const policyId = outerId('policy');

  const ifindex = link.hostIfindex;
  const network = link.hostAddress.replace(/\.\d+$/, '.0');
  // Typed entries as an operator writes them: the sender's address, prefixes, verdicts by name.
  const senderKey = link.peerAddress;
  const ourNet = `${network}/24`;
  const senderOnly = `${link.peerAddress}/32`;
  const drop = { verdict: 'drop' };
  const pass = { verdict: 'pass' };

  await passes('empty maps');

  // --- blocklist: ARRAY_OF_MAPS, slot = index --------------------------------
  let res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [] });
  t.match(res, { status: 201, body: { version: 1, previousVersion: null, created: true } }, 'PUT blocklist slot 0: version 1, 201');
  await passes('blocklist slot 0 holds an empty list');

  res = await api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [{ key: senderKey, value: 1 }], labels: { why: 'e2e' } });
  t.match(res, { status: 200, body: { version: 2, previousVersion: 1, entryCount: 1, created: false } }, 'PUT with the sender: version 2');
  t.equal(kernelSlots(blocklistId)[u32Hex(0)], res.body.mapId, 'the kernel slot holds version 2');
  t.same(
    kernelEntries(res.body.mapId),
    { [firewallBytes.source(link.peerAddress)]: '01' },
    "with the sender's address in network order, as the program reads saddr",
  );
  await dropped('after PUT of a blocklist with the sender', 'blocklist');

  res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback');
  t.match(res, { status: 200, body: { version: 1, previousVersion: 2 } }, 'rollback: version 1 again');
  await passes('after rollback');

  res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback', { version: 2 });
  t.match(res, { status: 200, body: { version: 2, previousVersion: 1 } }, 'rollback {version: 2}');
  await dropped('after rollback to version 2', 'blocklist');

  res = await api('DELETE', '/v1/maps/firewall/blocklist/slots/0');
  t.match(res, { status: 200, body: { slot: 0, previousVersion: 2 } }, 'DELETE slot 0');
  t.same(kernelSlots(blocklistId), {}, 'the kernel slot is empty');
  await passes('after DELETE of the slot');

  // A source listed in any slot is dropped: the last slot too.
  res = await api('PUT', '/v1/maps/firewall/blocklist/slots/3', { entries: [{ key: senderKey, value: 1 }] });
  t.equal(res.status, 201, 'PUT blocklist slot 3');
  await dropped('sender listed in slot 3', 'blocklist');
  t.equal((await api('DELETE', '/v1/maps/firewall/blocklist/slots/3')).status, 200, 'DELETE slot 3');
  await passes('slot 3 emptied');

  // --- policy: HASH_OF_MAPS keyed by ingress ifindex, LPM_TRIE inner ----------
  res = await api('PUT', `/v1/maps/firewall/policy/slots/${ifindex + 1000}`, { entries: [{ key: ourNet, value: drop }] });
  t.equal(res.status, 201, 'PUT policy for another ifindex');
  await passes('a drop policy for another ifindex');

  res = await api('PUT', `/v1/maps/firewall/policy/slots/${ifindex}`, { entries: [{ key: ourNet, value: drop }] });
  t.match(res, { status: 201, body: { slot: ifindex, version: 1, created: true } }, 'PUT policy for our ifindex');
  t.equal(kernelSlots(policyId)[u32Hex(ifindex)], res.body.mapId, 'the kernel holds the trie under our ifindex');
  t.same(
    kernelEntries(res.body.mapId),
    { [firewallBytes.prefix(ourNet)]: firewallBytes.verdict('drop') },
    'with the prefix and verdict as struct policy_key / policy_value',
  );
  const policyV1 = res.body.mapId as number;
  await dropped(`after a policy PUT for ifindex ${ifindex} with ${network}/24 -> drop`, 'policy');

  res = await api('PATCH', `/v1/maps/firewall/policy/slots/${ifindex}/entries`, { upsert: [{ key: ourNet, value: pass }] });
  t.match(res, { status: 200, body: { version: 1, upserted: 1, deleted: 0, entryCount: 1 } }, 'PATCH the verdict to pass');
  t.equal(kernelSlots(policyId)[u32Hex(ifindex)], policyV1, 'PATCH changed the trie in place, no swap');
  res = await api('GET', `/v1/maps/firewall/policy/slots/${ifindex}/entries`);
  t.same(res.body.entries, [{ key: ourNet, value: pass }], 'read back typed');
  await passes('after PATCH of the verdict to pass');

  res = await api('PUT', `/v1/maps/firewall/policy/slots/${ifindex}`, {
    entries: [
      { key: ourNet, value: pass },
      { key: senderOnly, value: drop },
    ],
  });
  t.match(res, { status: 200, body: { version: 2, previousVersion: 1, entryCount: 2 } }, 'PUT policy version 2');
  await dropped('the longest prefix (/32 of the sender) drops', 'policy');

  res = await api('POST', `/v1/maps/firewall/policy/slots/${ifindex}/rollback`);
  t.match(res, { status: 200, body: { version: 1, previousVersion: 2, mapId: policyV1 } }, 'policy rollback to version 1');
  await passes('after rollback of the policy');

  // Blocklist before policy: a listed source is dropped whatever the policy says.
  res = await api('POST', '/v1/maps/firewall/blocklist/slots/0/rollback', { version: 2 });
  t.equal(res.status, 200, 'blocklist rollback to version 2');
  await dropped('blocklisted again while the policy passes', 'blocklist');

  // --- the program was never replaced ---------------------------------------
  t.equal(xdpProgId(link.host), programId, 'the same program id on the interface after all of it');
  t.match(bpftool('prog', 'show', 'id', String(programId)), { id: programId, tag: progInfo.tag, loaded_at: progInfo.loaded_at }, 'the same program (tag, load time)');

  const exit = await daemon.stop('SIGTERM');
  t.same(exit, { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.equal(xdpProgram(link.host), null, 'detached');
  t.same(fs.readdirSync(pinRoot), [], 'no pins left under pinRoot');
  t.equal(daemon.stderr(), '', 'nothing on stderr');
  await passes('after the daemon stopped');
});
