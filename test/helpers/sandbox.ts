// Per-test kernel resources with guaranteed cleanup: a unique pin directory on
// bpffs, a state directory, veth pairs, network namespaces, and UDP traffic
// through them. Everything made here is removed in t.teardown, also when the
// test fails.
import { execFileSync, spawn } from 'node:child_process';
import * as dgram from 'node:dgram';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { randomBytes } from 'node:crypto';

export const REPO = path.resolve(__dirname, '..', '..');
export const FIREWALL_OBJECT = path.join(REPO, 'bpf', 'firewall.bpf.o');
export const fixture = (name: string): string => path.join(REPO, 'test', 'fixtures', name);

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/**
 * A short name (interface names have at most 15 characters), random enough
 * that a leftover of an earlier run cannot collide with it: pids repeat from
 * boot to boot on identical machines, so a pid-based name did not suffice.
 * Prefixes are at most 6 characters, leaving 36 random bits.
 */
export function uniqueName(prefix: string): string {
  if (prefix.length > 6) throw new Error(`uniqueName: prefix "${prefix}" is longer than 6 characters`);
  return `${prefix}${randomBytes(5).toString('hex')}`.slice(0, 15);
}

/** A fresh directory under /sys/fs/bpf, removed with everything pinned in it. */
export function pinDir(t: Teardown): string {
  const dir = path.join('/sys/fs/bpf', `mimd-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.mkdirSync(dir, { mode: 0o700 });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A fresh directory for mimd's state files (`stateDir`), outside bpffs,
 * removed with everything in it in teardown, also on failure. Tests always
 * set their own: mimd's default (/var/lib/mimd) is the host's.
 */
export function stateDir(t: Teardown): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mimd-state-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/**
 * A fresh directory under the system temp directory with `mode` (mkdtemp
 * makes 0700; a test whose other users must reach a socket in it widens it),
 * removed with everything in it in teardown, also on failure.
 */
export function tempDir(t: Teardown, prefix: string, mode = 0o700): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  fs.chmodSync(dir, mode);
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A system group of the test's own (groupadd), deleted in teardown, also on failure. */
export function tempGroup(t: Teardown): { name: string; gid: number } {
  const name = uniqueName('mimdg');
  execFileSync('groupadd', [name], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    try {
      execFileSync('groupdel', [name], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      /* already gone */
    }
  });
  const line = execFileSync('getent', ['group', name], { encoding: 'utf8' }).trim();
  const gid = Number(line.split(':')[2]);
  if (!Number.isInteger(gid)) throw new Error(`getent group ${name}: ${line}`);
  return { name, gid };
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

/**
 * A second source address on the peer end of `link`: a /32 from TEST-NET-2
 * (198.51.100.0/24), with a route back to it through the host end so the
 * host's stack takes its datagrams (and answers its ARP) like the peer's own
 * address. Both go away with the veth pair and the namespace.
 */
export function peerSource(link: NetnsLink): string {
  const address = `198.51.100.${link.peerAddress.split('.')[3]}`;
  ip('-n', link.netns, 'addr', 'add', `${address}/32`, 'dev', link.peer);
  ip('route', 'add', `${address}/32`, 'dev', link.host);
  return address;
}

export interface UdpSink {
  address: string;
  port: number;
  /** datagrams received from `from` whose payload starts with "<tag>:" */
  count(tag: string, from: string): number;
  /** every datagram received from `from`, whatever its tag */
  total(from: string): number;
}

/** A UDP socket on `address` (the host end), counting datagrams per source address and tag. */
export async function udpSink(t: Teardown, address: string): Promise<UdpSink> {
  const socket = dgram.createSocket('udp4');
  const counts = new Map<string, number>();
  const totals = new Map<string, number>();
  socket.on('message', (msg, rinfo) => {
    const tag = msg.toString('utf8').split(':')[0] ?? '';
    const id = `${rinfo.address} ${tag}`;
    counts.set(id, (counts.get(id) ?? 0) + 1);
    totals.set(rinfo.address, (totals.get(rinfo.address) ?? 0) + 1);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.bind(0, address, () => resolve());
  });
  // Room for a few thousand datagrams while this process is busy elsewhere
  // (a synchronous bpftool call), so none is lost to a full buffer.
  socket.setRecvBufferSize(4 << 20);
  t.teardown(() => {
    socket.close();
  });
  return {
    address,
    port: socket.address().port,
    count: (tag, from) => counts.get(`${from} ${tag}`) ?? 0,
    total: (from) => totals.get(from) ?? 0,
  };
}

export interface NetnsSender {
  /** Sends `count` datagrams "<tag>:<i>" from `from`; resolves once the namespace's kernel took all of them. */
  send(tag: string, count: number, from: string): Promise<void>;
  /** Starts sending "<tag>:<i>" from `from`, one every `intervalMs`, until stop(tag); resolves once the first is sent. */
  stream(tag: string, from: string, intervalMs: number): Promise<void>;
  /** Stops a stream; resolves with how many datagrams it sent. */
  stop(tag: string): Promise<number>;
}

/**
 * One node process inside the namespace that sends UDP datagrams to
 * `to`:`port` on request, from any of the peer's addresses (a socket bound
 * to each): starting a process per probe would cost more than the probes.
 */
export async function netnsSender(t: Teardown, netns: string, to: string, port: number): Promise<NetnsSender> {
  const script = `
    const dgram = require('node:dgram');
    const sockets = new Map();
    const fail = (err) => { console.error(err.message); process.exit(1); };
    const socketFrom = (from, then) => {
      const known = sockets.get(from);
      if (known) return then(known);
      const s = dgram.createSocket('udp4');
      s.on('error', fail);
      s.bind({ address: from, port: 0 }, () => { sockets.set(from, s); then(s); });
    };
    const streams = new Map();
    const say = (line) => process.stdout.write(line + '\\n');
    require('node:readline').createInterface({ input: process.stdin }).on('line', (line) => {
      const [cmd, tag, a, b] = line.split(' ');
      if (cmd === 'send') {
        socketFrom(b, (s) => {
          let i = 0;
          const next = (err) => {
            if (err) fail(err);
            if (i === Number(a)) return say('sent ' + tag);
            s.send(tag + ':' + i++, ${port}, ${JSON.stringify(to)}, next);
          };
          next();
        });
      } else if (cmd === 'stream') {
        socketFrom(a, (s) => {
          const stream = { sent: 0, timer: null };
          streams.set(tag, stream);
          const one = () => s.send(tag + ':' + stream.sent, ${port}, ${JSON.stringify(to)}, (err) => {
            if (err) fail(err);
            stream.sent += 1;
            if (stream.sent === 1) say('streaming ' + tag);
          });
          one();
          stream.timer = setInterval(one, Number(b));
        });
      } else if (cmd === 'stop') {
        const stream = streams.get(tag);
        clearInterval(stream.timer);
        // sends already handed to dgram finish first: their callbacks run before this one
        setImmediate(() => setTimeout(() => say('stopped ' + tag + ' ' + stream.sent), 20));
      }
    }).on('close', () => { for (const s of sockets.values()) s.close(); for (const st of streams.values()) clearInterval(st.timer); });
    say('ready');`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', script], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = once(child, 'exit');
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.stdin.end();
      const timer = setTimeout(() => child.kill('SIGKILL'), 2_000);
      await exited;
      clearTimeout(timer);
    }
  });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const waiting = new Map<string, (rest: string) => void>();
  createInterface({ input: child.stdout }).on('line', (line) => {
    const [word = '', tag = '', ...rest] = line.split(' ');
    const id = word === 'ready' ? 'ready' : `${word} ${tag}`;
    waiting.get(id)?.(rest.join(' '));
    waiting.delete(id);
  });
  const died = exited.then(([code]) => {
    throw new Error(`the sender in ${netns} exited (${String(code)}): ${stderr}`);
  });
  died.catch(() => {}); // only awaited while something is pending
  const answer = (id: string, command: string | null, what: string): Promise<string> => {
    const answered = new Promise<string>((resolve) => waiting.set(id, resolve));
    if (command !== null) child.stdin.write(`${command}\n`);
    return timeLimit(Promise.race([answered, died]), 10_000, what);
  };
  await answer('ready', null, 'sender start');
  return {
    send: async (tag, count, from) => void (await answer(`sent ${tag}`, `send ${tag} ${count} ${from}`, `sending ${tag}`)),
    stream: async (tag, from, intervalMs) => void (await answer(`streaming ${tag}`, `stream ${tag} ${from} ${intervalMs}`, `starting ${tag}`)),
    stop: async (tag) => Number(await answer(`stopped ${tag}`, `stop ${tag}`, `stopping ${tag}`)),
  };
}

function timeLimit<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<T>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: no result within ${ms} ms`)), ms);
  });
  return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

/**
 * A tmpfs of `size` (mount -o size=, e.g. '1m') mounted on a fresh directory:
 * a disk that fills up without filling a real one. Unmounted (lazily if still
 * busy) and removed in teardown, also on failure.
 */
export function smallTmpfs(t: Teardown, size: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mimd-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'mimd-test', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
  t.teardown(() => {
    try {
      execFileSync('umount', [dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch {
      execFileSync('umount', ['-l', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Writes `file` until the file system it is on is full (ENOSPC); returns the bytes written. */
export function fillUp(file: string): number {
  const chunk = Buffer.alloc(4096, 0x55);
  const fd = fs.openSync(file, 'w');
  let written = 0;
  try {
    for (;;) written += fs.writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    fs.closeSync(fd);
  }
  return written;
}
