// Crash survival: mimd is killed with SIGKILL again and again (paused at each
// of its crash points in staging, swapping, activate, rollback and clear, and
// at random moments while idle or in the middle of a burst of requests) and
// restarted on the same pinRoot and stateDir each time. A model of what every
// slot should hold runs beside it. After every kill, while mimd is down, the
// attached program must still filter the namespace's traffic as the model
// says; after every restart the kernel (bpftool, bpffs) and the API must both
// agree with the model, and nothing mimd let go of may be left pinned or
// alive in the kernel.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { randomInt } from 'node:crypto';
import { netnsLink, netnsSender, peerSource, pinDir, stateDir, udpSink } from '../helpers/sandbox';
import {
  bpftoolEach,
  emptyPinDirs,
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  kernelProgram,
  pinLeaves,
  probeVerdicts,
  processBpfIds,
  skipUnlessRoot,
  sleep,
  startDaemon,
  stillInKernel,
  u32Hex,
  withApi,
  withTimeout,
  xdpProgram,
  type Api,
  type RunningDaemon,
  type TestLike,
  type TrafficProbe,
  type Verdict,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();
// 26 kills and restarts: about a minute on an idle machine, over two on a
// busy two-CPU one; the suite's 120 s per file is too tight for that.
t.setTimeout(300_000);

/** Versions kept besides the active one: small, so that swaps prune often. */
const RETAIN = 2;

/** Points after which a restart finds the state as before the interrupted request. */
const BEFORE = new Set(['build:created', 'build:filled', 'build:pinned', 'swap:intent', 'clear:intent']);

type MapName = 'blocklist' | 'policy';
type Labels = Record<string, string>;
interface Entry {
  key: string;
  value: unknown;
}

interface VersionModel {
  /** null: the request completed while mimd was being killed, so no client saw its number yet */
  number: number | null;
  entries: Entry[];
  labels: Labels;
  /** ever made active: retained rather than staged when not active */
  activated: boolean;
  /** as the API first reported it; must never change */
  createdAt?: string;
}

interface SlotModel {
  map: MapName;
  slot: number;
  versions: VersionModel[];
  active: VersionModel | null;
  /** the highest version number a client has seen */
  last: number;
  /** numbers possibly taken by interrupted builds: the next version is last+1 .. last+1+burnt */
  burnt: number;
}

type SlotRef = readonly [MapName, number];
type Pick = (slot: SlotModel) => number;
type Op =
  | { kind: 'put' | 'stage'; ref: SlotRef; entries: Entry[]; labels: Labels }
  | { kind: 'activate' | 'rollback'; ref: SlotRef; pick: Pick; why: string }
  | { kind: 'clear'; ref: SlotRef };
type Step = { kind: 'pause'; point: string; op: Op } | { kind: 'idle'; ops: Op[] } | { kind: 'burst'; ops: Op[] };

const slotId = ([map, slot]: SlotRef): string => `${map}/${slot}`;
const byNumberDesc = (a: VersionModel, b: VersionModel): number => (b.number ?? Infinity) - (a.number ?? Infinity);
const stateOf = (s: SlotModel, v: VersionModel): string => (v === s.active ? 'active' : v.activated ? 'retained' : 'staged');

function cloneSlot(s: SlotModel): SlotModel {
  const versions = s.versions.map((v) => ({ ...v, entries: [...v.entries], labels: { ...v.labels } }));
  const active = s.active === null ? null : (versions[s.versions.indexOf(s.active)] ?? null);
  return { ...s, versions, active };
}

/** The slot's rules, as mimd documents them: when a version is made, the active version and the RETAIN newest others are kept. */
function prune(s: SlotModel): void {
  const others = s.versions.filter((v) => v !== s.active).sort(byNumberDesc);
  const dropped = new Set(others.slice(RETAIN));
  s.versions = s.versions.filter((v) => !dropped.has(v));
}

/** Applies a completed request to a slot; `number` is the version it reported, if it did. */
function apply(s: SlotModel, op: Op, number: number | null): void {
  switch (op.kind) {
    case 'put':
    case 'stage': {
      const version: VersionModel = { number, entries: op.entries, labels: op.labels, activated: op.kind === 'put' };
      s.versions.push(version);
      if (op.kind === 'put') s.active = version;
      if (number !== null) (s.last = number), (s.burnt = 0);
      break;
    }
    case 'activate':
    case 'rollback': {
      const target = s.versions.find((v) => v.number === op.pick(s));
      if (!target) throw new Error(`model: ${slotId(op.ref)} has no version ${op.pick(s)}`);
      target.activated = true;
      s.active = target;
      break;
    }
    case 'clear':
      s.active = null;
      break;
  }
  // Only a new version lets others go: not an activation, a rollback or a clear.
  if (op.kind === 'put' || op.kind === 'stage') prune(s);
}

/** Applies an interrupted request that did not happen: a build may have used up a number. */
function notApplied(s: SlotModel, op: Op): void {
  if (op.kind === 'put' || op.kind === 'stage') s.burnt += 1;
}

function request(op: Op, s: SlotModel): { method: string; url: string; body?: unknown } {
  const base = `/v1/maps/firewall/${op.ref[0]}/slots/${op.ref[1]}`;
  switch (op.kind) {
    case 'put':
      return { method: 'PUT', url: base, body: { entries: op.entries, labels: op.labels } };
    case 'stage':
      return { method: 'POST', url: `${base}/versions`, body: { entries: op.entries, labels: op.labels } };
    case 'activate':
      return { method: 'POST', url: `${base}/versions/${op.pick(s)}/activate` };
    case 'rollback':
      return { method: 'POST', url: `${base}/rollback`, body: { version: op.pick(s) } };
    case 'clear':
      return { method: 'DELETE', url: base };
  }
}

function describeOp(op: Op): string {
  switch (op.kind) {
    case 'put':
    case 'stage':
      return `${op.kind} ${slotId(op.ref)} [${op.entries.map((e) => e.key).join(' ')}]`;
    case 'clear':
      return `clear ${slotId(op.ref)}`;
    default:
      return `${op.kind} ${slotId(op.ref)} to the ${op.why}`;
  }
}

const describeSlot = (s: SlotModel): string =>
  `active ${s.active?.number ?? (s.active ? '?' : 'none')}; ` +
  [...s.versions]
    .sort(byNumberDesc)
    .map((v) => `${v.number ?? '?'}:${stateOf(s, v)}:${JSON.stringify(v.labels)}:${v.entries.length}`)
    .join(' ');

interface ApiVersion {
  version: number;
  state: string;
  labels: Labels;
  entryCount: number;
  mapId: number;
  createdAt: string;
  pinPath: string;
}
interface ApiSlot {
  activeVersion: number | null;
  kernelMapId: number | null;
  installedMapId: number | null;
  drift: boolean;
  versions: ApiVersion[];
}

/**
 * Whether the API's view of a slot (null: 404) is the model's, taking the
 * numbers the model could not know from it (checked to be in range). Returns
 * the difference, or null and then has filled those numbers in.
 */
function matchSlot(s: SlotModel, got: ApiSlot | null): string | null {
  if (s.versions.length === 0) return got === null ? null : `expected no such slot (404), got ${JSON.stringify(got)}`;
  if (got === null) return `expected ${describeSlot(s)}, got 404`;
  const mine = [...s.versions].sort(byNumberDesc);
  const shown = got.versions.map((v) => `${v.version}:${v.state}:${JSON.stringify(v.labels)}:${v.entryCount}`).join(' ');
  const differs = `expected ${describeSlot(s)}, got active ${got.activeVersion ?? 'none'}; ${shown}`;
  if (got.versions.length !== mine.length) return differs;
  const numbers = new Map<VersionModel, number>();
  for (const [i, v] of mine.entries()) {
    const g = got.versions[i]!;
    if (v.number === null) {
      if (g.version < s.last + 1 || g.version > s.last + 1 + s.burnt) return `${differs} (version ${g.version} out of ${s.last + 1}..${s.last + 1 + s.burnt})`;
      numbers.set(v, g.version);
    } else if (v.number !== g.version) return differs;
    if (stateOf(s, v) !== g.state || JSON.stringify(v.labels) !== JSON.stringify(g.labels) || v.entries.length !== g.entryCount) return differs;
    if (v.createdAt !== undefined && v.createdAt !== g.createdAt) return `${differs} (version ${g.version} was created at ${v.createdAt}, now ${g.createdAt})`;
  }
  const activeNumber = s.active === null ? null : (s.active.number ?? numbers.get(s.active));
  if (activeNumber !== got.activeVersion) return differs;
  if (got.drift) return `${differs} (drift: kernel ${got.kernelMapId}, installed ${got.installedMapId})`;
  for (const [v, n] of numbers) {
    v.number = n;
    s.last = Math.max(s.last, n);
    s.burnt = 0;
  }
  for (const [i, v] of mine.entries()) v.createdAt = got.versions[i]!.createdAt;
  return null;
}

/** LPM: the verdict of the longest prefix that holds `address`, if any. */
function lpm(entries: Entry[], address: string): string | null {
  const bits = (a: string): number => a.split('.').reduce((n, o) => n * 256 + Number(o), 0);
  let best: { len: number; verdict: string } | null = null;
  for (const { key, value } of entries) {
    const [net = '', lenText = '32'] = key.split('/');
    const len = Number(lenText);
    const mask = len === 0 ? 0 : 2 ** 32 - 2 ** (32 - len);
    const inside = Math.floor(bits(net) / 2 ** (32 - len)) === Math.floor(bits(address) / 2 ** (32 - len)) || mask === 0;
    if (inside && (!best || len > best.len)) best = { len, verdict: (value as { verdict: string }).verdict };
  }
  return best?.verdict ?? null;
}

/** The kernel's bytes of a version's entries: key hex -> value hex. */
function entryBytes(map: MapName, entries: Entry[]): Record<string, string> {
  return Object.fromEntries(
    entries.map(({ key, value }) =>
      map === 'blocklist'
        ? [firewallBytes.source(key), '01']
        : [firewallBytes.prefix(key), firewallBytes.verdict((value as { verdict: 'pass' | 'drop' }).verdict)],
    ),
  );
}

const bytesHex = (bytes: string[]): string => bytes.map((b) => b.replace(/^0x/, '').padStart(2, '0')).join('');

t.test('SIGKILL at every crash point, while idle and in bursts: restarts find a whole, consistent state', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const state = stateDir(t);
  const link = netnsLink(t, randomInt(16, 64));
  const P = link.peerAddress;
  const S = peerSource(link);
  const sink = await udpSink(t, link.hostAddress);
  const probe: TrafficProbe = { ifname: link.host, sender: await netnsSender(t, link.netns, link.hostAddress, sink.port), sink };
  const config = firewallConfig(pinRoot, link.host, { stateDir: state, onStop: 'keep', retain: RETAIN, logLevel: 'info' });
  const objectPins = path.join(pinRoot, 'firewall');
  const IF = link.hostIfindex;
  t.comment(`pinRoot ${pinRoot}, stateDir ${state}, ${link.host} <-> ${link.netns}: sources ${P} and ${S}`);

  // ---- the model ---------------------------------------------------------
  const slots = new Map<string, SlotModel>();
  const slotOf = (ref: SlotRef): SlotModel => {
    let s = slots.get(slotId(ref));
    if (!s) slots.set(slotId(ref), (s = { map: ref[0], slot: ref[1], versions: [], active: null, last: 0, burnt: 0 }));
    return s;
  };
  /** slots a killed burst left as either of two states, until the API says which */
  const undecided = new Map<string, [SlotModel, SlotModel]>();

  const expectedVerdicts = (): Record<string, Verdict> => {
    const verdict = (source: string): Verdict => {
      for (const s of slots.values()) if (s.map === 'blocklist' && s.active?.entries.some((e) => e.key === source)) return 'blocklist';
      const trie = slotOf(['policy', IF]).active;
      return trie && lpm(trie.entries, source) === 'drop' ? 'policy' : 'pass';
    };
    return { [P]: verdict(P), [S]: verdict(S) };
  };

  // ---- what must be gone -----------------------------------------------
  const seen = { maps: new Set<number>(), progs: new Set<number>(), links: new Set<number>() };
  let linkId: number | null = null;
  const outerIds: Partial<Record<MapName, number>> = {};

  const pinOf = (s: SlotModel, v: VersionModel): string => path.join(objectPins, 'slots', s.map, u32Hex(s.slot), String(v.number));

  /** After a start: the API, bpffs and the kernel against the model; nothing left that should be gone. */
  async function verify(t: tap.Test, api: Api): Promise<void> {
    // The API first: it alone can say which way an interrupted burst went,
    // and which numbers versions nobody saw got.
    const gets = new Map<string, ApiSlot | null>();
    const known = new Set([...slots.keys(), ...undecided.keys()]);
    for (const id of known) {
      const [map, slot] = id.split('/') as [MapName, string];
      const res = await api('GET', `/v1/maps/firewall/${map}/slots/${slot}`);
      if (res.status !== 200 && res.status !== 404) t.fail(`GET ${id}: ${res.status} ${JSON.stringify(res.body)}`);
      gets.set(id, res.status === 200 ? (res.body as ApiSlot) : null);
    }
    for (const [id, candidates] of undecided) {
      const fits = candidates.find((c) => matchSlot(cloneSlot(c), gets.get(id) ?? null) === null);
      if (!fits) {
        t.fail(`${id} is neither as before nor as after the interrupted request`, {
          before: describeSlot(candidates[0]),
          after: describeSlot(candidates[1]),
          got: gets.get(id),
        });
        continue;
      }
      slots.set(id, fits);
      t.pass(`${id}: as ${fits === candidates[0] ? 'before' : 'after'} the interrupted request`);
    }
    undecided.clear();
    const diffs = [...slots].flatMap(([id, s]) => {
      const diff = matchSlot(s, gets.get(id) ?? null);
      return diff === null ? [] : [`${id}: ${diff}`];
    });
    t.same(diffs, [], 'the API reports the versions (numbers, states), labels and active version of the model, without drift');
    for (const map of ['blocklist', 'policy'] as const) {
      const res = await api('GET', `/v1/maps/firewall/${map}/slots`);
      const listed = (res.body.slots as { slot: number; drift: boolean; activeVersion: number | null }[]) ?? [];
      const want = [...slots.values()].filter((s) => s.map === map && s.versions.length > 0).map((s) => [s.slot, s.active?.number ?? null, false]);
      const sortSlots = (a: unknown[], b: unknown[]): number => (a[0] as number) - (b[0] as number);
      t.same(listed.map((l) => [l.slot, l.activeVersion, l.drift]).sort(sortSlots), want.sort(sortSlots), `GET ${map}/slots lists the model's slots, no drift`);
    }

    // bpffs: exactly the outer maps, the link, and the versions kept.
    const links = fs.existsSync(path.join(objectPins, 'links')) ? fs.readdirSync(path.join(objectPins, 'links')) : [];
    t.equal(links.length, 1, 'one pinned link');
    const linkPin = path.join(objectPins, 'links', links[0] ?? '(none)');
    const wantPins = [
      'firewall/maps/blocklist',
      'firewall/maps/policy',
      `firewall/links/${links[0] ?? '(none)'}`,
      ...[...slots.values()].flatMap((s) => s.versions.map((v) => path.relative(pinRoot, pinOf(s, v)))),
    ].sort();
    t.same(pinLeaves(pinRoot), wantPins, 'the pin tree: outer maps, the link, the versions kept, nothing else');
    t.same(
      emptyPinDirs(pinRoot).filter((d) => d.split('/').length >= 4),
      [],
      'no empty slot directory left behind',
    );

    // The kernel: bpftool reads every pinned version, both outer maps and the link.
    const versions = [...slots.values()].flatMap((s) => s.versions.filter((v) => fs.existsSync(pinOf(s, v))).map((v) => ({ s, v })));
    const outputs = bpftoolEach([
      ...versions.flatMap(({ s, v }) => [
        ['map', 'show', 'pinned', pinOf(s, v)],
        ['map', 'dump', 'pinned', pinOf(s, v)],
      ]),
      ['map', 'show', 'pinned', path.join(objectPins, 'maps', 'blocklist')],
      ['map', 'dump', 'pinned', path.join(objectPins, 'maps', 'blocklist')],
      ['map', 'show', 'pinned', path.join(objectPins, 'maps', 'policy')],
      ['map', 'dump', 'pinned', path.join(objectPins, 'maps', 'policy')],
      ['link', 'show', 'pinned', linkPin],
    ]);
    const versionIds = new Map<VersionModel, number>();
    let contentOk = true;
    versions.forEach(({ s, v }, i) => {
      const info = outputs[2 * i] as { id: number };
      const dump = (outputs[2 * i + 1] as { key: string[]; value: string[] }[] | null) ?? [];
      versionIds.set(v, info.id);
      seen.maps.add(info.id);
      const got = Object.fromEntries(dump.map((e) => [bytesHex(e.key), bytesHex(e.value)]));
      if (JSON.stringify(Object.entries(got).sort()) !== JSON.stringify(Object.entries(entryBytes(s.map, v.entries)).sort())) {
        contentOk = false;
        t.fail(`${s.map}/${s.slot} version ${v.number}: the kernel's entries differ`, { found: got, wanted: entryBytes(s.map, v.entries) });
      }
      const apiVersion = gets.get(`${s.map}/${s.slot}`)?.versions.find((a) => a.version === v.number);
      if (apiVersion?.mapId !== info.id) t.fail(`${s.map}/${s.slot} version ${v.number}: the API says map ${apiVersion?.mapId}, the pin is map ${info.id}`);
      if (apiVersion?.pinPath !== pinOf(s, v)) t.fail(`${s.map}/${s.slot} version ${v.number}: pinPath ${apiVersion?.pinPath}`);
    });
    t.ok(contentOk, `every version kept (${versions.length}) holds exactly its entries in the kernel`);
    const base = versions.length * 2;
    for (const [k, map] of (['blocklist', 'policy'] as const).entries()) {
      const info = outputs[base + 2 * k] as { id: number };
      const dump = (outputs[base + 2 * k + 1] as { key: string[]; value: string[] }[] | null) ?? [];
      outerIds[map] ??= info.id;
      t.equal(info.id, outerIds[map], `${map}: the same outer map as at the first start`);
      const inSlots = Object.fromEntries(dump.map((e) => [bytesHex(e.key), Buffer.from(bytesHex(e.value), 'hex').readUInt32LE(0)]));
      const wanted = Object.fromEntries(
        [...slots.values()].filter((s) => s.map === map && s.active).map((s) => [u32Hex(s.slot), versionIds.get(s.active!)]),
      );
      t.same(inSlots, wanted, `${map}: every slot holds the map of its active version, and no other slot is filled`);
    }
    const pinnedLink = outputs[base + 4] as { id: number; prog_id: number };
    linkId ??= pinnedLink.id;
    t.equal(pinnedLink.id, linkId, 'the same link as at the first start');
    const prog = xdpProgram(link.host);
    t.match(prog, { name: 'xdp_firewall', mode: 2 }, 'xdp_firewall attached in generic mode');
    t.equal(pinnedLink.prog_id, prog?.id, 'the pinned link runs the program on the interface');

    // Nothing mimd let go of is still alive.
    const alive = new Set([...Object.values(outerIds), ...versionIds.values(), ...(kernelProgram(prog?.id ?? -1)?.map_ids ?? [])]);
    t.same(
      await stillInKernel({
        map: [...seen.maps].filter((id) => !alive.has(id)),
        prog: [...seen.progs].filter((id) => id !== prog?.id),
        link: [...seen.links].filter((id) => id !== linkId),
      }),
      {},
      'nothing mimd let go of is left in the kernel: no map but the outer maps, the versions kept and the program\'s; no program but the attached one; no link but the pinned one',
    );

    t.same(await probeVerdicts(probe, expectedVerdicts()), [], `traffic filtered as the active versions say: ${JSON.stringify(expectedVerdicts())}`);
  }

  /** Starts mimd, pausing at `point` if given; fails if it pauses before it started. */
  async function boot(t: tap.Test, point?: string): Promise<RunningDaemon> {
    const daemon = startDaemon(t, config, { env: point ? { MIMD_PAUSE_AT: point } : {}, logTail: 15 });
    const paused = daemon.waitForLog('paused at crash point', 60_000).then((line) => {
      throw new Error(`mimd paused at ${String(line.point)} while starting, before "started"`);
    });
    paused.catch(() => {});
    const started = await Promise.race([daemon.waitForLog('started'), paused]);
    return withApi(daemon, started);
  }

  /** SIGKILL, after noting what the process held. */
  async function kill(t: tap.Test, daemon: RunningDaemon): Promise<void> {
    const held = processBpfIds(daemon.child.pid!);
    held.maps.forEach((id) => seen.maps.add(id));
    held.progs.forEach((id) => seen.progs.add(id));
    held.links.forEach((id) => seen.links.add(id));
    daemon.child.kill('SIGKILL');
    t.match(await daemon.exited, { signal: 'SIGKILL' }, 'killed');
  }

  /** While mimd is down: the program is still attached and filters as the kernel's slots say. */
  async function whileDown(t: tap.Test): Promise<void> {
    t.match(xdpProgram(link.host), { name: 'xdp_firewall' }, 'still attached while mimd is down');
    t.same(await probeVerdicts(probe, expectedVerdicts()), [], `while mimd is down, traffic filtered as before: ${JSON.stringify(expectedVerdicts())}`);
  }

  async function perform(t: tap.Test, api: Api, op: Op): Promise<void> {
    const s = slotOf(op.ref);
    const { method, url, body } = request(op, s);
    const res = await api(method, url, body);
    if (res.status !== 200 && res.status !== 201) {
      t.fail(`${describeOp(op)}: ${method} ${url} answered ${res.status}`, { body: res.body });
      return;
    }
    const number = op.kind === 'put' || op.kind === 'stage' ? (res.body.version as number) : null;
    if (number !== null && (number < s.last + 1 || number > s.last + 1 + s.burnt)) {
      t.fail(`${describeOp(op)}: version ${number}, expected ${s.last + 1}..${s.last + 1 + s.burnt}`);
    }
    apply(s, op, number);
  }

  // ---- the scenario ------------------------------------------------------
  const B0 = ['blocklist', 0] as const;
  const B1 = ['blocklist', 1] as const;
  const B2 = ['blocklist', 2] as const;
  const B3 = ['blocklist', 3] as const;
  const POL = ['policy', IF] as const;
  const POL2 = ['policy', IF + 1000] as const;
  const X1 = '203.0.113.1';
  const X2 = '203.0.113.2';
  const X3 = '203.0.113.3';
  const bl = (...sources: string[]): Entry[] => sources.map((key) => ({ key, value: 1 }));
  const pol = (...rules: [string, 'pass' | 'drop'][]): Entry[] => rules.map(([key, verdict]) => ({ key, value: { verdict } }));
  let step = 0;
  const labels = (): Labels => ({ step: String(step), owner: 'crash-test' });
  const put = (ref: SlotRef, entries: Entry[]): Op => ({ kind: 'put', ref, entries, labels: labels() });
  const stage = (ref: SlotRef, entries: Entry[]): Op => ({ kind: 'stage', ref, entries, labels: labels() });
  const clear = (ref: SlotRef): Op => ({ kind: 'clear', ref });
  const numbers = (s: SlotModel, which: (v: VersionModel) => boolean): number[] =>
    s.versions.filter(which).map((v) => v.number!).sort((a, b) => a - b);
  const newestStaged: Pick = (s) => numbers(s, (v) => stateOf(s, v) === 'staged').at(-1)!;
  const oldestOther: Pick = (s) => numbers(s, (v) => v !== s.active)[0]!;
  const newestOther: Pick = (s) => numbers(s, (v) => v !== s.active).at(-1)!;
  const activate = (ref: SlotRef): Op => ({ kind: 'activate', ref, pick: newestStaged, why: 'newest staged version' });
  const rollback = (ref: SlotRef, pick: Pick, why: string): Op => ({ kind: 'rollback', ref, pick, why });
  const pause = (point: string, op: Op): Step => ({ kind: 'pause', point, op });

  // After a kill at swap:applied, swap:recorded or clear:applied the restart
  // finishes the change; the next step pauses at a build point (or none) so
  // that finishing it could never be mistaken for the next pause.
  const steps: (() => Step)[] = [
    () => ({
      kind: 'idle',
      ops: [put(B0, bl(P)), put(B0, bl(X1)), put(B0, bl(P, X2)), put(POL, pol([`${S}/32`, 'drop'])), stage(B1, bl(S)), put(POL2, pol(['10.0.0.0/8', 'drop']))],
    }),
    () => pause('build:created', put(B0, bl())), // would unblock P
    () => pause('build:filled', put(B0, bl())),
    () => pause('build:pinned', put(B2, bl(P))), // a slot mimd has never filled
    () => pause('swap:intent', put(B0, bl())),
    () => pause('swap:applied', put(B0, bl())), // unblocks P; B0's oldest version goes
    () => pause('build:filled', stage(B2, bl(P))),
    () => pause('build:pinned', stage(B3, bl(S))), // a slot mimd has never filled
    () => pause('swap:recorded', put(B0, bl(X3))), // again one beyond retention
    () => ({ kind: 'idle', ops: [stage(B2, bl(P)), stage(B3, bl(S, X3)), put(POL2, pol(['10.0.0.0/8', 'pass']))] }),
    () => pause('swap:intent', activate(B1)), // would blocklist S
    () => pause('swap:applied', activate(B1)), // blocklists S
    () => pause('build:created', put(POL, pol([`${S}/32`, 'pass']))),
    () => pause('swap:recorded', activate(B2)), // blocklists P
    () => pause('build:pinned', put(POL, pol([`${S}/32`, 'pass']))),
    () => pause('clear:intent', clear(B1)), // would unblock S
    () => pause('clear:applied', clear(B1)), // S is left to the policy's drop
    () => ({
      kind: 'burst',
      ops: [put(B0, bl(S)), activate(B3), stage(B1, bl(P)), put(POL, pol([`${P}/32`, 'drop'])), clear(POL2), put(B2, bl())],
    }),
    () => pause('swap:intent', rollback(B0, oldestOther, 'oldest kept version')),
    () => pause('swap:applied', rollback(B0, oldestOther, 'oldest kept version')),
    () => ({
      kind: 'burst',
      ops: [
        rollback(B1, oldestOther, 'oldest kept version'),
        put(B3, bl(P, S)),
        put(POL, pol(['0.0.0.0/0', 'drop'], [`${P}/32`, 'pass'])),
        put(POL2, pol(['10.0.0.0/8', 'drop'])),
        clear(B2),
        stage(B0, bl(S)),
      ],
    }),
    () => pause('swap:intent', put(POL, pol([`${S}/32`, 'pass'], ['198.51.100.0/24', 'drop']))),
    () => pause('swap:recorded', rollback(B0, newestOther, 'newest other version')),
    () => ({
      kind: 'idle',
      // Whether the burst's PUT of POL landed before its kill is chance: roll
      // POL back only if it has another version to go to.
      ops: [
        put(B0, bl(X2)),
        clear(B3),
        oldestOther(slotOf(POL)) === undefined ? put(POL, pol(['192.0.2.0/24', 'drop'])) : rollback(POL, oldestOther, 'oldest kept version'),
      ],
    }),
    () => pause('clear:intent', clear(POL)),
    () => pause('clear:applied', clear(POL)), // no policy for the interface any more
  ];

  let kills = 0;
  let bursts = 0;
  const pausedPoints: string[] = [];
  for (const makeStep of steps) {
    step += 1;
    const current = makeStep();
    // Short titles: tap names a directory after each test.
    const title = current.kind === 'pause' ? `#${step} SIGKILL at ${current.point} (${current.op.kind})` : `#${step} SIGKILL ${current.kind === 'idle' ? 'while idle' : 'in a burst'}`;
    await t.test(title, async (t) => {
      t.comment(current.kind === 'pause' ? describeOp(current.op) : current.ops.map(describeOp).join('; '));
      const daemon = await boot(t, current.kind === 'pause' ? current.point : undefined);
      await verify(t, daemon.api);
      if (!t.passing()) return;

      if (current.kind === 'pause') {
        const { op, point } = current;
        const s = slotOf(op.ref);
        const { method, url, body } = request(op, s);
        let settled = false;
        const pending = daemon.api(method, url, body).finally(() => (settled = true));
        pending.catch(() => {});
        const paused = await daemon.waitForLog('paused at crash point', 10_000);
        t.equal(paused.point, point, `paused at ${point}`);
        t.notOk(settled, 'the request hangs');
        await kill(t, daemon);
        pausedPoints.push(point);
        if (BEFORE.has(point)) notApplied(s, op);
        else apply(s, op, null);
        await whileDown(t);
      } else if (current.kind === 'idle') {
        for (const op of current.ops) await perform(t, daemon.api, op);
        // A random moment while nothing is in flight.
        await sleep(randomInt(0, 30));
        await kill(t, daemon);
        await whileDown(t);
      } else {
        const before = new Map(current.ops.map((op) => [slotId(op.ref), cloneSlot(slotOf(op.ref))]));
        const sent = current.ops.map((op) => {
          const s = slotOf(op.ref);
          const { method, url, body } = request(op, s);
          const answer = daemon.api(method, url, body);
          answer.catch(() => {});
          return answer;
        });
        // A random moment: right as the first answer comes in (the others
        // somewhere between arriving and done), or a few milliseconds in.
        bursts += 1;
        if (bursts % 2 === 1) {
          await withTimeout(Promise.any(sent), 10_000, 'a first answer');
        } else {
          const delay = randomInt(5, 40);
          t.comment(`killing ${delay} ms into the burst`);
          await sleep(delay);
        }
        await kill(t, daemon);
        const answers = await Promise.allSettled(sent);
        current.ops.forEach((op, i) => {
          const answer = answers[i]!;
          const id = slotId(op.ref);
          if (answer.status === 'fulfilled') {
            if (answer.value.status !== 200 && answer.value.status !== 201) t.fail(`${describeOp(op)}: ${answer.value.status}`, { body: answer.value.body });
            const number = op.kind === 'put' || op.kind === 'stage' ? (answer.value.body.version as number) : null;
            apply(slotOf(op.ref), op, number);
            return;
          }
          const after = cloneSlot(before.get(id)!);
          apply(after, op, null);
          const notDone = cloneSlot(before.get(id)!);
          notApplied(notDone, op);
          undecided.set(id, [notDone, after]);
          slots.delete(id);
        });
        t.comment(`${current.ops.length - undecided.size} of ${current.ops.length} requests answered before the kill`);
        t.ok(xdpProgram(link.host), 'still attached while mimd is down');
      }
      kills += 1;
    });
    if (!t.passing()) break;
  }

  if (!t.passing()) return;
  await t.test('a last start, then a clean stop that keeps everything', async (t) => {
    const daemon = await boot(t);
    await verify(t, daemon.api);
    t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null }, 'SIGTERM: exit 0');
    await whileDown(t);
  });

  t.ok(kills >= 20, `killed ${kills} times`);
  t.equal(new Set(pausedPoints).size, 8, `at every crash point: ${[...new Set(pausedPoints)].join(', ')}`);
});
