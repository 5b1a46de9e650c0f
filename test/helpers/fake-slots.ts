// A SlotsApi without a kernel for the HTTP tests: every call is recorded,
// every method answers a fixed, plausible DTO unless a test replaces it with
// on() or makes it fail with fail(). It keeps no state: the HTTP layer's job
// is to pass requests through and render answers, not to keep slots.
// testApp() builds the real app over it: by default as the unix socket's app
// with an admin peer (so route tests need no token), with the TOKENS known,
// audit records collected and loose limits; tests of access, audit and
// limits override those.
import type { Socket } from 'node:net';
import pino from 'pino';
import type { Scope, TokenConfig } from '../../daemon/src/config/schema';
import type {
  ClearResult,
  EntryPage,
  Expectation,
  OuterMapDetail,
  OuterMapView,
  PatchBody,
  PatchResult,
  SlotDetail,
  SlotSummary,
  SlotsApi,
  SwapResult,
  DumpFormat,
  VersionInput,
  VersionView,
} from '../../daemon/src/domain/slots-api';
import { isUpload } from '../../daemon/src/domain/slots-api';
import { buildApp, type App, type Limits, type ReloadResult } from '../../daemon/src/http/app';
import type { AuditRecord } from '../../daemon/src/http/audit';
import { AccessControl, tokenDigest, type Transport } from '../../daemon/src/http/auth';
import { Metrics } from '../../daemon/src/http/metrics';

/** A schema as the typed codec gives it, nested, to check it passes through whole. */
export const ENTRY_SCHEMA = {
  slot: { type: 'integer', minimum: 0, maximum: 3 },
  key: { anyOf: [{ type: 'string', format: 'ipv4' }, { type: 'string', pattern: '^0x[0-9a-fA-F]{8}$' }] },
  value: { type: 'object', properties: { verdict: { enum: ['pass', 'drop'] } }, required: ['verdict'], additionalProperties: false },
};

export const BLOCKLIST: OuterMapView = {
  object: 'firewall',
  name: 'blocklist',
  type: 'ARRAY_OF_MAPS',
  maxEntries: 4,
  keySize: 4,
  innerTemplate: { type: 'HASH', keySize: 4, valueSize: 1, maxEntries: 65536, flags: [], resizable: true },
  slotsInUse: 1,
  mapId: 41,
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist',
};

export const SLOT_SUMMARY: SlotSummary = {
  slot: 0,
  activeVersion: 2,
  mapId: 57,
  entryCount: 1,
  createdAt: '2025-01-01T00:00:00.000Z',
  labels: { owner: 'ops' },
  drift: false,
};

export const VERSION_2: VersionView = {
  version: 2,
  state: 'active',
  mapId: 57,
  entryCount: 1,
  maxEntries: 65536,
  createdAt: '2025-01-01T00:00:00.000Z',
  activatedAt: '2025-01-01T00:00:01.000Z',
  labels: { owner: 'ops' },
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist/0/2',
  digest: 'a'.repeat(64),
};

export const VERSION_1: VersionView = {
  ...VERSION_2,
  version: 1,
  state: 'retained',
  mapId: 50,
  activatedAt: '2024-12-31T00:00:00.000Z',
  labels: {},
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist/0/1',
  digest: null,
};

export const STAGED_3: VersionView = {
  ...VERSION_2,
  version: 3,
  state: 'staged',
  mapId: 60,
  activatedAt: null,
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist/0/3',
  digest: 'c'.repeat(64),
};

export const SLOT_DETAIL: SlotDetail = {
  slot: 0,
  activeVersion: 2,
  kernelMapId: 57,
  installedMapId: 57,
  drift: false,
  versions: [VERSION_2, VERSION_1],
};

export const SWAP: SwapResult = {
  slot: 0,
  version: 3,
  previousVersion: 2,
  mapId: 60,
  previousMapId: 57,
  entryCount: 1,
  digest: 'c'.repeat(64),
  swapMs: 0.042,
  created: false,
};

export const PAGE: EntryPage = {
  entries: [{ key: '0x7f000002', value: 1 }],
  nextCursor: null,
};

export const PATCHED: PatchResult = { slot: 0, version: 2, upserted: 1, deleted: 1, entryCount: 1, digest: 'd'.repeat(64) };

export const CLEARED: ClearResult = { slot: 0, previousVersion: 2, previousMapId: 57 };

/** What the fake's dumpEntries answers: PAGE's entries, or BINARY_DUMP. */
export const BINARY_DUMP = Buffer.from('0100000007', 'hex');

async function* dumped(format: DumpFormat): AsyncGenerator<Buffer> {
  if (format === 'binary') {
    yield BINARY_DUMP;
    return;
  }
  for (const entry of PAGE.entries) yield Buffer.from(`${JSON.stringify(entry)}\n`);
}

/** A streamed upload as the fake records it: the stream read whole into `data`. */
export interface ReceivedUpload {
  format: 'ndjson' | 'binary';
  data: Buffer;
  maxEntries?: number;
  labels?: Record<string, string>;
  requestLimit: number;
}

async function received(body: VersionInput): Promise<VersionInput | ReceivedUpload> {
  if (!isUpload(body)) return body;
  const pieces: Buffer[] = [];
  for await (const piece of body.body) pieces.push(Buffer.isBuffer(piece) ? piece : Buffer.from(piece));
  const { body: _stream, ...rest } = body;
  return { ...rest, data: Buffer.concat(pieces) };
}

/** The SlotsApi methods that change what is in a slot. */
export const CHANGES: ReadonlySet<keyof SlotsApi> = new Set(['putSlot', 'stageVersion', 'activate', 'rollback', 'patchEntries', 'clearSlot']);

export interface Call {
  method: keyof SlotsApi;
  args: unknown[];
}

export class FakeSlots implements SlotsApi {
  readonly calls: Call[] = [];
  isReady = true;
  private readonly impl: Partial<Record<keyof SlotsApi, (...args: never[]) => unknown>> = {};

  /** Replaces what `method` does. */
  on<K extends keyof SlotsApi>(method: K, fn: SlotsApi[K]): this {
    this.impl[method] = fn;
    return this;
  }

  /** Makes `method` throw `err` (async methods reject with it). */
  fail(method: keyof SlotsApi, err: Error): this {
    this.impl[method] = () => {
      throw err;
    };
    return this;
  }

  /** The arguments of the only call of `method`; fails the test if there was not exactly one. */
  only(method: keyof SlotsApi): unknown[] {
    const calls = this.calls.filter((c) => c.method === method);
    if (calls.length !== 1) throw new Error(`expected one call of ${method}, got ${calls.length}`);
    return calls[0]!.args;
  }

  /** Calls to anything but ready() (which the probes use). */
  serviceCalls(): Call[] {
    return this.calls.filter((c) => c.method !== 'ready');
  }

  /**
   * Calls to anything but ready() and getSlot(): the audit record of a failed
   * change to a slot reads what the slot holds now with getSlot(), after the
   * answer. For a refused change this is what the handler called: nothing.
   */
  callsBesidesAudit(): Call[] {
    return this.calls.filter((c) => c.method !== 'ready' && c.method !== 'getSlot');
  }

  /** Calls to the methods that change something. */
  changes(): Call[] {
    return this.calls.filter((c) => CHANGES.has(c.method));
  }

  private call<T>(method: keyof SlotsApi, args: unknown[], answer: () => T): T {
    this.calls.push({ method, args });
    const fn = this.impl[method] as ((...a: unknown[]) => T) | undefined;
    return fn ? fn(...args) : answer();
  }

  ready(): boolean {
    return this.call('ready', [], () => this.isReady);
  }
  listMaps(): OuterMapView[] {
    return this.call('listMaps', [], () => [BLOCKLIST]);
  }
  getMap(object: string, map: string): OuterMapDetail {
    return this.call('getMap', [object, map], () => ({ ...BLOCKLIST, slots: [SLOT_SUMMARY], schema: ENTRY_SCHEMA }));
  }
  listSlots(object: string, map: string): SlotSummary[] {
    return this.call('listSlots', [object, map], () => [SLOT_SUMMARY]);
  }
  getSlot(object: string, map: string, slot: string): SlotDetail {
    return this.call('getSlot', [object, map, slot], () => SLOT_DETAIL);
  }
  async putSlot(object: string, map: string, slot: string, body: VersionInput, expect?: Expectation): Promise<SwapResult> {
    return this.call('putSlot', [object, map, slot, await received(body), expect], () => SWAP);
  }
  async stageVersion(object: string, map: string, slot: string, body: VersionInput): Promise<VersionView> {
    return this.call('stageVersion', [object, map, slot, await received(body)], () => STAGED_3);
  }
  dumpEntries(object: string, map: string, slot: string, format: DumpFormat, version?: number): AsyncIterable<Buffer> {
    return this.call('dumpEntries', [object, map, slot, format, version], () => dumped(format));
  }
  listVersions(object: string, map: string, slot: string): VersionView[] {
    return this.call('listVersions', [object, map, slot], () => [VERSION_2, VERSION_1]);
  }
  async activate(object: string, map: string, slot: string, version: number, expect?: Expectation): Promise<SwapResult> {
    return this.call('activate', [object, map, slot, version, expect], () => ({ ...SWAP, version, previousVersion: 2 }));
  }
  async rollback(object: string, map: string, slot: string, version?: number, expect?: Expectation): Promise<SwapResult> {
    return this.call('rollback', [object, map, slot, version, expect], () => ({ ...SWAP, version: version ?? 1, previousVersion: 2 }));
  }
  readEntries(object: string, map: string, slot: string, page: { limit: number; cursor?: string; version?: number }): EntryPage {
    return this.call('readEntries', [object, map, slot, page], () => PAGE);
  }
  async patchEntries(object: string, map: string, slot: string, body: PatchBody, expect?: Expectation): Promise<PatchResult> {
    return this.call('patchEntries', [object, map, slot, body, expect], () => PATCHED);
  }
  async clearSlot(object: string, map: string, slot: string, expect?: Expectation): Promise<ClearResult> {
    return this.call('clearSlot', [object, map, slot, expect], () => CLEARED);
  }
}

interface Teardown {
  teardown(fn: () => void | Promise<void>): void;
}

/** Bearer tokens the test apps know, as clients send them. */
export const TOKENS = {
  admin: 'admin-token-0123456789abcdef',
  writer: 'writer-token-0123456789abcdef',
  reader: 'reader-token-0123456789abcdef',
  /** write, but only on firewall/blocklist */
  blocklist: 'blocklist-token-0123456789abcdef',
} as const;

/** The api.tokens entries of TOKENS: their ids are the keys of TOKENS. */
export const TOKEN_CONFIG: TokenConfig[] = [
  { id: 'admin', sha256: tokenDigest(TOKENS.admin), scope: 'admin' },
  { id: 'writer', sha256: tokenDigest(TOKENS.writer), scope: 'write' },
  { id: 'reader', sha256: tokenDigest(TOKENS.reader), scope: 'read' },
  { id: 'blocklist', sha256: tokenDigest(TOKENS.blocklist), scope: 'write', maps: ['firewall/blocklist'] },
];

/** The Authorization header of a token. */
export function bearer(token: string): { authorization: string } {
  return { authorization: `Bearer ${token}` };
}

/** The uid the fake peer lookup reports for every unix socket connection. */
export const PEER_UID = 1000;

/** Limits loose enough that no test meets them unless it sets its own. */
export const TEST_LIMITS: Limits = { maxEntries: 100_000, rateLimit: { max: 10_000, windowMs: 60_000 } };

export interface TestAppOptions {
  slots?: FakeSlots;
  bodyLimit?: number;
  /** 'unix' (default): every request comes from uid PEER_UID with socketScope, unless it sends a token */
  transport?: Transport;
  /** what a socket peer without a token may do; admin by default */
  socketScope?: Scope;
  tokens?: TokenConfig[];
  /** the peer lookup of the unix socket; null: none given to the app */
  peer?: ((socket: Socket) => { uid: number } | null) | null;
  limits?: Limits;
  requestTimeoutMs?: number;
  reload?: () => Promise<ReloadResult>;
}

export interface TestApp {
  app: App;
  slots: FakeSlots;
  /** every log line the app wrote, parsed */
  logs: Record<string, unknown>[];
  /** every audit record the app wrote, in order */
  audit: AuditRecord[];
  metrics: Metrics;
  access: AccessControl;
  /** changes what the app's limits() returns from the next request on (what SIGHUP does) */
  setLimits(limits: Limits): void;
}

/** The real app over a FakeSlots, logging and auditing into arrays; closed in teardown. */
export function testApp(t: Teardown, options: TestAppOptions = {}): TestApp {
  const slots = options.slots ?? new FakeSlots();
  const logs: Record<string, unknown>[] = [];
  const audit: AuditRecord[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const access = new AccessControl({ tokens: options.tokens ?? TOKEN_CONFIG, socketScope: options.socketScope ?? 'admin' });
  const metrics = new Metrics(slots);
  let limits = options.limits ?? TEST_LIMITS;
  const peer = options.peer === undefined ? () => ({ uid: PEER_UID }) : options.peer;
  const app = buildApp({
    slots,
    logger,
    bodyLimit: options.bodyLimit ?? 1024 * 1024,
    transport: options.transport ?? 'unix',
    access,
    ...(peer === null ? {} : { peer }),
    audit: (record) => void audit.push(record),
    metrics,
    limits: () => limits,
    requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    ...(options.reload ? { reload: options.reload } : {}),
  });
  // buildApp asks once which maps exist (metric labels come only from
  // those): that is setup, not a request reaching the service.
  slots.calls.length = 0;
  t.teardown(async () => {
    await app.close();
    metrics.close();
  });
  return {
    app,
    slots,
    logs,
    audit,
    metrics,
    access,
    setLimits: (next) => {
      limits = next;
    },
  };
}

/** The JSON body of an inject() response. */
export function json(res: { body: string }): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}
