// Where the API listens: the unix socket (default) and an optional TCP
// listener. The socket's directory is made mode 0750 and the socket 0660,
// both owned by the configured group, and neither is ever wider on the way:
// mkdir gets its mode directly, and the socket is bound under a umask that
// already leaves out everything 0660 does not allow.
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as path from 'node:path';
import type { ApiConfig } from './config/schema';

/** A start problem an operator fixes in the configuration or on the host. */
export class ListenerError extends Error {
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(`${field}: ${message}`);
    this.name = 'ListenerError';
  }
}

/** The gid of a group by name, from /etc/group (Node has no getgrnam). */
export function groupId(name: string, groupFile = '/etc/group'): number {
  const text = fs.readFileSync(groupFile, 'utf8');
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group === name && gid !== undefined && /^[0-9]+$/.test(gid)) return Number(gid);
  }
  throw new ListenerError('api.socket.group', `no group ${JSON.stringify(name)} in ${groupFile}`);
}

/**
 * Makes the socket's directory (0750, the group's) and removes a stale socket
 * left by a crash; refuses when another process still answers on it.
 */
export async function prepareSocket(socket: NonNullable<ApiConfig['socket']>): Promise<{ gid: number | null }> {
  const gid = socket.group === null ? null : groupId(socket.group);
  const dir = path.dirname(socket.path);
  fs.mkdirSync(path.dirname(dir), { recursive: true, mode: 0o755 });
  try {
    fs.mkdirSync(dir, { mode: 0o750 });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new ListenerError('api.socket.path', `cannot create ${dir}: ${(err as Error).message}`);
  }
  const stat = fs.lstatSync(dir);
  if (!stat.isDirectory()) throw new ListenerError('api.socket.path', `${dir} is not a directory`);
  fs.chmodSync(dir, 0o750);
  if (gid !== null) fs.chownSync(dir, process.getuid?.() ?? 0, gid);

  let existing: fs.Stats | null = null;
  try {
    existing = fs.lstatSync(socket.path);
  } catch {
    existing = null;
  }
  if (existing) {
    if (!existing.isSocket()) throw new ListenerError('api.socket.path', `${socket.path} exists and is not a socket`);
    if (await answers(socket.path)) throw new ListenerError('api.socket.path', `another process listens on ${socket.path} (is mimd already running?)`);
    fs.rmSync(socket.path, { force: true });
  }
  return { gid };
}

function answers(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const client = net.connect(socketPath);
    client.once('connect', () => {
      client.destroy();
      resolve(true);
    });
    client.once('error', () => resolve(false));
  });
}

/** Runs `listen` with a umask that makes the socket 0660 at bind, then sets owner group and mode. */
export async function listenOnSocket(socketPath: string, gid: number | null, listen: () => Promise<unknown>): Promise<void> {
  const previous = process.umask(0o117);
  try {
    await listen();
  } finally {
    process.umask(previous);
  }
  fs.chmodSync(socketPath, 0o660);
  if (gid !== null) fs.chownSync(socketPath, process.getuid?.() ?? 0, gid);
}

export function readTls(tls: { cert: string; key: string }): { cert: Buffer; key: Buffer } {
  try {
    return { cert: fs.readFileSync(tls.cert), key: fs.readFileSync(tls.key) };
  } catch (err) {
    throw new ListenerError('api.tcp.tls', (err as Error).message);
  }
}
