// Per-test kernel resources with guaranteed cleanup: a unique pin directory on
// bpffs, veth pairs, network namespaces. Everything made here is removed in
// t.teardown, also when the test fails.
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomBytes } from 'node:crypto';

export const REPO = path.resolve(__dirname, '..', '..');
export const FIREWALL_OBJECT = path.join(REPO, 'bpf', 'firewall.bpf.o');
export const fixture = (name: string): string => path.join(REPO, 'test', 'fixtures', name);

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

let counter = 0;

/** A short name unique to this process and call: interface names have at most 15 characters. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}${process.pid.toString(36)}${counter.toString(36)}${randomBytes(1).toString('hex')}`.slice(0, 15);
}

/** A fresh directory under /sys/fs/bpf, removed with everything pinned in it. */
export function pinDir(t: Teardown): string {
  const dir = path.join('/sys/fs/bpf', `mimd-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function ip(...args: string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

export function ifindexOf(name: string, netns?: string): number {
  const out = netns ? ip('-n', netns, '-j', 'link', 'show', name) : ip('-j', 'link', 'show', name);
  const [link] = JSON.parse(out) as { ifindex: number }[];
  if (!link) throw new Error(`no interface ${name}`);
  return link.ifindex;
}

export interface VethPair {
  host: string;
  peer: string;
  hostIfindex: number;
}

/** A veth pair in the test's own network namespace; deleting one end deletes both. */
export function vethPair(t: Teardown): VethPair {
  const host = uniqueName('mt');
  const peer = uniqueName('mp');
  ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
  t.teardown(() => {
    try {
      ip('link', 'del', host);
    } catch {
      /* already gone */
    }
  });
  ip('link', 'set', host, 'up');
  ip('link', 'set', peer, 'up');
  return { host, peer, hostIfindex: ifindexOf(host) };
}

/** Open file descriptors of this process. */
export function openFdCount(): number {
  return fs.readdirSync('/proc/self/fd').length;
}

/** Every fd of this process that refers to a bpf object, with its kind and flags. */
export function bpfFds(): { fd: number; kind: string; flags: number }[] {
  const result: { fd: number; kind: string; flags: number }[] = [];
  for (const entry of fs.readdirSync('/proc/self/fd')) {
    let target: string;
    try {
      target = fs.readlinkSync(`/proc/self/fd/${entry}`);
    } catch {
      continue; // closed while listing
    }
    const match = /^anon_inode:(bpf[-_].*)$/.exec(target);
    if (!match) continue;
    const fdinfo = fs.readFileSync(`/proc/self/fdinfo/${entry}`, 'utf8');
    const flags = parseInt(/^flags:\s+([0-7]+)/m.exec(fdinfo)?.[1] ?? '0', 8);
    result.push({ fd: Number(entry), kind: match[1] ?? '', flags });
  }
  return result;
}

export const O_CLOEXEC = 0o2000000;

/** u32 little-endian (host order on x86/arm64) as a 4-byte buffer. */
export function u32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(value >>> 0);
  return b;
}

export function u64(value: number | bigint): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(value));
  return b;
}

export interface NetnsLink extends VethPair {
  netns: string;
  hostAddress: string;
  peerAddress: string;
}

/**
 * A network namespace of the test's own, joined to this namespace by a veth
 * pair: the host end here, the peer end inside it, addressed from TEST-NET-1
 * (192.0.2.0/24, documentation-only, never routed). Traffic the test sends
 * from the namespace arrives on the host end.
 */
export function netnsLink(t: Teardown, subnet = 1): NetnsLink {
  const netns = uniqueName('mimdns');
  ip('netns', 'add', netns);
  t.teardown(() => {
    try {
      ip('netns', 'del', netns);
    } catch {
      /* already gone */
    }
  });
  const pair = vethPair(t);
  const base = (subnet % 64) * 4;
  const hostAddress = `192.0.2.${base + 1}`;
  const peerAddress = `192.0.2.${base + 2}`;
  ip('link', 'set', pair.peer, 'netns', netns);
  ip('addr', 'add', `${hostAddress}/30`, 'dev', pair.host);
  ip('-n', netns, 'addr', 'add', `${peerAddress}/30`, 'dev', pair.peer);
  ip('-n', netns, 'link', 'set', pair.peer, 'up');
  ip('-n', netns, 'link', 'set', 'lo', 'up');
  return { ...pair, netns, hostAddress, peerAddress };
}

/**
 * Sends `count` UDP datagrams from inside the namespace to `to` (discard port)
 * and returns how many the kernel accepted for sending.
 */
export function sendUdpFromNetns(netns: string, to: string, count = 5): void {
  const script = `
    const s = require('node:dgram').createSocket('udp4');
    let left = ${count};
    const next = () => left-- > 0 ? s.send('mimd', 9, ${JSON.stringify(to)}, next) : s.close();
    next();`;
  execFileSync('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: 'ignore', timeout: 10_000 });
}

/** The XDP program id attached to an interface, as `ip link` reports it, or null. */
export function xdpProgId(ifname: string): number | null {
  const [link] = JSON.parse(ip('-d', '-j', 'link', 'show', ifname)) as { xdp?: { prog?: { id: number } } }[];
  return link?.xdp?.prog?.id ?? null;
}
