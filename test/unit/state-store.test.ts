// FileStateStore on a directory of the test's own: records round-trip, writes
// are atomic (no temporary survives a write, a crash's temporaries are cleaned
// up), files that are not what mimd writes are refused with the file and the
// JSON path named, and only the owner can read what is written.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { FileStateStore, StateFileError } from '../../daemon/src/state/file-store';
import type { OuterMapRecord, SlotRecord } from '../../daemon/src/domain/state';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const OUTER: OuterMapRecord = {
  outer: { type: 'ARRAY_OF_MAPS', keySize: 4, valueSize: 4, maxEntries: 4, flags: [] },
  innerTemplate: { type: 'HASH', keySize: 4, valueSize: 1, maxEntries: 65536, flags: ['NO_PREALLOC'] },
  mapId: 41,
  createdAt: '2026-01-02T03:04:05.678Z',
};

function slot(key: string, overrides: Partial<SlotRecord> = {}): SlotRecord {
  return {
    key,
    lastVersion: 2,
    active: 2,
    installedMapId: 52,
    history: [1, 2],
    versions: [
      { number: 1, mapId: 51, maxEntries: 16, entryCount: 3, createdAt: '2026-01-02T03:04:05.000Z', activatedAt: '2026-01-02T03:04:06.000Z', labels: { owner: 'ops' } },
      { number: 2, mapId: 52, maxEntries: 16, entryCount: 0, createdAt: '2026-01-02T03:05:00.000Z', activatedAt: '2026-01-02T03:05:01.000Z', labels: {} },
    ],
    pending: { op: 'activate', version: 2, discardOnAbort: true },
    ...overrides,
  };
}

/** A store in a directory that does not exist yet, so that the store makes every directory itself. */
function store(t: Test): { state: FileStateStore; dir: string } {
  const dir = path.join(t.testdir(), 'state');
  return { state: new FileStateStore(dir), dir };
}

/** Every file and directory under dir, relative, sorted. */
function tree(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort();
}

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (err) {
    return err;
  }
  throw new Error('expected a throw');
}

t.test('outer and slot records round-trip', async (t) => {
  const { state } = store(t);
  t.equal(state.readOuter('firewall', 'blocklist'), null, 'no record yet');
  t.same(state.readSlots('firewall', 'blocklist'), [], 'no slots yet');

  state.writeOuter('firewall', 'blocklist', OUTER);
  t.same(state.readOuter('firewall', 'blocklist'), OUTER);
  t.equal(state.readOuter('firewall', 'policy'), null, 'records are per map');

  const second = slot('03000000', { active: null, installedMapId: null, pending: null, history: [], versions: [], lastVersion: 0 });
  await state.writeSlot('firewall', 'blocklist', second);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  t.same(state.readSlots('firewall', 'blocklist'), [slot('00000000'), second], 'every slot, in key order');
  t.same(state.readSlots('firewall', 'policy'), [], 'slots are per map');
  t.same(state.readSlots('tools', 'blocklist'), [], 'and per object');

  // A write replaces the record whole.
  const changed = slot('00000000', { lastVersion: 3, active: 3, history: [1, 2, 3], pending: { op: 'clear' } });
  changed.versions.push({ number: 3, mapId: 53, maxEntries: 32, entryCount: 9, createdAt: 'x', activatedAt: null, labels: { a: 'b' } });
  await state.writeSlot('firewall', 'blocklist', changed);
  t.same(state.readSlots('firewall', 'blocklist'), [changed, second]);
  state.writeOuter('firewall', 'blocklist', { ...OUTER, mapId: 77 });
  t.equal(state.readOuter('firewall', 'blocklist')?.mapId, 77);

  // Another store on the same directory (the next run) reads the same.
  const next = new FileStateStore(state.dir);
  t.same(next.readSlots('firewall', 'blocklist'), [changed, second]);
  t.equal(next.readOuter('firewall', 'blocklist')?.mapId, 77);
});

t.test('a write leaves no temporary file behind', async (t) => {
  const { state, dir } = store(t);
  state.writeOuter('firewall', 'blocklist', OUTER);
  state.writeOuter('firewall', 'blocklist', OUTER);
  await Promise.all([state.writeSlot('firewall', 'blocklist', slot('00000000')), state.writeSlot('firewall', 'blocklist', slot('01000000'))]);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  t.same(tree(dir), [
    'firewall',
    path.join('firewall', 'blocklist'),
    path.join('firewall', 'blocklist', 'outer.json'),
    path.join('firewall', 'blocklist', 'slots'),
    path.join('firewall', 'blocklist', 'slots', '00000000.json'),
    path.join('firewall', 'blocklist', 'slots', '01000000.json'),
  ]);
});

// A failure between the temporary and the record (here the rename, refused
// because a directory stands at the record's name; ENOSPC on a full disk in
// test/e2e/state-full.test.ts) left one temporary per failed write.
t.test('a failed write leaves no temporary file behind, and the next one succeeds', async (t) => {
  for (const fsync of [false, true]) {
    const dir = path.join(t.testdir(), `state-${fsync}`);
    const state = new FileStateStore(dir, { fsync });
    await state.writeSlot('firewall', 'blocklist', slot('01000000'));
    const slots = path.join(dir, 'firewall', 'blocklist', 'slots');
    const blocker = path.join(slots, '00000000.json', 'in-the-way');
    fs.mkdirSync(blocker, { recursive: true });
    for (let i = 0; i < 5; i++) await t.rejects(state.writeSlot('firewall', 'blocklist', slot('00000000')), { code: /^E/ }, `fsync ${fsync}: write ${i} fails`);
    t.same(fs.readdirSync(slots).sort(), ['00000000.json', '01000000.json'], `fsync ${fsync}: no temporary left`);

    const outer = path.join(dir, 'firewall', 'policy', 'outer.json');
    fs.mkdirSync(path.join(outer, 'in-the-way'), { recursive: true });
    t.throws(() => state.writeOuter('firewall', 'policy', OUTER), { code: /^E/ }, `fsync ${fsync}: the outer record fails too`);
    t.same(fs.readdirSync(path.dirname(outer)), ['outer.json'], `fsync ${fsync}: and leaves no temporary`);

    fs.rmSync(path.join(slots, '00000000.json'), { recursive: true });
    fs.rmSync(outer, { recursive: true });
    await state.writeSlot('firewall', 'blocklist', slot('00000000'));
    state.writeOuter('firewall', 'policy', OUTER);
    t.same(state.readSlots('firewall', 'blocklist'), [slot('00000000'), slot('01000000')], `fsync ${fsync}: the next write succeeds`);
    t.same(state.readOuter('firewall', 'policy'), OUTER);
  }
});

t.test("a crash's temporaries are removed by readSlots and do not hide the record", async (t) => {
  const { state, dir } = store(t);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  const slots = path.join(dir, 'firewall', 'blocklist', 'slots');
  // A rewrite of 00000000 interrupted before its rename, and a first write of 01000000 interrupted the same way.
  fs.writeFileSync(path.join(slots, '00000000.json.tmp-4242-7'), '{"key":"00000000","lastVer');
  fs.writeFileSync(path.join(slots, '01000000.json.tmp-4242-8'), JSON.stringify(slot('01000000')));
  t.same(state.readSlots('firewall', 'blocklist'), [slot('00000000')], 'the whole record, and no record for a slot never renamed into place');
  t.same(fs.readdirSync(slots), ['00000000.json'], 'the temporaries are gone');
});

t.test('a file that is not JSON names the file', async (t) => {
  const { state, dir } = store(t);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  const file = path.join(dir, 'firewall', 'blocklist', 'slots', '00000000.json');
  fs.writeFileSync(file, '{"key": "00000000", ');
  const err = thrown(() => state.readSlots('firewall', 'blocklist'));
  t.type(err, StateFileError);
  t.equal((err as StateFileError).file, file);
  t.match((err as Error).message, new RegExp(`^state file ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: not JSON \\(.+\\); move it away`));

  state.writeOuter('firewall', 'policy', OUTER);
  const outer = path.join(dir, 'firewall', 'policy', 'outer.json');
  fs.writeFileSync(outer, '');
  const outerErr = thrown(() => state.readOuter('firewall', 'policy'));
  t.type(outerErr, StateFileError);
  t.equal((outerErr as StateFileError).file, outer);
  t.match((outerErr as Error).message, /: not JSON /);
});

t.test('a record that is not what mimd writes names the file and the JSON path', async (t) => {
  const { state, dir } = store(t);
  const slots = path.join(dir, 'firewall', 'blocklist', 'slots');
  const outerFile = path.join(dir, 'firewall', 'blocklist', 'outer.json');
  const cases: { name: string; file: string; content: unknown; path: string; read: () => unknown }[] = [
    {
      name: 'a negative lastVersion',
      file: path.join(slots, '00000000.json'),
      content: slot('00000000', { lastVersion: -1 }),
      path: '/lastVersion',
      read: () => state.readSlots('firewall', 'blocklist'),
    },
    {
      name: 'a version whose map id is 0',
      file: path.join(slots, '00000000.json'),
      content: (() => {
        const record = slot('00000000');
        record.versions[1]!.mapId = 0;
        return record;
      })(),
      path: '/versions/1/mapId',
      read: () => state.readSlots('firewall', 'blocklist'),
    },
    {
      name: 'a key that is not hex',
      file: path.join(slots, '00000000.json'),
      content: slot('00000000', { key: 'zz' }),
      path: '/key',
      read: () => state.readSlots('firewall', 'blocklist'),
    },
    {
      name: 'a pending change mimd does not know',
      file: path.join(slots, '00000000.json'),
      content: { ...slot('00000000'), pending: { op: 'rename' } },
      path: '/pending',
      read: () => state.readSlots('firewall', 'blocklist'),
    },
    {
      name: 'a label that is not a string',
      file: path.join(slots, '00000000.json'),
      content: (() => {
        const record = slot('00000000') as unknown as { versions: { labels: Record<string, unknown> }[] };
        record.versions[0]!.labels.owner = 7;
        return record;
      })(),
      path: '/versions/0/labels/owner',
      read: () => state.readSlots('firewall', 'blocklist'),
    },
    {
      name: 'an inner template key size that is a string',
      file: outerFile,
      content: { ...OUTER, innerTemplate: { ...OUTER.innerTemplate, keySize: '4' } },
      path: '/innerTemplate/keySize',
      read: () => state.readOuter('firewall', 'blocklist'),
    },
    {
      name: 'an outer record without its map id',
      file: outerFile,
      content: { outer: OUTER.outer, innerTemplate: OUTER.innerTemplate, createdAt: OUTER.createdAt },
      path: '/mapId',
      read: () => state.readOuter('firewall', 'blocklist'),
    },
  ];
  for (const c of cases) {
    fs.rmSync(path.join(dir, 'firewall'), { recursive: true, force: true });
    fs.mkdirSync(path.dirname(c.file), { recursive: true });
    fs.writeFileSync(c.file, JSON.stringify(c.content));
    const err = thrown(c.read);
    t.type(err, StateFileError, c.name);
    t.equal((err as StateFileError).file, c.file, `${c.name}: the file`);
    t.ok((err as Error).message.startsWith(`state file ${c.file}: ${c.path}: `), `${c.name}: the JSON path ${c.path} (${(err as Error).message})`);
  }
});

t.test("a record under another slot's file name is refused", async (t) => {
  const { state, dir } = store(t);
  await state.writeSlot('firewall', 'blocklist', slot('01000000'));
  const slots = path.join(dir, 'firewall', 'blocklist', 'slots');
  fs.renameSync(path.join(slots, '01000000.json'), path.join(slots, '00000000.json'));
  const err = thrown(() => state.readSlots('firewall', 'blocklist'));
  t.type(err, StateFileError);
  t.equal((err as StateFileError).file, path.join(slots, '00000000.json'));
  t.match((err as Error).message, /: holds the record of slot 01000000;/);
});

t.test('files that are not records are left alone', async (t) => {
  const { state, dir } = store(t);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  const slots = path.join(dir, 'firewall', 'blocklist', 'slots');
  fs.writeFileSync(path.join(slots, 'README'), 'notes');
  t.same(state.readSlots('firewall', 'blocklist'), [slot('00000000')]);
  t.ok(fs.existsSync(path.join(slots, 'README')));
});

t.test('removeSlot, removeMap and removeObject remove only what they name', async (t) => {
  const { state, dir } = store(t);
  state.writeOuter('firewall', 'blocklist', OUTER);
  state.writeOuter('firewall', 'policy', { ...OUTER, mapId: 42 });
  state.writeOuter('tools', 'blocklist', { ...OUTER, mapId: 43 });
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  await state.writeSlot('firewall', 'blocklist', slot('01000000'));
  await state.writeSlot('firewall', 'policy', slot('01000000'));

  await state.removeSlot('firewall', 'blocklist', '00000000');
  t.same(state.readSlots('firewall', 'blocklist').map((r) => r.key), ['01000000']);
  t.same(state.readSlots('firewall', 'policy').map((r) => r.key), ['01000000'], 'the same key of another map stays');
  await t.resolves(state.removeSlot('firewall', 'blocklist', '00000000'), 'removing a slot twice is fine');
  await t.resolves(state.removeSlot('firewall', 'nomap', '00000000'), 'and a slot of a map with no records');

  state.removeMap('firewall', 'blocklist');
  t.equal(state.readOuter('firewall', 'blocklist'), null);
  t.same(state.readSlots('firewall', 'blocklist'), []);
  t.notOk(fs.existsSync(path.join(dir, 'firewall', 'blocklist')), 'its directory is gone');
  t.equal(state.readOuter('firewall', 'policy')?.mapId, 42, 'the other map of the object stays');
  t.same(state.readSlots('firewall', 'policy').map((r) => r.key), ['01000000']);
  t.doesNotThrow(() => state.removeMap('firewall', 'blocklist'), 'removing a map twice is fine');

  state.removeObject('firewall');
  t.equal(state.readOuter('firewall', 'policy'), null);
  t.notOk(fs.existsSync(path.join(dir, 'firewall')));
  t.equal(state.readOuter('tools', 'blocklist')?.mapId, 43, 'another object stays');
  t.ok(fs.existsSync(dir), 'the state directory stays while it holds something');

  state.removeObject('tools');
  t.notOk(fs.existsSync(dir), 'with the last object gone the state directory is removed');
  t.doesNotThrow(() => state.removeObject('tools'), 'removing an object twice is fine');
});

t.test('records are readable by their owner only: files 0600, directories 0700', async (t) => {
  const { state, dir } = store(t);
  state.writeOuter('firewall', 'blocklist', OUTER);
  await state.writeSlot('firewall', 'blocklist', slot('00000000'));
  await state.writeSlot('firewall', 'policy', slot('00000000'));
  const mode = (p: string) => (fs.statSync(p).mode & 0o777).toString(8);
  for (const d of ['', 'firewall', 'firewall/blocklist', 'firewall/blocklist/slots', 'firewall/policy', 'firewall/policy/slots']) {
    t.equal(mode(path.join(dir, d)), '700', `directory ${d || '(the state directory)'}`);
  }
  for (const f of ['firewall/blocklist/outer.json', 'firewall/blocklist/slots/00000000.json', 'firewall/policy/slots/00000000.json']) {
    t.equal(mode(path.join(dir, f)), '600', f);
  }

  // A rewrite keeps it so, even when the old file was opened up by hand.
  fs.chmodSync(path.join(dir, 'firewall/blocklist/outer.json'), 0o644);
  state.writeOuter('firewall', 'blocklist', OUTER);
  t.equal(mode(path.join(dir, 'firewall/blocklist/outer.json')), '600', 'outer.json after a rewrite');
});

t.test('with and without fsync: slot records round-trip, and a removed map directory is made again', async (t) => {
  for (const fsync of [false, true]) {
    const dir = path.join(t.testdir(), `state-${fsync}`);
    const state = new FileStateStore(dir, { fsync });
    await state.writeSlot('firewall', 'blocklist', slot('00000000'));
    t.same(state.readSlots('firewall', 'blocklist'), [slot('00000000')], `fsync ${fsync}: written`);
    state.removeMap('firewall', 'blocklist');
    t.same(state.readSlots('firewall', 'blocklist'), [], `fsync ${fsync}: removed`);
    await state.writeSlot('firewall', 'blocklist', slot('01000000'));
    t.same(state.readSlots('firewall', 'blocklist'), [slot('01000000')], `fsync ${fsync}: the directory is made again after removeMap`);
    state.removeObject('firewall');
    await state.writeSlot('firewall', 'blocklist', slot('02000000'));
    t.same(state.readSlots('firewall', 'blocklist'), [slot('02000000')], `fsync ${fsync}: and after removeObject`);
    t.equal(fs.statSync(path.join(dir, 'firewall', 'blocklist', 'slots', '02000000.json')).mode & 0o777, 0o600, `fsync ${fsync}: a record is 0600`);
  }
});
