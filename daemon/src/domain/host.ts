// HostService: brings up what the configuration asks for (every BPF object
// loaded, every program attached) and takes it down again. Start is all or
// nothing: on any failure everything this start did is undone, so mimd is
// never left half-started, and what an earlier run left pinned (still
// enforcing) is left as it was.
//
// Everything lives under <pinRoot>/<object>/: maps/<map> for outer maps (and
// maps the object pins by name), links/<attachment> for attachments. A start
// reuses what is pinned there: outer maps whose definition (inner template
// included) matches the object's, and links, whose program it replaces in
// place (bpf_link_update), so enforcement has no gap across a restart or an
// upgrade of the object.
import * as path from 'node:path';
import createError from '@fastify/error';
import type { Logger } from 'pino';
import type { AttachConfig, ObjectConfig } from '../config/schema';
import type { ManagedMapSource } from './slots-service';
import type { BtfTable } from './btf';
import type { AttachKind, AttachTarget, KernelLink, LinkInfo, KernelObject, KernelOuterMap, KernelPort, MapDefinition, MapShape, ProgramDefinition } from './ports';
import type { OuterMapRecord, StateStore } from './state';
import { shapeDifference } from './template';

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
  kernel: KernelPort;
  state: StateStore;
  logger: Logger;
}

/** What a start does with an outer map. */
interface OuterPin {
  name: string;
  /** <pinRoot>/<object>/maps/<name> */
  path: string;
  /** reused: the pin is used; fresh: no pin yet; replacing: the pin does not match and is replaced */
  kind: 'reused' | 'fresh' | 'replacing';
  /** the pinned map (reused, replacing) */
  pinned: KernelOuterMap | null;
}

interface PlannedAttachment {
  field: string;
  config: AttachConfig;
  target: AttachTarget;
  /** "lo (xdp, generic mode)" */
  where: string;
  /** the link's pin: <pinRoot>/<object>/links/<name> */
  pinPath: string;
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
  /** <pinRoot>/<object> */
  pinDir: string;
  outerPins: OuterPin[];
  /** pins this start made, removed again if it fails */
  createdPins: string[];
  /** pin directories this start made, outermost first */
  createdDirs: string[];
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

  /**
   * Loads every configured object and attaches its programs, in config order.
   * `beforeAttach` runs once the maps are loaded and before any program is
   * attached (or swapped into a pinned link): slots are restored there, so a
   * program sees them from its first packet. Call once.
   */
  start(beforeAttach: () => Promise<void> = async () => undefined): Promise<void> {
    if (this.state !== 'idle') return Promise.reject(new Error(`host: start() when already ${this.state}`));
    this.state = 'starting';
    this.starting = this.bringUp(beforeAttach).then(
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
   * Closes every handle, last attached first. `keep` (the default) leaves the
   * pinned links and maps in place: programs stay attached and enforcing.
   * `remove` also removes every pin and record mimd owns, which detaches the
   * programs. Idempotent; while start() runs it waits for start to stop at its
   * next step.
   */
  close(mode: 'keep' | 'remove' = 'keep'): Promise<void> {
    if (this.closing) return this.closing;
    this.closeRequested = true;
    this.closing = (async () => {
      if (this.starting) await this.starting.catch(() => undefined);
      if (this.state === 'running') {
        this.state = 'closing';
        const objects = this.entries.map((e) => ({ name: e.config.name, pinDir: e.pinDir, attachments: e.attachments.map((a) => a.planned) }));
        this.release('close');
        if (mode === 'remove') for (const object of objects) this.removeOwned(object);
      }
      this.state = 'closed';
    })();
    return this.closing;
  }

  /** Detaches (by unpinning the links) and removes every pin and record of an object. */
  private removeOwned(object: { name: string; pinDir: string; attachments: PlannedAttachment[] }): void {
    const { kernel, state } = this.options;
    for (const planned of [...object.attachments].reverse()) {
      kernel.unpin(planned.pinPath);
      this.log.info({ object: object.name, attachment: planned.field }, `detached ${planned.config.program} from ${planned.where}`);
    }
    kernel.removePinTree(object.pinDir);
    state.removeObject(object.name);
    this.log.info({ object: object.name, pinDir: object.pinDir }, 'removed pins and records');
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
            pinPath: this.outerPinPath(entry, def.name),
            replacing: entry.outerPins.find((p) => p.name === def.name && p.kind === 'replacing')?.pinned ?? null,
            fresh: entry.outerPins.some((p) => p.name === def.name && p.kind === 'fresh'),
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

  private async bringUp(beforeAttach: () => Promise<void>): Promise<void> {
    // Everything that can be checked without the kernel is checked for every
    // object before the first one loads: a typo in the last object must not
    // cost a load (and verification) of the first.
    this.options.objects.forEach((config, i) => this.open(config, i));
    for (const entry of this.entries) this.checkPins(entry);
    for (const entry of this.entries) {
      await this.load(entry);
      this.pinFreshOuterMaps(entry);
      this.stopIfClosing();
    }
    await beforeAttach();
    this.stopIfClosing();
    // A replacing outer map takes over the pin once its slots are carried
    // over and before the new program is attached: from then on a restart
    // finds the new map, whatever moment it comes at.
    for (const entry of this.entries) this.pinReplacingOuterMaps(entry);
    for (const entry of this.entries) {
      for (const planned of entry.planned) this.attach(entry, planned);
    }
    for (const entry of this.entries) this.removeStaleLinks(entry);
  }

  private stopIfClosing(): void {
    if (this.closeRequested) throw hostError(StartFailedError, 'objects', 'start interrupted: mimd is shutting down');
  }

  private open(config: ObjectConfig, i: number): void {
    const field = `objects[${i}]`;
    const pinDir = path.posix.join(this.options.pinRoot, config.name);
    let handle: KernelObject;
    try {
      handle = this.options.kernel.openObject(config.path, {
        name: config.name,
        pinRoot: path.posix.join(pinDir, 'maps'),
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
      pinDir,
      outerPins: [],
      createdPins: [],
      createdDirs: [],
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
    return {
      field,
      config,
      target: this.target(config, field),
      where: describe(config),
      pinPath: path.posix.join(entry.pinDir, 'links', linkPinName(config)),
    };
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

  /**
   * Attaches a program, or puts it into the link an earlier run pinned for
   * the same hook (bpf_link_update: no moment without a program there).
   */
  private attach(entry: ObjectEntry, planned: PlannedAttachment): void {
    const { kernel } = this.options;
    const program = planned.config.program;
    let link: KernelLink | null = null;
    let pinned: KernelLink | null = null;
    let how = 'attached';
    try {
      pinned = this.pinnedLink(entry, planned);
      if (pinned) {
        try {
          entry.handle.updateLink(program, pinned);
          link = pinned;
          how = 'updated the pinned link of';
        } catch (err) {
          // Links that cannot change program (perf_event): attach beside it,
          // then let the old one go, so the hook is never empty.
          this.log.warn({ err: message(err), attachment: planned.field }, 'the pinned link cannot take the new program; attaching a new link beside it');
          link = entry.handle.attach(program, planned.target);
          const next = newPinPath(planned.pinPath);
          kernel.unpin(next);
          link.pin(next);
          kernel.renamePin(next, planned.pinPath);
          pinned.close();
          how = 'replaced the pinned link of';
        }
      } else {
        link = entry.handle.attach(program, planned.target);
        this.makeDir(entry, path.posix.dirname(planned.pinPath));
        link.pin(planned.pinPath);
        entry.createdPins.push(planned.pinPath);
      }
    } catch (err) {
      link?.close();
      if (pinned !== link) pinned?.close();
      if (link && link !== pinned) kernel.unpin(newPinPath(planned.pinPath));
      throw hostError(
        StartFailedError,
        planned.field,
        `${planned.field}: cannot attach ${program} (object ${entry.config.name}) to ${planned.where}: ${message(err)}`,
        err,
      );
    }
    entry.attachments.push({ planned, link });
    const info = link.info();
    this.log.info(
      { object: entry.config.name, attachment: planned.field, linkId: link.id, programId: info.programId, pinPath: planned.pinPath },
      `${how} ${program} ${how === 'attached' ? 'to' : 'on'} ${planned.where}`,
    );
  }

  /** The link an earlier run pinned for this hook, if it is still on it; a stale one is removed. */
  private pinnedLink(entry: ObjectEntry, planned: PlannedAttachment): KernelLink | null {
    const { kernel } = this.options;
    if (!kernel.pinExists(planned.pinPath)) return null;
    const link = kernel.openPinnedLink(planned.pinPath);
    const info = link.info();
    const stale = staleness(info, planned.target);
    if (stale === null) return link;
    // Its interface was deleted or replaced: the link attaches nothing any more.
    link.close();
    kernel.unpin(planned.pinPath);
    this.log.warn({ object: entry.config.name, attachment: planned.field, linkId: info.id, why: stale }, 'removed a stale pinned link');
    return null;
  }

  /** Links pinned by an earlier run for attachments no longer configured: unpinning detaches them. */
  private removeStaleLinks(entry: ObjectEntry): void {
    const { kernel } = this.options;
    const dir = path.posix.join(entry.pinDir, 'links');
    const wanted = new Set(entry.planned.map((p) => path.posix.basename(p.pinPath)));
    for (const pin of kernel.listPins(dir)) {
      if (pin.directory || wanted.has(pin.name)) continue;
      kernel.unpin(path.posix.join(dir, pin.name));
      this.log.warn({ object: entry.config.name, pin: path.posix.join(dir, pin.name) }, 'detached an attachment that is no longer configured');
    }
    kernel.removeEmptyPinDir(dir);
  }

  // ---- outer map pins --------------------------------------------------------

  private outerPinPath(entry: ObjectEntry, name: string): string {
    return path.posix.join(entry.pinDir, 'maps', name);
  }

  /**
   * Before load: decides per outer map whether its pin is reused, made, or
   * replaced. libbpf's own reuse check ignores the inner template, so mimd
   * compares the pinned map with the object itself, inner template included
   * (from the record written when the map was first pinned).
   */
  private checkPins(entry: ObjectEntry): void {
    const { kernel, state } = this.options;
    const name = entry.config.name;
    const defs = entry.handle.maps().filter((m) => m.inner !== null);
    // Leftovers of a replacement a crash interrupted before the rename.
    const names = new Set(entry.handle.maps().map((m) => m.name));
    const leftovers: string[] = [];
    for (const pin of kernel.listPins(path.posix.join(entry.pinDir, 'maps'))) {
      const pinPath = path.posix.join(entry.pinDir, 'maps', pin.name);
      if (pin.name.startsWith(NEW_PIN_PREFIX)) leftovers.push(pinPath);
      else if (!names.has(pin.name)) this.log.warn({ object: name, pinPath }, 'left in place: a pinned map the object no longer declares (mimd purge removes it)');
    }
    // libbpf pins maps declared with LIBBPF_PIN_BY_NAME here, creating only the last directory.
    const mapsDir = path.posix.join(entry.pinDir, 'maps');
    this.makeDir(entry, mapsDir);
    for (const def of defs) {
      const pinPath = this.outerPinPath(entry, def.name);
      entry.handle.clearPinPath(def.name);
      if (!kernel.pinExists(pinPath)) {
        entry.outerPins.push({ name: def.name, path: pinPath, kind: 'fresh', pinned: null });
        continue;
      }
      let pinned: KernelOuterMap;
      try {
        pinned = kernel.openPinnedOuterMap(pinPath);
      } catch (err) {
        throw hostError(StartFailedError, `${entry.field}.onIncompatiblePin`, `${entry.field} (${name}): cannot open the pinned outer map ${pinPath}: ${message(err)}`, err);
      }
      const mismatch = this.pinMismatch(pinned, def, state.readOuter(name, def.name));
      if (mismatch === null) {
        entry.outerPins.push({ name: def.name, path: pinPath, kind: 'reused', pinned });
        entry.handle.reuseMap(def.name, pinned);
        this.log.info({ object: name, map: def.name, mapId: pinned.id, pinPath }, 'reusing pinned outer map');
        continue;
      }
      if (entry.config.onIncompatiblePin !== 'replace') {
        pinned.close();
        throw hostError(
          ConfigMismatchError,
          `${entry.field}.onIncompatiblePin`,
          `${entry.field} (${name}): the pinned outer map ${def.name} (${pinPath}) does not match the object: ${mismatch}. ` +
            `Set ${entry.field}.onIncompatiblePin: replace to replace it (slots whose inner maps fit the new template are carried over), ` +
            `or run mimd purge to remove everything mimd owns`,
        );
      }
      entry.outerPins.push({ name: def.name, path: pinPath, kind: 'replacing', pinned });
      this.log.warn({ object: name, map: def.name, mapId: pinned.id, pinPath, mismatch }, 'replacing incompatible outer map');
    }
    // Only once nothing is refused: a refused start changes nothing.
    for (const pinPath of leftovers) kernel.unpin(pinPath);
  }

  /** How the pinned outer map differs from the object's definition, or null. */
  private pinMismatch(pinned: KernelOuterMap, def: MapDefinition, record: OuterMapRecord | null): string | null {
    const wanted: MapShape = { type: def.type, keySize: def.keySize, valueSize: def.valueSize, maxEntries: def.maxEntries, flags: def.flags };
    const outer = shapeDifference(pinned.definition(), wanted);
    if (outer) return `${outer.field} is ${outer.found} in the pin, ${outer.wanted} in the object`;
    // The kernel does not report an outer map's inner template: the record does.
    if (!record || record.mapId !== pinned.id) return 'innerTemplate is not recorded for this map (no record of it in the state directory)';
    const inner = def.inner;
    if (!inner) return 'innerTemplate: the object declares none';
    const template: MapShape = { type: inner.type, keySize: inner.keySize, valueSize: inner.valueSize, maxEntries: inner.maxEntries, flags: inner.flags };
    const difference = shapeDifference(record.innerTemplate, template);
    return difference && `innerTemplate.${difference.field} is ${difference.found} in the pin, ${difference.wanted} in the object`;
  }

  /** After load: maps with no pin yet get their record, then their pin. */
  private pinFreshOuterMaps(entry: ObjectEntry): void {
    for (const outer of entry.outerPins) {
      // The loaded object holds the map now; the handle from the pin is no longer needed.
      if (outer.kind === 'reused') {
        outer.pinned?.close();
        outer.pinned = null;
      }
      if (outer.kind !== 'fresh') continue;
      this.pinOuterMap(entry, outer.name, outer.path);
      entry.createdPins.push(outer.path);
    }
  }

  /** After attach: a replacing outer map takes over the pin (rename, so the path is never empty). */
  private pinReplacingOuterMaps(entry: ObjectEntry): void {
    for (const outer of entry.outerPins) {
      if (outer.kind !== 'replacing') continue;
      this.pinOuterMap(entry, outer.name, outer.path, true);
      outer.pinned?.close();
      outer.pinned = null;
      this.log.warn({ object: entry.config.name, map: outer.name, pinPath: outer.path }, 'replaced incompatible outer map');
    }
  }

  /**
   * Records the outer map's definition, then pins it. The record comes first:
   * a pin without a record is refused at the next start, a record without its
   * pin is ignored. `replace`: the map takes over a pin that exists, by a
   * rename, so the path never lacks a map; if that fails the old record is
   * put back.
   */
  private pinOuterMap(entry: ObjectEntry, name: string, pinPath: string, replace = false): void {
    const { kernel, state } = this.options;
    const def = entry.maps.find((m) => m.name === name);
    const map = entry.handle.outerMap(name);
    const previous = replace ? state.readOuter(entry.config.name, name) : null;
    const next = replace ? newPinPath(pinPath) : pinPath;
    let recorded = false;
    try {
      if (!def?.inner) throw new Error(`${name} is not a map-in-map map`);
      const shape = (d: MapShape): MapShape => ({ type: d.type, keySize: d.keySize, valueSize: d.valueSize, maxEntries: d.maxEntries, flags: [...d.flags] });
      state.writeOuter(entry.config.name, name, { outer: shape(def), innerTemplate: shape(def.inner), mapId: map.id, createdAt: new Date().toISOString() });
      recorded = true;
      this.makeDir(entry, path.posix.dirname(pinPath));
      map.pin(next);
      if (replace) kernel.renamePin(next, pinPath);
    } catch (err) {
      if (replace) {
        try {
          kernel.unpin(next);
          if (recorded && previous) state.writeOuter(entry.config.name, name, previous);
        } catch (undoErr) {
          this.log.error({ err: undoErr, object: entry.config.name, map: name }, 'cannot undo a failed replacement of an outer map pin');
        }
      }
      throw hostError(StartFailedError, entry.field, `${entry.field} (${entry.config.name}): cannot pin outer map ${name} at ${pinPath}: ${message(err)}`, err);
    } finally {
      map.close();
    }
  }

  /** Removes what a failed start pinned; what earlier runs pinned stays. */
  private removeCreatedPins(entry: ObjectEntry): void {
    const { kernel, state } = this.options;
    for (const pinPath of [...entry.createdPins].reverse()) {
      try {
        kernel.unpin(pinPath);
      } catch (err) {
        this.log.error({ err, object: entry.config.name, pinPath }, 'cannot remove a pin of the failed start');
      }
    }
    try {
      for (const outer of entry.outerPins.filter((o) => o.kind === 'fresh' && entry.createdPins.includes(o.path))) {
        if (state.readSlots(entry.config.name, outer.name).length === 0) state.removeMap(entry.config.name, outer.name);
      }
      for (const dir of [...entry.createdDirs].reverse()) kernel.removeEmptyPinDir(dir);
    } catch (err) {
      this.log.error({ err, object: entry.config.name }, 'cannot remove the records of the failed start');
    }
    entry.createdPins = [];
    entry.createdDirs = [];
  }

  /** A pin directory (and its parents), remembered for a failed start to remove if this start made it. */
  private makeDir(entry: ObjectEntry, dir: string): void {
    const { kernel } = this.options;
    const missing: string[] = [];
    for (let d = dir; d !== entry.pinDir && !kernel.pinExists(d); d = path.posix.dirname(d)) missing.push(d);
    if (!kernel.pinExists(entry.pinDir)) missing.push(entry.pinDir);
    if (missing.length === 0) return;
    kernel.makePinDir(dir);
    entry.createdDirs.push(...missing.reverse());
  }

  /** Closes links, then objects, newest first. Never throws: one failed close must not keep the rest open. */
  private release(why: 'close' | 'rollback'): void {
    for (const entry of [...this.entries].reverse()) {
      for (const { planned, link } of [...entry.attachments].reverse()) {
        try {
          link.close();
          const created = entry.createdPins.includes(planned.pinPath);
          if (why === 'rollback' && created) {
            this.options.kernel.unpin(planned.pinPath);
            this.log.info({ object: entry.config.name, attachment: planned.field, linkId: link.id, why }, `detached ${planned.config.program} from ${planned.where}`);
          } else {
            this.log.debug({ object: entry.config.name, attachment: planned.field, linkId: link.id, why }, `${planned.config.program} stays attached to ${planned.where} (pinned)`);
          }
        } catch (err) {
          this.log.error({ err, object: entry.config.name, attachment: planned.field, why }, `cannot detach ${planned.config.program} from ${planned.where}`);
        }
      }
      entry.attachments = [];
      for (const outer of entry.outerPins) outer.pinned?.close();
      if (why === 'rollback') this.removeCreatedPins(entry);
      entry.outerPins = [];
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

// bpffs refuses names with a dot; map names are C identifiers and link pin
// names start with their kind, so this prefix names no real pin.
const NEW_PIN_PREFIX = 'new-';

/** Where a pin's replacement is made before it is renamed over the pin. */
function newPinPath(pinPath: string): string {
  return path.posix.join(path.posix.dirname(pinPath), NEW_PIN_PREFIX + path.posix.basename(pinPath));
}

/** Why a pinned link no longer serves `target` (null: it does). */
function staleness(info: LinkInfo, target: AttachTarget): string | null {
  if (info.programId === 0) return 'it was detached';
  const wantedType = { xdp: 'xdp', tc: 'tcx', tracepoint: 'perf_event', raw_tracepoint: 'raw_tracepoint' }[target.type];
  if (info.type !== wantedType) return `it is a ${info.type} link, not ${wantedType}`;
  if ('ifindex' in target && info.ifindex !== target.ifindex) return `it is on ifindex ${info.ifindex ?? 0}, the interface is now ifindex ${target.ifindex}`;
  return null;
}

/** One pin per hook: a changed program for the same hook is an update, not a new attachment. */
function linkPinName(config: AttachConfig): string {
  switch (config.type) {
    case 'xdp':
      return `xdp-${config.mode}-${config.interface}`;
    case 'tc':
      return `tc-${config.direction}-${config.interface}`;
    case 'tracepoint':
      return `tracepoint-${config.tracepoint.replace('/', '-')}`;
    case 'raw_tracepoint':
      return `raw_tracepoint-${config.tracepoint}`;
  }
}

/**
 * Removes everything mimd owns for these objects without loading them:
 * links first (unpinning the last reference detaches the program), then
 * every other pin and record. For `mimd purge`.
 */
export function purgeOwned(options: { objects: readonly ObjectConfig[]; pinRoot: string; kernel: KernelPort; state: StateStore; logger: Logger }): void {
  const { kernel, state, logger } = options;
  for (const config of options.objects) {
    const pinDir = path.posix.join(options.pinRoot, config.name);
    const linksDir = path.posix.join(pinDir, 'links');
    for (const pin of kernel.listPins(linksDir)) {
      kernel.unpin(path.posix.join(linksDir, pin.name));
      logger.info({ object: config.name, pin: path.posix.join(linksDir, pin.name) }, 'detached');
    }
    kernel.removePinTree(pinDir);
    state.removeObject(config.name);
    logger.info({ object: config.name, pinDir }, 'removed pins and records');
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
      programId: link.info().programId,
    })),
  });
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
