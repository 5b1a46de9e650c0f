// Streamed uploads the client abandons, through the running daemon: gone
// mid-body, or stalled past api.requestTimeoutMs. The real fill takes any
// failure of its input that is not a MIMD_ error for a kernel refusal; the
// audit record and mimd_errors_total must name the client's doing, and the
// kernel must hold what it held.
import t from 'tap';
import * as net from 'node:net';
import * as path from 'node:path';
import { once } from 'node:events';
import { pinDir, tempDir, vethPair } from '../helpers/sandbox';
import { TEST_TOKEN, ensureBuilt, firewallConfig, firewallKernelView, metricValue, skipUnlessRoot, sleep, startApi, waitForAudit } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';

/** Headers and a first piece of a chunked NDJSON PUT; then the client goes away (stall: after mimd closes, or 5 s). */
async function partialPut(port: number, url: string, stall: boolean): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.on('data', (piece: Buffer) => (answer += piece.toString('latin1')));
  socket.on('error', () => undefined);
  const first = '{"key":"10.0.0.1","value":1}\n';
  socket.write(
    `PUT ${url} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n\r\n` +
      `${first.length.toString(16)}\r\n${first}\r\n`,
  );
  await sleep(300);
  if (stall) await Promise.race([once(socket, 'close'), sleep(5000)]);
  socket.destroy();
  return answer;
}

t.test('an abandoned streamed upload: the client\'s code in the audit record and metrics, the kernel unchanged', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const auditFile = path.join(tempDir(t, 'mimd-audit-'), 'audit.log');
  const daemon = await startApi(t, { ...firewallConfig(pinRoot, veth.host, { api: { requestTimeoutMs: 1000 } }), audit: { destination: auditFile } });
  t.match(await daemon.api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] }), { status: 201 });
  const before = firewallKernelView(pinRoot);

  await partialPut(daemon.port, `${BL}/0`, false);
  const answer = await partialPut(daemon.port, `${BL}/1`, true);
  t.match(answer, /^HTTP\/1\.1 408 [\s\S]*"code":"MIMD_REQUEST_TIMEOUT"/, 'the stalled client was told 408');

  const records = (await waitForAudit(auditFile, 3)).slice(1);
  t.equal(records.length, 2, 'one record per abandoned upload');
  t.match(records, [
    { action: 'put', slot: '0', status: 400, code: 'MIMD_CLIENT_ABORTED', errno: null, result: 'error', oldVersion: 1 },
    { action: 'put', slot: '1', status: 408, code: 'MIMD_REQUEST_TIMEOUT', errno: null, result: 'error' },
  ]);
  const metrics = (await daemon.api('GET', '/metrics')).body as string;
  t.equal(metricValue(metrics, 'mimd_errors_total', { code: 'MIMD_CLIENT_ABORTED' }), 1);
  t.equal(metricValue(metrics, 'mimd_errors_total', { code: 'MIMD_REQUEST_TIMEOUT' }), 1);
  t.equal(metricValue(metrics, 'mimd_errors_total', { code: 'MIMD_KERNEL_ERROR' }), null, 'no kernel error');
  t.same(firewallKernelView(pinRoot), before, 'nothing changed in the kernel');
  t.match(await daemon.api('GET', `${BL}/1`), { status: 404 }, 'slot 1 was never filled');
});
