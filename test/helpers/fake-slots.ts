// A SlotsApi without a kernel for the HTTP tests: every call is recorded,
// every method answers a fixed, plausible DTO unless a test replaces it with
// on() or makes it fail with fail(). It keeps no state: the HTTP layer's job
// is to pass requests through and render answers, not to keep slots.
import pino from 'pino';
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
  VersionBody,
  VersionView,
} from '../../daemon/src/domain/slots-api';
import { buildApp, type App } from '../../daemon/src/http/app';

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
};

export const VERSION_1: VersionView = {
  ...VERSION_2,
  version: 1,
  state: 'retained',
  mapId: 50,
  activatedAt: '2024-12-31T00:00:00.000Z',
  labels: {},
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist/0/1',
};

export const STAGED_3: VersionView = {
  ...VERSION_2,
  version: 3,
  state: 'staged',
  mapId: 60,
  activatedAt: null,
  pinPath: '/sys/fs/bpf/mimd/firewall/blocklist/0/3',
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
  entryCount: 1,
  swapMs: 0.042,
  created: false,
};

export const PAGE: EntryPage = {
  entries: [{ key: '0x7f000002', value: 1 }],
  nextCursor: null,
};

export const PATCHED: PatchResult = { slot: 0, version: 2, upserted: 1, deleted: 1, entryCount: 1 };

export const CLEARED: ClearResult = { slot: 0, previousVersion: 2 };

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
  async putSlot(object: string, map: string, slot: string, body: VersionBody, expect?: Expectation): Promise<SwapResult> {
    return this.call('putSlot', [object, map, slot, body, expect], () => SWAP);
  }
  async stageVersion(object: string, map: string, slot: string, body: VersionBody): Promise<VersionView> {
    return this.call('stageVersion', [object, map, slot, body], () => STAGED_3);
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

export interface TestApp {
  app: App;
  slots: FakeSlots;
  /** every log line the app wrote, parsed */
  logs: Record<string, unknown>[];
}

/** The real app over a FakeSlots, logging into an array; closed in teardown. */
export function testApp(t: Teardown, options: { slots?: FakeSlots; bodyLimit?: number } = {}): TestApp {
  const slots = options.slots ?? new FakeSlots();
  const logs: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => void logs.push(JSON.parse(line) as Record<string, unknown>) });
  const app = buildApp({ slots, logger, bodyLimit: options.bodyLimit ?? 1024 * 1024 });
  t.teardown(() => app.close());
  return { app, slots, logs };
}

/** The JSON body of an inject() response. */
export function json(res: { body: string }): Record<string, unknown> {
  return JSON.parse(res.body) as Record<string, unknown>;
}
