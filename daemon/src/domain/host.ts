// HostService: brings up what the configuration asks for (every BPF object
// loaded, every program attached) and takes it down again. Start is all or
// nothing: on any failure everything already done is undone, so mimd is never
// left half-started.
import * as path from 'node:path';
import createError from '@fastify/error';
import type { Logger } from 'pino';
import type { AttachConfig, ObjectConfig } from '../config/schema';
import type { ManagedMapSource } from './slots-service';
import type { BtfTable } from './btf';
import type { AttachKind, AttachTarget, KernelLink, KernelObject, MapDefinition, ObjectLoader, ProgramDefinition } from './ports';

/** The configuration does not fit the host or the object (unknown program, wrong program type, no such interface). */
export const ConfigMismatchError = createError('MIMD_CONFIG_MISMATCH', '%s', 400);
/** The kernel refused a step of the start (open, load, attach). */
export const StartFailedError = createError('MIMD_START_FAILED', '%s', 500);

export interface HostError extends Error {
  code: 'MIMD_CONFIG_MISMATCH' | 'MIMD_START_FAILED';
  statusCode: number;
  /** the config key the failure is about, e.g. objects[0].attach[1].program */
  field: string;
}

function hostError(kind: typeof ConfigMismatchError | typeof StartFailedError, field: string, message: string, cause?: unknown): HostError {
  const err = cause === undefined ? new kind(message) : new kind(message, { cause });
  return Object.assign(err, { field }) as HostError;
}

export function isHostError(err: unknown): err is HostError {
  return err instanceof ConfigMismatchError || err instanceof StartFailedError;
}

/** Which libbpf program types each attach type takes. */
const PROGRAM_TYPES: Record<AttachKind, readonly string[]> = {
  xdp: ['xdp'],
  tc: ['sched_cls'],
  tracepoint: ['tracepoint'],
  raw_tracepoint: ['raw_tracepoint', 'raw_tracepoint_writable'],
};

export type AttachmentView = AttachConfig & {
  /** objects[i].attach[j] */
  field: string;
  /** for xdp and tc */
  ifindex?: number;
  linkId: number;
  programId: number;
};

export interface LoadedObjectView {
  name: string;
  /** absolute path of the object file */
  path: string;
  maps: MapDefinition[];
  programs: ProgramDefinition[];
  attachments: AttachmentView[];
}

export interface HostSummary {
  objects: string[];
  maps: number;
  attachments: number;
}

export interface HostServiceOptions {
  objects: readonly ObjectConfig[];
  pinRoot: string;
  kernel: ObjectLoader;
  logger: Logger;
}

interface PlannedAttachment {
  field: string;
  config: AttachConfig;
  target: AttachTarget;
  /** "lo (xdp, generic mode)" */
  where: string;
}

interface Attachment {
  planned: PlannedAttachment;
  link: KernelLink;
}

interface ObjectEntry {
  field: string;
  config: ObjectConfig;
  handle: KernelObject;
  planned: PlannedAttachment[];
  loaded: boolean;
  maps: MapDefinition[];
  programs: ProgramDefinition[];
  btf: BtfTable | null;
  attachments: Attachment[];
}

type State = 'idle' | 'starting' | 'running' | 'closing' | 'closed';

export class HostService {
  private state: State = 'idle';
  private readonly entries: ObjectEntry[] = [];
  private starting: Promise<void> | null = null;
  private closing: Promise<void> | null = null;
  private closeRequested = false;
  private readonly log: Logger;

  constructor(private readonly options: HostServiceOptions) {
    this.log = options.logger;
  }

  /** Loads every configured object and attaches its programs, in config order. Call once. */
  start(): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`host: start() when already ${this.state}`));
    this.state = 'starting';
    this.starting = this.bringUp().then(
      () => {
        this.state = 'running';
      },
      (err: unknown) => {
        this.release('rollback');
        this.state = 'closed';
        throw err;
      },
    );
    return this.starting;
  }

  /**
   * Detaches every program and closes every object, last attached first.
   * Idempotent; while start() runs it waits for start to stop at its next step.
   */
  close(): Promise<void> {
    if (this.closing) return this.closing;
    this.closeRequested = true;
    this.closing = (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      if (this.state === 'running') {
        this.state = 'closing';
        this.release('close');
      }
      this.state = 'closed';
    })();
    return this.closing;
  }

  get running(): boolean {
    return this.state === 'running';
  }

  objects(): LoadedObjectView[] {
    return this.entries.filter((e) => e.loaded).map((e) => view(e));
  }

  object(name: string): LoadedObjectView | undefined {
    const entry = this.entries.find((e) => e.loaded && e.config.name === name);
    return entry && view(entry);
  }

  /**
   * New handles on every map-in-map map of every loaded object, for the slot
   * service, which owns (and closes) them.
   */
  managedMaps(): ManagedMapSource[] {
    const sources: ManagedMapSource[] = [];
    try {
      for (const entry of this.entries.filter((e) => e.loaded)) {
        for (const def of entry.maps) {
          if (!def.inner) continue;
          sources.push({
            field: `${entry.field}.maps.${def.name}`,
            btf: entry.btf,
            codec: entry.config.maps?.[def.name],
            object: entry.config.name,
            name: def.name,
            type: def.type,
            keySize: def.keySize,
            keyTypeId: def.btfKeyTypeId,
            maxEntries: def.maxEntries,
            inner: def.inner,
            handle: entry.handle.outerMap(def.name),
          });
        }
      }
    } catch (err) {
      for (const source of sources) source.handle.close();
      throw err;
    }
    return sources;
  }

  summary(): HostSummary {
    const loaded = this.entries.filter((e) => e.loaded);
    return {
      objects: loaded.map((e) => e.config.name),
      maps: loaded.reduce((n, e) => n + e.maps.length, 0),
      attachments: loaded.reduce((n, e) => n + e.attachments.length, 0),
    };
  }

  private async bringUp(): Promise<void> {
    // Everything that can be checked without the kernel is checked for every
    // object before the first one loads: a typo in the last object must not
    // cost a load (and verification) of the first.
    this.options.objects.forEach((config, i) => this.open(config, i));
    for (const entry of this.entries) {
      await this.load(entry);
      this.stopIfClosing();
    }
    for (const entry of this.entries) {
      for (const planned of entry.planned) this.attach(entry, planned);
    }
  }

  private stopIfClosing(): void {
    if (this.closeRequested) throw hostError(StartFailedError, 'objects', 'start interrupted: mimd is shutting down');
  }

  private open(config: ObjectConfig, i: number): void {
    const field = `objects[${i}]`;
    let handle: KernelObject;
    try {
      handle = this.options.kernel.openObject(config.path, {
        name: config.name,
        pinRoot: path.posix.join(this.options.pinRoot, config.name),
      });
    } catch (err) {
      throw hostError(StartFailedError, `${field}.path`, `${field} (${config.name}): cannot open ${config.path}: ${message(err)}`, err);
    }
    const entry: ObjectEntry = {
      field,
      config,
      handle,
      planned: [],
      loaded: false,
      maps: [],
      programs: [],
      btf: null,
      attachments: [],
    };
    // Registered before anything else can fail, so that the rollback closes it.
    this.entries.push(entry);
    entry.programs = entry.handle.programs();
    this.checkMapSettings(entry);
    entry.planned = config.attach.map((attach, j) => this.plan(entry, attach, `${field}.attach[${j}]`));
  }

  /** `maps:` settings must name map-in-map maps of the object. */
  private checkMapSettings(entry: ObjectEntry): void {
    const outer = entry.handle.maps().filter((m) => m.inner !== null).map((m) => m.name);
    for (const name of Object.keys(entry.config.maps ?? {})) {
      if (!outer.includes(name)) {
        const field = `${entry.field}.maps.${name}`;
        throw hostError(
          ConfigMismatchError,
          field,
          `${field}: object ${entry.config.name} has no map-in-map map ${JSON.stringify(name)} (it has: ${outer.join(', ') || 'none'})`,
        );
      }
    }
  }

  private plan(entry: ObjectEntry, config: AttachConfig, field: string): PlannedAttachment {
    const program = entry.programs.find((p) => p.name === config.program);
    if (!program) {
      const names = entry.programs.map((p) => p.name);
      throw hostError(
        ConfigMismatchError,
        `${field}.program`,
        `${field}.program: no program ${JSON.stringify(config.program)} in object ${entry.config.name} (${entry.config.path}); ` +
          (names.length ? `it has: ${names.join(', ')}` : 'it has no programs'),
      );
    }
    const accepted = PROGRAM_TYPES[config.type];
    if (!accepted.includes(program.type)) {
      throw hostError(
        ConfigMismatchError,
        `${field}.type`,
        `${field}.type: program ${program.name} is of type ${program.type} (section "${program.section}"), ` +
          `type ${config.type} needs a ${accepted.join(' or ')} program`,
      );
    }
    return { field, config, target: this.target(config, field), where: describe(config) };
  }

  private target(config: AttachConfig, field: string): AttachTarget {
    switch (config.type) {
      case 'xdp':
        return { type: 'xdp', ifindex: this.ifindex(config.interface, field), mode: config.mode };
      case 'tc':
        return { type: 'tc', ifindex: this.ifindex(config.interface, field), direction: config.direction };
      case 'tracepoint': {
        const [category = '', name = ''] = config.tracepoint.split('/');
        return { type: 'tracepoint', category, name };
      }
      case 'raw_tracepoint':
        return { type: 'raw_tracepoint', name: config.tracepoint };
    }
  }

  private ifindex(name: string, field: string): number {
    try {
      return this.options.kernel.interfaceIndex(name);
    } catch (err) {
      throw hostError(ConfigMismatchError, `${field}.interface`, `${field}.interface: ${message(err)}`, err);
    }
  }

  private async load(entry: ObjectEntry): Promise<void> {
    const { name, path: file } = entry.config;
    try {
      await entry.handle.load();
    } catch (err) {
      throw hostError(StartFailedError, entry.field, `${entry.field} (${name}): cannot load ${file}: ${message(err)}`, err);
    }
    entry.loaded = true;
    entry.maps = entry.handle.maps();
    entry.programs = entry.handle.programs();
    entry.btf = entry.handle.btf();
    this.log.info(
      { object: name, path: file, maps: entry.maps.map((m) => m.name), programs: entry.programs.map((p) => p.name) },
      'loaded object',
    );
  }

  private attach(entry: ObjectEntry, planned: PlannedAttachment): void {
    let link: KernelLink;
    try {
      link = entry.handle.attach(planned.config.program, planned.target);
    } catch (err) {
      throw hostError(
        StartFailedError,
        planned.field,
        `${planned.field}: cannot attach ${planned.config.program} (object ${entry.config.name}) to ${planned.where}: ${message(err)}`,
        err,
      );
    }
    entry.attachments.push({ planned, link });
    this.log.info(
      { object: entry.config.name, attachment: planned.field, linkId: link.id, programId: link.programId },
      `attached ${planned.config.program} to ${planned.where}`,
    );
  }

  /** Closes links, then objects, newest first. Never throws: one failed close must not keep the rest open. */
  private release(why: 'close' | 'rollback'): void {
    for (const entry of [...this.entries].reverse()) {
      for (const { planned, link } of [...entry.attachments].reverse()) {
        try {
          link.close();
          this.log.info({ object: entry.config.name, attachment: planned.field, linkId: link.id, why }, `detached ${planned.config.program} from ${planned.where}`);
        } catch (err) {
          this.log.error({ err, object: entry.config.name, attachment: planned.field, why }, `cannot detach ${planned.config.program} from ${planned.where}`);
        }
      }
      entry.attachments = [];
      try {
        entry.handle.close();
        if (entry.loaded) this.log.info({ object: entry.config.name, why }, 'closed object');
      } catch (err) {
        this.log.error({ err, object: entry.config.name, why }, 'cannot close object');
      }
      entry.loaded = false;
    }
    this.entries.length = 0;
  }
}

function describe(config: AttachConfig): string {
  switch (config.type) {
    case 'xdp':
      return `${config.interface} (xdp, ${config.mode} mode)`;
    case 'tc':
      return `${config.interface} (tc ${config.direction})`;
    case 'tracepoint':
      return `tracepoint ${config.tracepoint}`;
    case 'raw_tracepoint':
      return `raw tracepoint ${config.tracepoint}`;
  }
}

function view(entry: ObjectEntry): LoadedObjectView {
  return structuredClone({
    name: entry.config.name,
    path: entry.config.path,
    maps: entry.maps,
    programs: entry.programs,
    attachments: entry.attachments.map(({ planned, link }) => ({
      ...planned.config,
      field: planned.field,
      ...('ifindex' in planned.target ? { ifindex: planned.target.ifindex } : {}),
      linkId: link.id,
      programId: link.programId,
    })),
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
