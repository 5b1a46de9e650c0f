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

/** null when the socket is not a unix socket (or already closed). */
export function peerCredentials(socket: Socket): PeerCredentials | null {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return null;
  try {
    return native.peerCredentials(fd);
  } catch {
    return null;
  }
}
