// SIGHUP and POST /v1/reload: tokens and limits are read again from the
// configuration file, and nothing else changes: same process, the program
// stays attached, every slot holds what it held (read with bpftool). A file
// with an error is refused and changes nothing. The rate limit, changed by a
// reload, applies per token and answers 429 with Retry-After.
import t, { type Test } from 'tap';
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { pinDir, tempDir, vethPair } from '../helpers/sandbox';
import {
  TEST_TOKEN_SHA256,
  apiClient,
  ensureBuilt,
  firewallBytes,
  firewallConfig,
  firewallKernelView,
  pinnedLink,
  skipUnlessRoot,
  sleep,
  startApi,
  u32Hex,
  waitForAudit,
  xdpProgram,
  type Daemon,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';
const tokenSha = (token: string): string => createHash('sha256').update(token, 'utf8').digest('hex');
const newToken = (): string => randomBytes(32).toString('base64url');

/** Resolves with the first log line after the first `seen` whose msg is one of `msgs`. */
async function logAfter(daemon: Daemon, seen: number, msgs: string[], timeoutMs = 10_000): Promise<Record<string, unknown>> {
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await sleep(20)) {
    const line = daemon.logs.slice(seen).find((l) => msgs.includes(String(l.msg)));
    if (line) return line;
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) break;
  }
  throw new Error(`no ${msgs.join(' or ')} log line within ${timeoutMs} ms (daemon ${daemon.child.exitCode ?? daemon.child.signalCode ?? 'running'})`);
}

const RELOADED = 'reloaded tokens and limits';
const REFUSED = 'reload refused: the configuration has errors; nothing changed';

t.test('SIGHUP and POST /v1/reload: new tokens and limits, the same process and kernel state; a bad file changes nothing', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const auditFile = path.join(tempDir(t, 'mimd-audit-'), 'audit.log');
  const oldToken = newToken();
  const nextToken = newToken();
  const adminEntry = { id: 'test', sha256: TEST_TOKEN_SHA256, scope: 'admin' };
  const oldEntry = { id: 'old', sha256: tokenSha(oldToken), scope: 'write' };
  const nextEntry = { id: 'next', sha256: tokenSha(nextToken), scope: 'write' };
  const daemon = await startApi(t, { ...firewallConfig(pinRoot, veth.host, { api: { tokens: [adminEntry, oldEntry] } }), audit: { destination: auditFile } });
  const { api: admin } = daemon;
  const old = apiClient(daemon.baseUrl, oldToken);
  const next = apiClient(daemon.baseUrl, nextToken);
  const pid = daemon.child.pid;
  /** The configuration file with `api` changed (the same state directory, objects and pins). */
  const rewrite = (api: Record<string, unknown> | string): void => {
    if (typeof api === 'string') return fs.writeFileSync(daemon.configFile, api);
    const config = daemon.config as { api: Record<string, unknown> };
    fs.writeFileSync(daemon.configFile, JSON.stringify({ ...config, api: { ...config.api, ...api } }, null, 2));
  };
  const audited: [string, number, string | null][] = [];
  const change = async (client: typeof admin, who: string, method: string, url: string, body?: unknown): Promise<number> => {
    const res = await client(method, url, body);
    audited.push([method, res.status, res.status === 401 ? null : who]);
    return res.status;
  };

  t.equal(await change(admin, 'test', 'PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] }), 201);
  t.equal(await change(old, 'old', 'PUT', `${BL}/1`, { entries: [{ key: '192.0.2.2', value: 1 }] }), 201, 'the old token writes');
  t.equal((await next('GET', '/v1/maps')).status, 401, 'the next token is not known yet');
  const kernelBefore = firewallKernelView(pinRoot);
  const programBefore = xdpProgram(veth.host);
  const linkPin = path.join(pinRoot, 'firewall', 'links', `xdp-generic-${veth.host}`);
  const linkBefore = pinnedLink(linkPin);
  t.ok(programBefore, 'the program is attached');
  const unchanged = (t: Test, what: string): void => {
    t.equal(daemon.child.exitCode, null, `${what}: the daemon runs`);
    t.equal(daemon.child.pid, pid, `${what}: the same process`);
    t.same(xdpProgram(veth.host), programBefore, `${what}: the same program stays attached`);
    t.same(pinnedLink(linkPin), linkBefore, `${what}: the same link`);
    t.same(firewallKernelView(pinRoot), kernelBefore, `${what}: every slot holds what it held`);
  };

  await t.test('SIGHUP with a new token and without the old one', async (t) => {
    rewrite({ tokens: [adminEntry, nextEntry], rateLimit: { max: 3, windowMs: 60_000 } });
    const seen = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    const line = await logAfter(daemon, seen, [RELOADED, REFUSED]);
    t.match(line, { msg: RELOADED, tokens: 2, limits: { rateLimit: { max: 3, windowMs: 60_000 } } }, 'logged');
    t.match(await next('GET', '/v1/maps'), { status: 200 }, 'the new token works');
    t.match(await old('GET', '/v1/maps'), { status: 401, body: { code: 'MIMD_UNAUTHORIZED' } }, 'the old one gets 401');
    t.equal(await change(old, 'old', 'DELETE', `${BL}/1`), 401, 'also for a change');
    unchanged(t, 'after SIGHUP');
  });

  await t.test('the reloaded rate limit: 429 with Retry-After per token, and nothing changed by it', async (t) => {
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push(await change(next, 'next', 'PUT', `${BL}/2`, { entries: [{ key: `192.0.2.${10 + i}`, value: 1 }] }));
    t.same(statuses, [201, 200, 200], 'three changes within the window');
    const held = firewallKernelView(pinRoot).blocklist[u32Hex(2)]!;
    const res = await next('PUT', `${BL}/2`, { entries: [{ key: '192.0.2.99', value: 1 }] });
    audited.push(['PUT', res.status, 'next']);
    t.equal(res.status, 429, 'the fourth: 429');
    t.match(res.body, { code: 'MIMD_RATE_LIMITED' });
    const retryAfter = Number(res.headers['retry-after']);
    t.ok(Number.isInteger(retryAfter) && retryAfter >= 1 && retryAfter <= 60, `Retry-After: ${res.headers['retry-after']} (seconds, within the 60 s window)`);
    t.equal(firewallKernelView(pinRoot).blocklist[u32Hex(2)], held, 'the slot holds the third version');
    t.same(Object.keys(firewallKernelView(pinRoot).entries[held] ?? {}), [firewallBytes.source('192.0.2.12')]);
    t.match(await next('GET', `${BL}/2`), { status: 200, body: { activeVersion: 3 } }, 'reads are not limited');
    t.equal(await change(admin, 'test', 'PUT', `${BL}/3`, { entries: [] }), 201, 'another token still changes: the limit is per token');
  });

  await t.test('SIGHUP with a file that has an error: refused, logged, nothing changes', async (t) => {
    rewrite({ tokens: [adminEntry, { ...oldEntry, sha256: 'not-a-digest' }] });
    const seen = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    const line = await logAfter(daemon, seen, [RELOADED, REFUSED]);
    t.equal(line.msg, REFUSED, 'logged as refused');
    t.match(JSON.stringify(line), /api\.tokens\[1\]\.sha256/, 'naming the bad key');
    t.match(await next('GET', '/v1/maps'), { status: 200 }, 'the token of the last good file still works');
    t.match(await old('GET', '/v1/maps'), { status: 401 }, 'the one it removed stays out');
    t.equal((await next('PUT', `${BL}/2`, { entries: [] })).status, 429, 'and its limit still holds');
    audited.push(['PUT', 429, 'next']);

    rewrite('api: [unclosed');
    const seen2 = daemon.logs.length;
    daemon.child.kill('SIGHUP');
    t.equal((await logAfter(daemon, seen2, [RELOADED, REFUSED])).msg, REFUSED, 'a YAML syntax error is refused too');
    t.match(await next('GET', '/v1/maps'), { status: 200 });
    t.match(await old('GET', '/v1/maps'), { status: 401 });
  });

  await t.test('POST /v1/reload (admin): the same as SIGHUP', async (t) => {
    rewrite({ tokens: [adminEntry, oldEntry, nextEntry], rateLimit: { max: 1_000_000, windowMs: 1000 } });
    let res = await next('POST', '/v1/reload');
    audited.push(['POST', res.status, 'next']);
    t.match(res, { status: 403, body: { code: 'MIMD_FORBIDDEN' } }, 'a write token may not reload');
    t.match(await old('GET', '/v1/maps'), { status: 401 }, 'and nothing was reloaded');

    res = await admin('POST', '/v1/reload');
    audited.push(['POST', res.status, 'test']);
    t.match(res, { status: 200, body: { tokens: 3, limits: { rateLimit: { max: 1_000_000, windowMs: 1000 } } } }, 'an admin token reloads: what it took');
    t.match(await old('GET', '/v1/maps'), { status: 200 }, 'the old token is back');
    t.equal(await change(next, 'next', 'PUT', `${BL}/2`, { entries: [] }), 200, 'the raised limit lets the next token change again');

    rewrite({ tokens: [{ ...adminEntry, scope: 'superuser' }] });
    res = await admin('POST', '/v1/reload');
    audited.push(['POST', res.status, 'test']);
    t.ok(res.status >= 400, `a file with an error: not reloaded (${res.status})`);
    t.match(res.body, { code: 'MIMD_CONFIG', message: /api\.tokens\[0\]\.scope: expected one of read, write, admin/ }, 'the answer names the bad key');
    t.match(await old('GET', '/v1/maps'), { status: 200 }, 'the tokens stay as they were');
    t.match(await next('GET', '/v1/maps'), { status: 200 });
    t.equal(daemon.child.pid, pid);
    t.equal(daemon.child.exitCode, null, 'the daemon runs');
  });

  await t.test('one audit record per change, reloads by request included', async (t) => {
    const records = await waitForAudit(auditFile, audited.length);
    t.same(
      records.map((r) => [r.method, r.status, r.actor.id]),
      audited,
      'in order: who, and how it ended',
    );
    t.match(records.filter((r) => r.url === '/v1/reload'), [{ action: 'reload', map: null, slot: null }, { action: 'reload', result: 'ok' }, { action: 'reload', result: 'error' }]);
    t.match(records.find((r) => r.status === 429), { action: 'put', slot: '2', result: 'error', code: 'MIMD_RATE_LIMITED', oldVersion: 3 });
  });

  await t.test('SIGTERM: exit 0', async (t) => {
    t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
    t.equal(daemon.stderr(), '');
  });
});
