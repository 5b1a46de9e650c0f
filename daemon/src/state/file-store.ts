// The StateStore on disk: one JSON file per outer map and per slot under
// <stateDir>/<object>/<map>/. Every write goes to a temporary file that is
// renamed over the record, so a crash of mimd at any instant leaves the old
// record or the new one, never a torn one. Outer-map records, and slot
// records when `fsync` is on (config stateFsync), are also fsynced with their
// directory, so a power loss does the same. Slot records are written on every
// change, where a flush would cost more than the swap (see default.yaml).
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import type { OuterMapRecord, SlotRecord, StateStore } from '../domain/state';

const Shape = Type.Object({
  type: Type.String(),
  keySize: Type.Integer({ minimum: 0 }),
  valueSize: Type.Integer({ minimum: 0 }),
  maxEntries: Type.Integer({ minimum: 0 }),
  flags: Type.Array(Type.String()),
});

const OuterRecordSchema = Type.Object({
  outer: Shape,
  innerTemplate: Shape,
  mapId: Type.Integer({ minimum: 0 }),
  createdAt: Type.String(),
});

const Version = Type.Integer({ minimum: 1 });
const MapId = Type.Integer({ minimum: 1 });

const SlotRecordSchema = Type.Object({
  key: Type.String({ pattern: '^([0-9a-f]{2})+$' }),
  lastVersion: Type.Integer({ minimum: 0 }),
  active: Type.Union([Version, Type.Null()]),
  installedMapId: Type.Union([MapId, Type.Null()]),
  history: Type.Array(Version),
  versions: Type.Array(
    Type.Object({
      number: Version,
      mapId: MapId,
      maxEntries: Type.Integer({ minimum: 1 }),
      entryCount: Type.Integer({ minimum: 0 }),
      createdAt: Type.String(),
      activatedAt: Type.Union([Type.String(), Type.Null()]),
      labels: Type.Record(Type.String(), Type.String()),
      digest: Type.Optional(Type.String({ pattern: '^[0-9a-f]{64}$' })),
    }),
  ),
  pending: Type.Union([
    Type.Null(),
    Type.Object({ op: Type.Literal('activate'), version: Version, discardOnAbort: Type.Boolean() }),
    Type.Object({ op: Type.Literal('clear') }),
    Type.Object({ op: Type.Literal('patch') }),
  ]),
});

// Compile-time check that the schemas describe the domain's records.
const _outer: OuterMapRecord = {} as Static<typeof OuterRecordSchema>;
const _slot: SlotRecord = {} as Static<typeof SlotRecordSchema>;
void _outer;
void _slot;

/** A record on disk that is not what mimd writes (edited by hand, or another program's file). */
export class StateFileError extends Error {
  constructor(
    readonly file: string,
    detail: string,
  ) {
    super(`state file ${file}: ${detail}; move it away to let mimd rebuild what it can from the kernel`);
    this.name = 'StateFileError';
  }
}

const OUTER_FILE = 'outer.json';
const SLOTS_DIR = 'slots';

export class FileStateStore implements StateStore {
  private temporaries = 0;

  /** slot directories known to exist: one mkdir per directory, not per write */
  private readonly madeDirs = new Set<string>();

  constructor(
    readonly dir: string,
    private readonly options: { fsync?: boolean } = {},
  ) {}

  readOuter(object: string, map: string): OuterMapRecord | null {
    const dir = this.mapDir(object, map);
    removeTemporaries(dir);
    return this.read(path.join(dir, OUTER_FILE), OuterRecordSchema);
  }

  writeOuter(object: string, map: string, record: OuterMapRecord): void {
    const dir = this.mapDir(object, map);
    fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
    this.writeSync(path.join(dir, OUTER_FILE), record);
  }

  readSlots(object: string, map: string): SlotRecord[] {
    const dir = path.join(this.mapDir(object, map), SLOTS_DIR);
    let names: string[];
    try {
      names = fs.readdirSync(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
    const records: SlotRecord[] = [];
    for (const name of names.sort()) {
      // Temporaries of writes a crash interrupted: the record they were for is whole.
      if (name.includes('.tmp-')) {
        fs.rmSync(path.join(dir, name), { force: true });
        continue;
      }
      if (!name.endsWith('.json')) continue;
      const file = path.join(dir, name);
      const record = this.read(file, SlotRecordSchema);
      if (!record) continue;
      if (`${record.key}.json` !== name) throw new StateFileError(file, `holds the record of slot ${record.key}`);
      records.push(record);
    }
    return records;
  }

  async writeSlot(object: string, map: string, record: SlotRecord): Promise<void> {
    const dir = path.join(this.mapDir(object, map), SLOTS_DIR);
    if (!this.madeDirs.has(dir)) {
      await fs.promises.mkdir(dir, { recursive: true, mode: 0o700 });
      this.madeDirs.add(dir);
    }
    const file = path.join(dir, `${record.key}.json`);
    const temporary = this.temporary(file);
    try {
      await this.writeTemporary(temporary, record);
      await fs.promises.rename(temporary, file);
    } catch (err) {
      // A full disk (ENOSPC) or a failed rename: the record is the old one
      // still, and the half-written temporary must not pile up, one per failure.
      await fs.promises.rm(temporary, { force: true }).catch(() => undefined);
      throw err;
    }
    if (this.options.fsync) await syncDirectory(dir);
  }

  private async writeTemporary(temporary: string, record: SlotRecord): Promise<void> {
    if (!this.options.fsync) {
      // Off the event loop all the same: a rename over an existing record
      // takes a journal handle (about 0.3 ms on the build machines), which
      // under a storm of swaps would hold up every other request.
      await fs.promises.writeFile(temporary, JSON.stringify(record), { mode: 0o600 });
      return;
    }
    const handle = await fs.promises.open(temporary, 'w', 0o600);
    try {
      await handle.writeFile(JSON.stringify(record));
      await handle.sync();
    } finally {
      await handle.close();
    }
  }

  async removeSlot(object: string, map: string, key: string): Promise<void> {
    const dir = path.join(this.mapDir(object, map), SLOTS_DIR);
    await fs.promises.rm(path.join(dir, `${key}.json`), { force: true });
    if (!this.options.fsync) return;
    await syncDirectory(dir).catch(() => undefined);
  }

  removeMap(object: string, map: string): void {
    this.madeDirs.clear();
    fs.rmSync(this.mapDir(object, map), { recursive: true, force: true });
  }

  removeObject(object: string): void {
    this.madeDirs.clear();
    fs.rmSync(path.join(this.dir, object), { recursive: true, force: true });
    try {
      fs.rmdirSync(this.dir);
    } catch {
      // not empty (other objects), or not there: either is fine
    }
  }

  private mapDir(object: string, map: string): string {
    return path.join(this.dir, object, map);
  }

  private temporary(file: string): string {
    this.temporaries += 1;
    return `${file}.tmp-${process.pid}-${this.temporaries}`;
  }

  private writeSync(file: string, record: unknown): void {
    const temporary = this.temporary(file);
    try {
      const fd = fs.openSync(temporary, 'w', 0o600);
      try {
        fs.writeFileSync(fd, JSON.stringify(record));
        fs.fsyncSync(fd);
      } finally {
        fs.closeSync(fd);
      }
      fs.renameSync(temporary, file);
    } catch (err) {
      // As in writeSlot: no temporary is left behind by a failure.
      fs.rmSync(temporary, { force: true });
      throw err;
    }
    const dirFd = fs.openSync(path.dirname(file), 'r');
    try {
      fs.fsyncSync(dirFd);
    } finally {
      fs.closeSync(dirFd);
    }
  }

  private read<S extends TSchema>(file: string, schema: S): Static<S> | null {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new StateFileError(file, `not JSON (${(err as Error).message})`);
    }
    const first = Value.Errors(schema, value).First();
    if (first) throw new StateFileError(file, `${first.path || '/'}: ${first.message}`);
    return value as Static<S>;
  }
}

/** Temporaries of writes a crash interrupted: the record they were for is whole. */
function removeTemporaries(dir: string): void {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return;
  }
  for (const name of names) if (name.includes('.tmp-')) fs.rmSync(path.join(dir, name), { force: true });
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await fs.promises.open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
