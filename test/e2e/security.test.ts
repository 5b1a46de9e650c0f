// Who gets in, what they may do, and what is written down: the unix socket's
// modes and group against real users of other groups (setpriv), bearer tokens
// with scopes and map limits over TCP with the kernel read by bpftool after
// every refusal, TLS, one audit record per mutation whatever its outcome,
// pin modes, the token command, and the metrics and OpenAPI document.
import t, { type Test } from 'tap';
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomInt } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { parse as parseYaml } from 'yaml';
import { pinDir, tempDir, tempGroup, vethPair, ip } from '../helpers/sandbox';
import {
  MAIN,
  TEST_TOKEN,
  TEST_TOKEN_SHA256,
  apiClient,
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  firewallKernelView,
  kernelMap,
  metricValue,
  nodeApiClient,
  readAudit,
  runMimd,
  skipUnlessRoot,
  startApi,
  startDaemon,
  u32Hex,
  waitForAudit,
  xdpProgram,
  type Api,
  type FirewallKernelView,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const execFileAsync = promisify(execFile);

const A = '192.0.2.10';
const B = '192.0.2.11';
const C = '192.0.2.12';
const D = '192.0.2.13';
const BL = '/v1/maps/firewall/blocklist/slots';
const POL = '/v1/maps/firewall/policy/slots';
const NOBODY = 65534;

const sha256 = (...hexParts: string[]): string => createHash('sha256').update(Buffer.from(hexParts.join(''), 'hex')).digest('hex');
const tokenSha = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
/** sha256 of blocklist content as mimd encodes it: each key (IPv4, network order) then its value (one byte), in request order. */
const blocklistDigest = (entries: [string, number][]): string =>
  sha256(...entries.flatMap(([key, value]) => [firewallBytes.source(key), value.toString(16).padStart(2, '0')]));
const blocklistBody = (entries: [string, number][]): { entries: { key: string; value: number }[] } => ({
  entries: entries.map(([key, value]) => ({ key, value })),
});

/** Every directory and pin under `root` (root included) with a permission mode other than `dirMode` / `fileMode`. */
function wrongModes(root: string, dirMode: number, fileMode: number): string[] {
  const wrong: string[] = [];
  const check = (p: string): void => {
    const stat = fs.lstatSync(p);
    const want = stat.isDirectory() ? dirMode : fileMode;
    if ((stat.mode & 0o7777) !== want) wrong.push(`${p}: ${(stat.mode & 0o7777).toString(8)}, expected ${want.toString(8)}`);
  };
  check(root);
  for (const rel of fs.readdirSync(root, { recursive: true }) as string[]) check(path.join(root, rel));
  return wrong;
}

/** What a client run as another user saw: the answer, or the error code of the connection. */
interface ForeignResult {
  uid: number;
  gid: number;
  groups: number[];
  status?: number;
  body?: string;
  error?: string;
}

const FOREIGN_CLIENT = `
const http = require('node:http');
const [socketPath, method, urlPath, body] = JSON.parse(process.argv[1]);
const who = { uid: process.getuid(), gid: process.getgid(), groups: process.getgroups() };
const headers = body === null ? {} : { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
const req = http.request({ socketPath, method, path: urlPath, headers }, (res) => {
  let text = '';
  res.setEncoding('utf8');
  res.on('data', (c) => (text += c));
  res.on('end', () => console.log(JSON.stringify({ ...who, status: res.statusCode, body: text })));
});
req.on('error', (err) => console.log(JSON.stringify({ ...who, error: err.code })));
req.end(body === null ? undefined : body);`;

/** One request over the unix socket from a node process run by setpriv with `credentials`. */
async function asUser(credentials: string[], socketPath: string, method: string, urlPath: string, body?: unknown): Promise<ForeignResult> {
  const args = JSON.stringify([socketPath, method, urlPath, body === undefined ? null : JSON.stringify(body)]);
  const { stdout } = await execFileAsync('setpriv', [...credentials, process.execPath, '-e', FOREIGN_CLIENT, args], { cwd: '/', timeout: 10_000 });
  return JSON.parse(stdout) as ForeignResult;
}

t.test('the unix socket: 0660 in a 0750 directory of its group; other users are refused, members and root get in', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  // mimd narrows a pin root it finds wider than 0700
  fs.chmodSync(pinRoot, 0o755);
  const veth = vethPair(t);
  // others must be able to reach the socket's directory, so that only its own mode decides
  const run = tempDir(t, 'mimd-sock-', 0o755);
  const socketPath = path.join(run, 'mimd', 'mimd.sock');
  const auditFile = path.join(run, 'audit.log');
  const group = tempGroup(t);
  const daemon = startDaemon(t, {
    ...firewallConfig(pinRoot, veth.host, { api: { socket: { path: socketPath, group: group.name, scope: 'write' }, tcp: null } }),
    audit: { destination: auditFile },
  });
  const started = await daemon.waitForLog('started');
  t.equal(started.socket, socketPath, '"started" names the socket');
  t.ok((started.listen as unknown[]).includes(socketPath), '"started" lists the socket among the listeners');
  t.notOk((started.listen as unknown[]).some((l) => typeof l === 'object'), 'and no TCP listener');

  const dir = fs.statSync(path.dirname(socketPath));
  t.equal((dir.mode & 0o7777).toString(8), '750', 'the socket directory is 0750');
  t.same([dir.uid, dir.gid], [0, group.gid], 'owned by root and the configured group');
  const socket = fs.lstatSync(socketPath);
  t.ok(socket.isSocket(), 'a socket');
  t.equal((socket.mode & 0o7777).toString(8), '660', 'the socket is 0660');
  t.same([socket.uid, socket.gid], [0, group.gid], 'owned by root and the configured group');

  const root = nodeApiClient({ socketPath });
  t.match(await root('GET', '/v1/maps'), { status: 200, body: { maps: [{ name: 'blocklist' }, { name: 'policy' }] } }, 'root (the owner) gets in');
  const res = await root('PUT', `${BL}/0`, blocklistBody([[A, 1]]));
  t.match(res, { status: 201, body: { version: 1 } }, 'root, a peer without a token, may write (scope write)');
  const rootMapId = res.body.mapId as number;
  const before = firewallKernelView(pinRoot);
  t.same(before.blocklist, { [u32Hex(0)]: rootMapId }, 'the kernel holds it');

  const stranger = await asUser([`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'], socketPath, 'PUT', `${BL}/0`, blocklistBody([[B, 1]]));
  t.match(stranger, { uid: NOBODY, gid: NOBODY, groups: [] }, 'the client ran as nobody:nogroup, in no other group');
  t.equal(stranger.error, 'EACCES', 'a user of another group cannot connect: EACCES');
  t.same(firewallKernelView(pinRoot), before, 'nothing changed in the kernel');

  const supplementary = await asUser([`--reuid=${NOBODY}`, `--regid=${NOBODY}`, `--groups=${group.gid}`], socketPath, 'GET', `${BL}/0`);
  t.match(supplementary, { uid: NOBODY, gid: NOBODY, groups: [group.gid] }, 'a client with the group as a supplementary group');
  t.equal(supplementary.status, 200, 'gets in');

  const member = await asUser([`--reuid=${NOBODY}`, `--regid=${group.gid}`, '--clear-groups'], socketPath, 'PUT', `${BL}/0`, blocklistBody([[A, 1], [B, 1]]));
  t.match(member, { uid: NOBODY, gid: group.gid }, 'a client whose group is the socket group');
  t.equal(member.status, 200, 'changes the slot');
  const memberAnswer = JSON.parse(member.body ?? '{}') as { version?: number; mapId?: number };
  t.match(memberAnswer, { version: 2, previousVersion: 1 });
  t.same(firewallKernelView(pinRoot).blocklist, { [u32Hex(0)]: memberAnswer.mapId }, 'the kernel holds the member\'s version');

  // A token sent over the socket is used instead of the peer's uid.
  const withToken = nodeApiClient({ socketPath }, TEST_TOKEN);
  t.match(await withToken('PUT', `${BL}/1`, blocklistBody([[C, 1]])), { status: 201 }, 'a bearer token over the socket');
  t.match(await root('POST', '/v1/reload'), { status: 403, body: { code: 'MIMD_FORBIDDEN' } }, 'a peer has the socket scope (write), not admin');

  const records = await waitForAudit(auditFile, 4);
  t.same(
    records.map((r) => [r.action, r.status, r.actor]),
    [
      ['put', 201, { id: 'uid:0', kind: 'peer', transport: 'unix', uid: 0, address: null }],
      ['put', 200, { id: `uid:${NOBODY}`, kind: 'peer', transport: 'unix', uid: NOBODY, address: null }],
      ['put', 201, { id: 'test', kind: 'token', transport: 'unix', uid: 0, address: null }],
      ['reload', 403, { id: 'uid:0', kind: 'peer', transport: 'unix', uid: 0, address: null }],
    ],
    "one record per change, naming the peer's uid (none for the refused connection)",
  );
  t.equal((fs.statSync(auditFile).mode & 0o7777).toString(8), '600', 'the audit file is 0600');

  t.same(wrongModes(pinRoot, 0o700, 0o600), [], 'every directory under the pin root (and the root) is 0700, every pin 0600');
  t.ok((fs.readdirSync(pinRoot, { recursive: true }) as string[]).filter((p) => !fs.statSync(path.join(pinRoot, p)).isDirectory()).length >= 5, 'pins were checked: outer maps, link, versions');

  daemon.child.kill('SIGTERM');
  t.same(await daemon.exited, { code: 0, signal: null }, 'SIGTERM: exit 0');
  t.notOk(fs.existsSync(socketPath), 'the socket is removed');
  t.equal(daemon.stderr(), '');
});

/** The fields of an audit record a test can predict (all but time and requestId). */
interface AuditExpectation {
  actor: { id: string | null; kind: 'token' | 'peer' | null; transport: 'unix' | 'tcp'; uid: number | null; address: string | null };
  action: string;
  method: string;
  url: string;
  map: string | null;
  slot: string | null;
  oldVersion: number | null;
  newVersion: number | null;
  oldMapId: number | null;
  newMapId: number | null;
  entryCount: number | null;
  digest: string | null;
  result: 'ok' | 'error';
  status: number;
  code: string | null;
  errno: string | null;
}

const ISO_DATE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

t.test('TCP: bearer tokens with scopes and map limits; refusals change nothing; one audit record per mutation', { skip }, async (t) => {
  // The token command: a token and its api.tokens entry, which the daemon below is configured with.
  const tokenCommand = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
    execFileAsync(process.execPath, [MAIN, 'token', ...args]).then(
      ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
      (err: { code?: number; stdout?: string; stderr?: string }) => ({ code: err.code ?? -1, stdout: err.stdout ?? '', stderr: err.stderr ?? '' }),
    );
  const [first, second, badScope] = await Promise.all([
    tokenCommand('ci', 'write', '--map', 'firewall/blocklist'),
    tokenCommand('ci', 'write'),
    tokenCommand('ci', 'root'),
  ]);
  const printed = first.stdout;
  t.equal(first.code, 0, 'mimd token: exit 0');
  const ciToken = /^#\s+([A-Za-z0-9_-]{32,})$/m.exec(printed)?.[1] ?? '';
  t.match(ciToken, /^[A-Za-z0-9_-]{43}$/, 'mimd token prints a token (32 random bytes, base64url)');
  const ciEntry = parseYaml(printed) as unknown;
  t.same(ciEntry, [{ id: 'ci', sha256: tokenSha(ciToken), scope: 'write', maps: ['firewall/blocklist'] }], 'and the api.tokens entry: its sha256, scope and maps');
  t.not(/^#\s+(\S+)$/m.exec(second.stdout)?.[1], ciToken, 'a new token every time');
  t.match(badScope, { code: 64, stderr: /scope: expected one of read, write, admin/ }, 'an unknown scope: exit 64');

  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const auditFile = path.join(tempDir(t, 'mimd-audit-'), 'audit.log');
  const readerToken = 'mimd-e2e-reader-token-not-a-secret';
  const daemon = await startApi(t, {
    ...firewallConfig(pinRoot, veth.host, {
      api: {
        tokens: [
          { id: 'test', sha256: TEST_TOKEN_SHA256, scope: 'admin' },
          { id: 'reader', sha256: tokenSha(readerToken), scope: 'read' },
          ...(ciEntry as object[]),
        ],
        bodyLimit: 4096,
        maxEntries: 8,
      },
    }),
    audit: { destination: auditFile },
  });
  const admin = daemon.api;
  const reader = apiClient(daemon.baseUrl, readerToken);
  const ci = apiClient(daemon.baseUrl, ciToken);
  const anonymous = apiClient(daemon.baseUrl, null);
  const wrong = apiClient(daemon.baseUrl, 'mimd-e2e-a-token-mimd-does-not-know');

  const expected: AuditExpectation[] = [];
  const tokenActor = (id: string): AuditExpectation['actor'] => ({ id, kind: 'token', transport: 'tcp', uid: null, address: '127.0.0.1' });
  const NOBODY_ACTOR: AuditExpectation['actor'] = { id: null, kind: null, transport: 'tcp', uid: null, address: '127.0.0.1' };
  const NOTHING = { oldVersion: null, newVersion: null, oldMapId: null, newMapId: null, entryCount: null, digest: null };
  const OK = { result: 'ok' as const, code: null, errno: null };
  const mapOf = (url: string): string => /^\/v1\/maps\/([^/]+\/[^/]+)\//.exec(url)?.[1] ?? '';
  const slotOf = (url: string): string => /\/slots\/([^/]+)/.exec(url)?.[1] ?? '';

  /** The kernel as the last refusal left it: refusals in a row need one bpftool read each. Successes reset it. */
  let known: FirewallKernelView | null = null;

  /** A request mimd must refuse without touching the kernel; records the audit record it must write. */
  async function refused(
    t: Test,
    client: Api,
    actor: AuditExpectation['actor'],
    method: string,
    url: string,
    body: unknown,
    want: { status: number; code: string; errno?: string; field?: string; headers?: Record<string, string | RegExp> },
    slotNow: { version: number; mapId: number } | null,
    extraHeaders: Record<string, string> = {},
  ): Promise<void> {
    const before = known ?? firewallKernelView(pinRoot);
    const res = await client(method, url, body, extraHeaders);
    const what = `${method} ${url}`;
    t.equal(res.status, want.status, `${what}: ${want.status}`);
    t.match(res.body, { code: want.code, ...(want.errno ? { errno: want.errno } : {}), ...(want.field ? { field: want.field } : {}) }, `${what}: ${want.code}`);
    if (want.headers) t.match(res.headers, want.headers, `${what}: headers`);
    known = firewallKernelView(pinRoot);
    t.same(known, before, `${what}: nothing changed in the kernel`);
    const map = url === '/v1/reload' ? null : mapOf(url);
    expected.push({
      actor,
      action: auditActionOf(method, url),
      method,
      url,
      map,
      slot: map === null ? null : slotOf(url),
      ...NOTHING,
      oldVersion: slotNow?.version ?? null,
      oldMapId: slotNow?.mapId ?? null,
      result: 'error',
      status: want.status,
      code: want.code,
      errno: want.errno ?? null,
    });
  }

  await t.test('docs and metrics before any change', async (t) => {
    const docs = await anonymous('GET', '/docs/json');
    t.equal(docs.status, 200, '/docs/json is served without a token');
    t.match(docs.body, { openapi: /^3\./, info: { title: 'mimd' } });
    t.ok(Object.keys(docs.body.paths ?? {}).includes('/v1/maps/{object}/{map}/slots/{slot}'), 'it documents the slot routes');
    t.match(await anonymous('GET', '/metrics'), { status: 401 }, '/metrics needs a token over TCP');
    const metrics = await reader('GET', '/metrics');
    t.equal(metrics.status, 200, 'a read token gets /metrics');
    t.equal(metricValue(metrics.body, 'mimd_swaps_total', { map: 'firewall/blocklist', action: 'put', result: 'ok' }), null, 'no swaps counted yet');
    t.equal(metricValue(metrics.body, 'mimd_slot_active_version', { map: 'firewall/blocklist', slot: '0' }), null, 'no slot yet');
  });

  const v1 = blocklistBody([[A, 1]]);
  let slot0 = { version: 0, mapId: 0 };

  await t.test('writes that succeed, by an admin token and a map-limited write token', async (t) => {
    let res = await admin('PUT', `${BL}/0`, v1);
    t.match(res, { status: 201, body: { version: 1 } });
    slot0 = { version: 1, mapId: firewallKernelView(pinRoot).blocklist[u32Hex(0)]! };
    t.equal(res.body.mapId, slot0.mapId, 'the kernel holds the new map');
    expected.push({ actor: tokenActor('test'), action: 'put', method: 'PUT', url: `${BL}/0`, map: 'firewall/blocklist', slot: '0', oldVersion: null, newVersion: 1, oldMapId: null, newMapId: slot0.mapId, entryCount: 1, digest: blocklistDigest([[A, 1]]), status: 201, ...OK });

    res = await admin('PUT', `${POL}/7`, { entries: [{ key: '10.0.0.0/8', value: { verdict: 'drop' } }] });
    t.match(res, { status: 201, body: { version: 1 } });
    const policyMapId = firewallKernelView(pinRoot).policy[u32Hex(7)];
    t.equal(res.body.mapId, policyMapId);
    expected.push({ actor: tokenActor('test'), action: 'put', method: 'PUT', url: `${POL}/7`, map: 'firewall/policy', slot: '7', oldVersion: null, newVersion: 1, oldMapId: null, newMapId: policyMapId!, entryCount: 1, digest: sha256(firewallBytes.prefix('10.0.0.0/8'), firewallBytes.verdict('drop')), status: 201, ...OK });

    res = await ci('PUT', `${BL}/1`, blocklistBody([[C, 1], [D, 7]]));
    t.match(res, { status: 201, body: { version: 1 } }, 'the token from `mimd token` may write the map it is limited to');
    const slot1MapId = firewallKernelView(pinRoot).blocklist[u32Hex(1)];
    t.equal(res.body.mapId, slot1MapId);
    t.same(firewallKernelView(pinRoot).entries[slot1MapId!], { [firewallBytes.source(C)]: '01', [firewallBytes.source(D)]: '07' });
    expected.push({ actor: tokenActor('ci'), action: 'put', method: 'PUT', url: `${BL}/1`, map: 'firewall/blocklist', slot: '1', oldVersion: null, newVersion: 1, oldMapId: null, newMapId: slot1MapId!, entryCount: 2, digest: blocklistDigest([[C, 1], [D, 7]]), status: 201, ...OK });
    t.match(await ci('GET', `${BL}/1`), { status: 200 }, 'and read it');
  });

  await t.test('401 without a token or with a wrong one; 403 for too little scope or another map: nothing changes', async (t) => {
    const unauthorized = { status: 401, code: 'MIMD_UNAUTHORIZED', field: 'Authorization', headers: { 'www-authenticate': /^Bearer / } };
    await refused(t, anonymous, NOBODY_ACTOR, 'PUT', `${BL}/0`, blocklistBody([[B, 1]]), unauthorized, slot0);
    await refused(t, wrong, NOBODY_ACTOR, 'DELETE', `${BL}/0`, undefined, unauthorized, slot0);
    await refused(t, anonymous, NOBODY_ACTOR, 'POST', `${BL}/0/rollback`, undefined, unauthorized, slot0, { authorization: `Basic ${Buffer.from(`x:${TEST_TOKEN}`).toString('base64')}` });
    await refused(t, wrong, NOBODY_ACTOR, 'PATCH', `${BL}/0/entries`, { delete: [A] }, unauthorized, slot0);
    t.match(await anonymous('GET', `${BL}/0`), { status: 401 }, 'reads need a token too');

    const forbidden = { status: 403, code: 'MIMD_FORBIDDEN', field: 'Authorization' };
    await refused(t, reader, tokenActor('reader'), 'PUT', `${BL}/0`, blocklistBody([[B, 1]]), forbidden, slot0);
    await refused(t, reader, tokenActor('reader'), 'POST', `${BL}/0/versions`, blocklistBody([[B, 1]]), forbidden, slot0);
    await refused(t, ci, tokenActor('ci'), 'PUT', `${POL}/7`, { entries: [] }, forbidden, { version: 1, mapId: firewallKernelView(pinRoot).policy[u32Hex(7)]! });
    await refused(t, ci, tokenActor('ci'), 'DELETE', `${POL}/7`, undefined, forbidden, { version: 1, mapId: firewallKernelView(pinRoot).policy[u32Hex(7)]! });
    await refused(t, ci, tokenActor('ci'), 'POST', '/v1/reload', undefined, forbidden, null);
    t.match(await ci('GET', `${POL}/7`), { status: 403 }, 'a map-limited token cannot read other maps either');
    t.match(await reader('GET', `${BL}/0`), { status: 200, body: { activeVersion: 1 } }, 'the read token reads');
  });

  await t.test('400, 404, 409, 412, 413 and a kernel refusal: nothing changes', async (t) => {
    await refused(t, admin, tokenActor('test'), 'PUT', `${BL}/0`, { entries: [{ key: 'not-an-address', value: 1 }] }, { status: 400, code: 'MIMD_BAD_INPUT', field: 'entries[0].key' }, slot0);
    await refused(t, admin, tokenActor('test'), 'DELETE', `${BL}/3`, undefined, { status: 404, code: 'MIMD_NOT_FOUND', field: 'slot' }, null);
    await refused(t, admin, tokenActor('test'), 'POST', `${BL}/0/rollback`, undefined, { status: 409, code: 'MIMD_NO_ROLLBACK_TARGET' }, slot0);
    await refused(t, admin, tokenActor('test'), 'PUT', `${BL}/0`, blocklistBody([[B, 1]]), { status: 412, code: 'MIMD_PRECONDITION_FAILED' }, slot0, { 'if-match': '"7"' });
    const big = { entries: [{ key: B, value: 1 }], labels: { note: 'x'.repeat(4096) } };
    await refused(t, admin, tokenActor('test'), 'PUT', `${BL}/0`, big, { status: 413, code: 'MIMD_BODY_TOO_LARGE' }, slot0);
    const nine = Array.from({ length: 9 }, (_, i) => [`198.51.100.${i + 1}`, 1] as [string, number]);
    await refused(t, admin, tokenActor('test'), 'PUT', `${BL}/0`, blocklistBody(nine), { status: 413, code: 'MIMD_TOO_MANY_ENTRIES', field: 'entries' }, slot0);
    await refused(t, admin, tokenActor('test'), 'POST', `${BL}/0/versions`, blocklistBody(nine), { status: 413, code: 'MIMD_TOO_MANY_ENTRIES', field: 'entries' }, slot0);
    await refused(
      t,
      admin,
      tokenActor('test'),
      'PATCH',
      `${BL}/0/entries`,
      { upsert: nine.slice(0, 5).map(([key]) => ({ key, value: 1 })), delete: nine.slice(5).map(([key]) => key) },
      { status: 413, code: 'MIMD_TOO_MANY_ENTRIES', field: 'upsert' },
      slot0,
    );
    await refused(t, admin, tokenActor('test'), 'PUT', `${BL}/0`, { entries: [], maxEntries: 0xffffffff }, { status: 422, code: 'MIMD_TEMPLATE_VIOLATION', errno: 'E2BIG' }, slot0);
  });

  await t.test('put, stage, activate, rollback, patch, clear: each recorded with versions, map ids, entries and digest', async (t) => {
    known = null;
    const view = (): ReturnType<typeof firewallKernelView> => firewallKernelView(pinRoot);
    let res = await admin('PUT', `${BL}/0`, blocklistBody([[A, 1], [B, 1]]));
    t.match(res, { status: 200, body: { version: 2 } });
    const v2 = view().blocklist[u32Hex(0)]!;
    t.not(v2, slot0.mapId);
    expected.push({ actor: tokenActor('test'), action: 'put', method: 'PUT', url: `${BL}/0`, map: 'firewall/blocklist', slot: '0', oldVersion: 1, newVersion: 2, oldMapId: slot0.mapId, newMapId: v2, entryCount: 2, digest: blocklistDigest([[A, 1], [B, 1]]), status: 200, ...OK });

    res = await admin('POST', `${BL}/0/versions`, blocklistBody([[D, 2]]));
    t.match(res, { status: 201, body: { version: 3, state: 'staged' } });
    const v3 = res.body.mapId as number;
    t.match(kernelMap(v3), { type: 'hash' }, 'the staged map exists');
    t.equal(view().blocklist[u32Hex(0)], v2, 'staging leaves the slot');
    expected.push({ actor: tokenActor('test'), action: 'stage', method: 'POST', url: `${BL}/0/versions`, map: 'firewall/blocklist', slot: '0', oldVersion: null, newVersion: 3, oldMapId: null, newMapId: v3, entryCount: 1, digest: blocklistDigest([[D, 2]]), status: 201, ...OK });

    res = await admin('POST', `${BL}/0/versions/3/activate`);
    t.match(res, { status: 200, body: { version: 3 } });
    t.equal(view().blocklist[u32Hex(0)], v3);
    expected.push({ actor: tokenActor('test'), action: 'activate', method: 'POST', url: `${BL}/0/versions/3/activate`, map: 'firewall/blocklist', slot: '0', oldVersion: 2, newVersion: 3, oldMapId: v2, newMapId: v3, entryCount: 1, digest: blocklistDigest([[D, 2]]), status: 200, ...OK });

    res = await admin('POST', `${BL}/0/rollback`);
    t.match(res, { status: 200, body: { version: 2 } });
    t.equal(view().blocklist[u32Hex(0)], v2);
    expected.push({ actor: tokenActor('test'), action: 'rollback', method: 'POST', url: `${BL}/0/rollback`, map: 'firewall/blocklist', slot: '0', oldVersion: 3, newVersion: 2, oldMapId: v3, newMapId: v2, entryCount: 2, digest: blocklistDigest([[A, 1], [B, 1]]), status: 200, ...OK });

    res = await admin('PATCH', `${BL}/0/entries`, { upsert: [{ key: C, value: 3 }], delete: [A] });
    t.match(res, { status: 200, body: { version: 2, entryCount: 2 } });
    t.same(view().entries[v2], { [firewallBytes.source(B)]: '01', [firewallBytes.source(C)]: '03' }, 'patched in place');
    expected.push({ actor: tokenActor('test'), action: 'patch', method: 'PATCH', url: `${BL}/0/entries`, map: 'firewall/blocklist', slot: '0', oldVersion: 2, newVersion: 2, oldMapId: null, newMapId: null, entryCount: 2, digest: sha256(firewallBytes.source(C), '03', firewallBytes.source(A)), status: 200, ...OK });

    const slot1 = view().blocklist[u32Hex(1)]!;
    res = await ci('DELETE', `${BL}/1`);
    t.match(res, { status: 200, body: { previousVersion: 1 } });
    t.equal(view().blocklist[u32Hex(1)], undefined, 'slot 1 is empty in the kernel');
    expected.push({ actor: tokenActor('ci'), action: 'clear', method: 'DELETE', url: `${BL}/1`, map: 'firewall/blocklist', slot: '1', ...NOTHING, oldVersion: 1, oldMapId: slot1, status: 200, ...OK });

    // Reads are not mutations: no records.
    t.equal((await admin('GET', `${BL}/0/versions`)).status, 200);
    t.equal((await reader('GET', '/v1/maps')).status, 200);
  });

  await t.test('the audit file: 0600, exactly one record per mutation, in order, with what each did', async (t) => {
    const records = await waitForAudit(auditFile, expected.length);
    t.equal((fs.statSync(auditFile).mode & 0o7777).toString(8), '600', 'mode 0600');
    t.equal(records.length, expected.length, `${expected.length} mutations, ${records.length} records`);
    for (const record of records) {
      t.match(record, { time: ISO_DATE, requestId: /^req-/ });
    }
    const predictable = records.map((r) => {
      const { time: _time, requestId: _id, audit: _audit, level: _level, msg: _msg, ...rest } = r;
      return rest;
    });
    for (let i = 0; i < Math.max(records.length, expected.length); i++) {
      t.same(predictable[i], expected[i], `record ${i + 1}: ${expected[i]?.method} ${expected[i]?.url} -> ${expected[i]?.status}`);
    }
    t.same(Object.keys(records[0] ?? {}).filter((k) => !['audit', 'level', 'msg'].includes(k)).sort(), [...Object.keys(expected[0]!), 'time', 'requestId'].sort(), 'no other fields');
  });

  await t.test('metrics changed with the swaps', async (t) => {
    const text = (await reader('GET', '/metrics')).body as string;
    const bl = { map: 'firewall/blocklist' };
    t.equal(metricValue(text, 'mimd_swaps_total', { ...bl, action: 'put', result: 'ok' }), 3, 'three PUTs swapped blocklist slots');
    t.equal(metricValue(text, 'mimd_swaps_total', { ...bl, action: 'activate', result: 'ok' }), 1);
    t.equal(metricValue(text, 'mimd_swaps_total', { ...bl, action: 'rollback', result: 'ok' }), 1);
    t.equal(metricValue(text, 'mimd_swaps_total', { ...bl, action: 'clear', result: 'ok' }), 1);
    t.equal(metricValue(text, 'mimd_swaps_total', { map: 'firewall/policy', action: 'put', result: 'ok' }), 1);
    t.equal(metricValue(text, 'mimd_slot_active_version', { ...bl, slot: '0' }), 2, 'slot 0: version 2 active');
    t.equal(metricValue(text, 'mimd_slot_active_version', { ...bl, slot: '1' }), 0, 'slot 1: emptied');
    t.equal(metricValue(text, 'mimd_slot_active_version', { map: 'firewall/policy', slot: '7' }), 1);
    t.equal(metricValue(text, 'mimd_slot_entries', { ...bl, slot: '0' }), 2, 'entries of the active map');
    t.ok((metricValue(text, 'mimd_swap_duration_seconds_count', bl) ?? 0) >= 5, 'swap latencies observed');
    t.ok((metricValue(text, 'mimd_errors_total', { code: 'MIMD_UNAUTHORIZED' }) ?? 0) >= 4, 'errors counted by code');
  });

  await t.test('SIGTERM: exit 0', async (t) => {
    t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
    t.equal(daemon.stderr(), '');
  });
});

/** The audit action of a mutating request. */
function auditActionOf(method: string, url: string): string {
  if (url === '/v1/reload') return 'reload';
  if (url.endsWith('/activate')) return 'activate';
  if (url.endsWith('/versions')) return 'stage';
  if (url.endsWith('/rollback')) return 'rollback';
  if (url.endsWith('/entries')) return 'patch';
  return method === 'DELETE' ? 'clear' : 'put';
}

t.test('TCP off loopback: refused without TLS (exit 78), served over HTTPS with it', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const plain = await runMimd(t, ['run'], firewallConfig(pinRoot, veth.host, { api: { tcp: { host: '0.0.0.0', port: 0 } } }));
  t.equal(plain.code, 78, 'a non-loopback address without tls: exit 78 (bad configuration)');
  t.match(plain.stderr, /^config: api\.tcp\.tls: missing: 0\.0\.0\.0 is not a loopback address/m, 'naming api.tcp.tls');
  t.equal(xdpProgram(veth.host), null, 'nothing attached');
  t.same(fs.readdirSync(pinRoot), [], 'nothing pinned');

  // An address of the test's own on its veth (198.18.0.0/15, for benchmarks, never routed): not loopback.
  const address = `198.18.${randomInt(0, 256)}.${randomInt(1, 255)}`;
  ip('addr', 'add', `${address}/32`, 'dev', veth.host);
  const tls = tempDir(t, 'mimd-tls-');
  const cert = path.join(tls, 'cert.pem');
  const key = path.join(tls, 'key.pem');
  execFileSync(
    'openssl',
    ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=mimd-e2e', '-addext', `subjectAltName=IP:${address}`],
    { stdio: 'pipe' },
  );
  const daemon = startDaemon(t, firewallConfig(pinRoot, veth.host, { api: { tcp: { host: address, port: 0, tls: { cert, key } } } }));
  const started = await daemon.waitForLog('started');
  const listen = (started.listen as { address: string; port: number }[]).find((l) => typeof l === 'object');
  t.match(listen, { address, port: Number }, `listening on ${address}`);
  const port = listen?.port ?? 0;
  const secure = nodeApiClient({ host: address, port, ca: fs.readFileSync(cert) }, TEST_TOKEN);
  t.match(await secure('GET', '/v1/maps'), { status: 200, body: { maps: [{ name: 'blocklist' }, { name: 'policy' }] } }, 'HTTPS with the certificate as CA and the token: 200');
  t.match(await secure('PUT', `${BL}/0`, blocklistBody([[A, 1]])), { status: 201 }, 'and a change over HTTPS');
  t.match(await nodeApiClient({ host: address, port, ca: fs.readFileSync(cert) })('GET', '/v1/maps'), { status: 401 }, 'HTTPS without a token: 401');
  const untrusted = await nodeApiClient({ host: address, port }, TEST_TOKEN)('GET', '/v1/maps').catch((err: NodeJS.ErrnoException) => err.code);
  t.match(untrusted, /SELF_SIGNED|UNABLE_TO_VERIFY|CERT/, 'a client that does not trust the certificate is refused by TLS');
  const cleartext = await apiClient(`http://${address}:${port}`)('GET', '/v1/maps').then(
    (res) => `HTTP ${res.status}`,
    () => 'refused',
  );
  t.not(cleartext, 'HTTP 200', 'cleartext HTTP gets no answer from the API');
  daemon.child.kill('SIGTERM');
  t.same(await daemon.exited, { code: 0, signal: null }, 'SIGTERM: exit 0');
});
