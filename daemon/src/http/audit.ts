// One audit record per change request, whatever its outcome: who, what, on
// which slot, what was there before and after, and how it ended. Records are
// built from the request (its principal and route), the service's answer or
// the error, and written by the sink main.ts chose (a file, or stdout as a
// stream of its own).
import type { Principal } from './auth';

export type AuditAction = 'put' | 'stage' | 'activate' | 'rollback' | 'patch' | 'clear' | 'reload' | 'unknown';

export interface AuditRecord {
  time: string;
  /** fastify's request id, as in the log lines of the same request */
  requestId: string;
  actor: {
    /** token id, `uid:<n>` for a socket peer, or null when the request was not let in */
    id: string | null;
    kind: 'token' | 'peer' | null;
    transport: 'unix' | 'tcp';
    uid: number | null;
    address: string | null;
  };
  action: AuditAction;
  method: string;
  url: string;
  /** "object/map", when the URL names one */
  map: string | null;
  /** the slot as the URL gave it */
  slot: string | null;
  oldVersion: number | null;
  newVersion: number | null;
  oldMapId: number | null;
  newMapId: number | null;
  entryCount: number | null;
  /** sha256 of the content installed or changed */
  digest: string | null;
  result: 'ok' | 'error';
  status: number;
  /** the error's code (MIMD_...) when it failed */
  code: string | null;
  /** the kernel's errno name, when the kernel refused */
  errno: string | null;
}

export type AuditSink = (record: AuditRecord) => void;

/** Which change a mutating route is. */
export function auditAction(method: string, route: string | undefined): AuditAction {
  if (route === undefined) return 'unknown';
  if (route.endsWith('/reload')) return 'reload';
  if (route.endsWith('/versions/:version/activate')) return 'activate';
  if (route.endsWith('/versions')) return 'stage';
  if (route.endsWith('/rollback')) return 'rollback';
  if (route.endsWith('/entries')) return 'patch';
  if (route.endsWith('/slots/:slot')) return method === 'DELETE' ? 'clear' : 'put';
  return 'unknown';
}

/** What the answer says of the change; fields the answer does not have stay null. */
interface Outcome {
  oldVersion: number | null;
  newVersion: number | null;
  oldMapId: number | null;
  newMapId: number | null;
  entryCount: number | null;
  digest: string | null;
  code: string | null;
  errno: string | null;
}

const num = (v: unknown): number | null => (typeof v === 'number' ? v : null);
const str = (v: unknown): string | null => (typeof v === 'string' ? v : null);

export function outcomeOf(action: AuditAction, body: Record<string, unknown> | null, failed: boolean): Outcome {
  const out: Outcome = { oldVersion: null, newVersion: null, oldMapId: null, newMapId: null, entryCount: null, digest: null, code: null, errno: null };
  if (!body) return out;
  if (failed) {
    out.code = str(body.code);
    out.errno = str(body.errno);
    return out;
  }
  switch (action) {
    case 'put':
    case 'activate':
    case 'rollback':
      out.oldVersion = num(body.previousVersion);
      out.newVersion = num(body.version);
      out.oldMapId = num(body.previousMapId);
      out.newMapId = num(body.mapId);
      out.entryCount = num(body.entryCount);
      out.digest = str(body.digest);
      break;
    case 'stage':
      out.newVersion = num(body.version);
      out.newMapId = num(body.mapId);
      out.entryCount = num(body.entryCount);
      out.digest = str(body.digest);
      break;
    case 'patch':
      out.oldVersion = num(body.version);
      out.newVersion = num(body.version);
      out.entryCount = num(body.entryCount);
      out.digest = str(body.digest);
      break;
    case 'clear':
      out.oldVersion = num(body.previousVersion);
      out.oldMapId = num(body.previousMapId);
      break;
    default:
      break;
  }
  return out;
}

export function actorOf(principal: Principal | undefined, transport: 'unix' | 'tcp', uid: number | null, address: string | null): AuditRecord['actor'] {
  if (!principal) return { id: null, kind: null, transport, uid, address };
  return { id: principal.id, kind: principal.kind, transport: principal.transport, uid: principal.uid, address: principal.address };
}
