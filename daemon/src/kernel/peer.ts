// The credentials of the process on the other end of a unix socket
// connection (SO_PEERCRED), for audit records. Node keeps the fd of a
// connected pipe on its internal handle; there is no public API for it.
import type { Socket } from 'node:net';
import { native } from './native';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/**
 * The peer of a connection is fixed when it connects: asked once per
 * connection, not on every request of a kept-alive one.
 */
const known = new WeakMap<Socket, PeerCredentials>();

/** null when the socket is not a unix socket (or already closed). */
export function peerCredentials(socket: Socket): PeerCredentials | null {
  const cached = known.get(socket);
  if (cached) return cached;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  try {
    const credentials = native.peerCredentials(fd);
    known.set(socket, credentials);
    return credentials;
  } catch {
    return null;
  }
}
