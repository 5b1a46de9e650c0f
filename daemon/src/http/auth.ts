// Who a request comes from and what it may do. Over TCP only a bearer token
// lets a request in; on the unix socket the socket's file mode already decided
// who may connect, so a peer gets the socket's scope (and a token, if it sends
// one, is used instead). Tokens are kept as sha256 digests: the configuration
// never holds a usable secret. `reload` swaps the table in one step (SIGHUP).
import { createHash } from 'node:crypto';
import createError from '@fastify/error';
import type { Scope, TokenConfig } from '../config/schema';
import { mimdError } from '../domain/errors';

export const UnauthorizedError = createError('MIMD_UNAUTHORIZED', '%s', 401);
export const ForbiddenError = createError('MIMD_FORBIDDEN', '%s', 403);

export type Transport = 'unix' | 'tcp';

export interface Principal {
  /** the token's id, or `uid:<n>` for a socket peer without a token */
  id: string;
  kind: 'token' | 'peer';
  scope: Scope;
  /** outer maps ("object/map") the principal is limited to; null: every map */
  maps: ReadonlySet<string> | null;
  transport: Transport;
  /** the peer's uid on the unix socket */
  uid: number | null;
  /** the client's address over TCP */
  address: string | null;
}

export interface AccessSettings {
  tokens: readonly TokenConfig[];
  /** what a socket peer without a token may do */
  socketScope: Scope;
}

const RANK: Record<Scope, number> = { read: 0, write: 1, admin: 2 };

/** 32 random bytes as base64url: what `mimd token` hands out. */
export const TOKEN_PATTERN = /^[A-Za-z0-9_-]{16,256}$/;

export function tokenDigest(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export class AccessControl {
  private byDigest = new Map<string, TokenConfig>();
  private socketScope: Scope = 'read';

  constructor(settings: AccessSettings) {
    this.reload(settings);
  }

  reload(settings: AccessSettings): void {
    this.byDigest = new Map(settings.tokens.map((t) => [t.sha256, t]));
    this.socketScope = settings.socketScope;
  }

  get tokenCount(): number {
    return this.byDigest.size;
  }

  /** The principal of a request; 401 when it has none (or a token mimd does not know). */
  identify(transport: Transport, authorization: string | undefined, peer: { uid: number } | null, address: string | null): Principal {
    const uid = peer?.uid ?? null;
    if (authorization !== undefined) {
      const match = /^Bearer ([^\s]+)$/i.exec(authorization.trim());
      if (!match?.[1]) throw unauthorized('Authorization: expected "Bearer <token>"');
      const token = this.byDigest.get(tokenDigest(match[1]));
      if (!token) throw unauthorized('Authorization: unknown token');
      return {
        id: token.id,
        kind: 'token',
        scope: token.scope,
        maps: token.maps ? new Set(token.maps) : null,
        transport,
        uid,
        address,
      };
    }
    if (transport === 'unix') {
      return { id: uid === null ? 'peer' : `uid:${uid}`, kind: 'peer', scope: this.socketScope, maps: null, transport, uid, address };
    }
    throw unauthorized('Authorization: a bearer token is required');
  }

  /** 403 unless the principal's scope (and map list) covers the request. */
  authorize(principal: Principal, needs: Scope, map: string | null): void {
    if (RANK[principal.scope] < RANK[needs]) {
      throw mimdError(ForbiddenError, `${principal.id} has scope ${principal.scope}; this needs ${needs}`, { field: 'Authorization' });
    }
    if (map !== null && principal.maps !== null && !principal.maps.has(map)) {
      throw mimdError(ForbiddenError, `${principal.id} may not use ${map} (it may use: ${[...principal.maps].join(', ')})`, { field: 'Authorization' });
    }
  }

  /** Whether a principal may see a map at all (lists leave out the others). */
  canSee(principal: Principal, map: string): boolean {
    return principal.maps === null || principal.maps.has(map);
  }
}

function unauthorized(message: string): Error {
  return mimdError(UnauthorizedError, message, { field: 'Authorization' });
}
