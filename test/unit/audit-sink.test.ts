// Where audit records go: a file of their own (mode 0600, appended to, one
// JSON line per record marked "audit": true), or stdout as a stream beside
// the log.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { openAuditLog } from '../../daemon/src/audit-sink';
import type { AuditRecord } from '../../daemon/src/http/audit';

const RECORD: AuditRecord = {
  time: '2026-01-02T03:04:05.678Z',
  requestId: 'req-1',
  actor: { id: 'deploy-bot', kind: 'token', transport: 'tcp', uid: null, address: '127.0.0.1' },
  action: 'put',
  method: 'PUT',
  url: '/v1/maps/firewall/blocklist/slots/0',
  map: 'firewall/blocklist',
  slot: '0',
  oldVersion: 2,
  newVersion: 3,
  oldMapId: 57,
  newMapId: 60,
  entryCount: 1,
  digest: 'c'.repeat(64),
  result: 'ok',
  status: 200,
  code: null,
  errno: null,
};

const FAILED: AuditRecord = { ...RECORD, requestId: 'req-2', action: 'clear', result: 'error', status: 500, code: 'MIMD_KERNEL_ERROR', errno: 'EINVAL', newVersion: null, newMapId: null };

t.test('a file: created 0600 (in a directory made for it), one parseable JSON line per record', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'log', 'mimd', 'audit.log');
  const log = openAuditLog({ destination: file });
  t.teardown(() => log.close());
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'only the owner reads the audit file');
  t.ok(fs.statSync(path.dirname(file)).isDirectory(), 'its directory was made');

  log.sink(RECORD);
  log.sink(FAILED);
  // Written synchronously: on disk as soon as the sink returns.
  const lines = fs.readFileSync(file, 'utf8').split('\n');
  t.equal(lines.length, 3, 'two lines, each ended by a newline');
  t.equal(lines[2], '');
  const parsed = lines.slice(0, 2).map((l) => JSON.parse(l) as Record<string, unknown>);
  for (const [i, record] of [RECORD, FAILED].entries()) {
    t.equal(parsed[i]!.audit, true, 'marked as audit');
    t.has(parsed[i], record, 'every field of the record');
    t.notOk('pid' in parsed[i]! || 'hostname' in parsed[i]!, 'nothing of the log line base');
  }
  t.equal(parsed[0]!.time, RECORD.time, 'the record keeps its own time');
});

t.test('a file is appended to, never truncated', async (t) => {
  const dir = t.testdir({ 'audit.log': '{"audit":true,"earlier":1}\n' });
  const file = path.join(dir, 'audit.log');
  fs.chmodSync(file, 0o600);
  const log = openAuditLog({ destination: file });
  log.sink(RECORD);
  log.close();
  const lines = fs.readFileSync(file, 'utf8').trimEnd().split('\n');
  t.equal(lines.length, 2);
  t.strictSame(JSON.parse(lines[0]!), { audit: true, earlier: 1 });
  t.equal((JSON.parse(lines[1]!) as AuditRecord).requestId, 'req-1');

  const again = openAuditLog({ destination: file });
  again.sink(FAILED);
  again.close();
  t.equal(fs.readFileSync(file, 'utf8').trimEnd().split('\n').length, 3, 'a second opening appends too');
});

t.test('close is idempotent enough to be called once per open, and closes the file', async (t) => {
  const dir = t.testdir({});
  const file = path.join(dir, 'audit.log');
  const before = fs.readdirSync('/proc/self/fd').length;
  const log = openAuditLog({ destination: file });
  t.equal(fs.readdirSync('/proc/self/fd').length, before + 1, 'one descriptor open');
  log.close();
  t.equal(fs.readdirSync('/proc/self/fd').length, before, 'and closed');
});

t.test('stdout: JSON lines marked "audit": true, on the process stdout', async (t) => {
  const dir = t.testdir({});
  const script = path.join(dir, 'emit.ts');
  const sink = path.resolve(__dirname, '..', '..', 'daemon', 'src', 'audit-sink');
  fs.writeFileSync(
    script,
    `import { openAuditLog } from ${JSON.stringify(sink)};\n` +
      `const log = openAuditLog({ destination: 'stdout' });\n` +
      `log.sink(${JSON.stringify(RECORD)});\nlog.sink(${JSON.stringify(FAILED)});\nlog.close();\n`,
  );
  // The same loader flags this test runs with (TypeScript).
  const run = spawnSync(process.execPath, [...process.execArgv, script], { encoding: 'utf8', timeout: 60_000 });
  t.equal(run.status, 0, run.stderr);
  const lines = run.stdout.trimEnd().split('\n');
  t.equal(lines.length, 2, 'one line per record');
  const parsed = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  t.equal(parsed[0]!.audit, true);
  t.has(parsed[0], RECORD);
  t.has(parsed[1], FAILED);
});

t.test('an audit file that exists with a wider mode is narrowed to 0600', async (t) => {
  const dir = t.testdir({ 'audit.log': '' });
  const file = path.join(dir, 'audit.log');
  fs.chmodSync(file, 0o644);
  const log = openAuditLog({ destination: file });
  t.teardown(() => log.close());
  t.equal(fs.statSync(file).mode & 0o777, 0o600, 'only the owner reads it');
});
