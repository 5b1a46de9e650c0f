// Uploads the client does not finish: it goes away mid-body, or stalls past
// api.requestTimeoutMs. The answer, the one audit record and the error metric
// all name the client's doing (MIMD_CLIENT_ABORTED 400, MIMD_REQUEST_TIMEOUT
// 408). The fake service reads the upload whole, as the fill does: a failure
// of the stream reaches it as the error the HTTP layer made of it (the real
// fill would call any other one a kernel refusal; see e2e/audit-gaps).
import t from 'tap';
import * as net from 'node:net';
import { once } from 'node:events';
import { testApp, type TestApp } from '../helpers/fake-slots';

const SLOT = '/v1/maps/firewall/blocklist/slots/0';
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Sends the headers and the first entry of a chunked upload, then `end` decides what the client does. */
async function partialUpload(port: number, method: string, url: string, type: string, first: string, end: (socket: net.Socket) => Promise<void>): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  let answer = '';
  socket.on('data', (piece: Buffer) => (answer += piece.toString('latin1')));
  socket.on('error', () => undefined);
  socket.write(`${method} ${url} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nTransfer-Encoding: chunked\r\n\r\n${first.length.toString(16)}\r\n${first}\r\n`);
  await sleep(200);
  await end(socket);
  socket.destroy();
  return answer;
}

async function errorCounts(app: TestApp): Promise<Record<string, number>> {
  const metric = await app.metrics.registry.getSingleMetric('mimd_errors_total')!.get();
  return Object.fromEntries(metric.values.map((v) => [String(v.labels.code), v.value]));
}

/** Waits until the app has written `count` audit records, then a moment more for any extra one. */
async function records(app: TestApp, count: number): Promise<TestApp['audit']> {
  for (const deadline = Date.now() + 5000; app.audit.length < count && Date.now() < deadline; ) await sleep(20);
  await sleep(200);
  return app.audit;
}

const NDJSON_ENTRY = '{"key":"10.0.0.1","value":1}\n';
const BINARY_ENTRY = Buffer.from('0a00000101', 'hex').toString('latin1');

t.test('a client that goes away mid-upload: MIMD_CLIENT_ABORTED 400, one record, no kernel error', async (t) => {
  const app = testApp(t);
  await app.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.app.server.address() as net.AddressInfo;
  const uploads: [string, string, string, string][] = [
    ['PUT', SLOT, 'application/x-ndjson', NDJSON_ENTRY],
    ['POST', `${SLOT}/versions`, 'application/octet-stream', BINARY_ENTRY],
  ];
  for (const [method, url, type, first] of uploads) {
    await partialUpload(port, method, url, type, first, async () => undefined);
  }
  const made = await records(app, uploads.length);
  t.equal(made.length, uploads.length, 'one record per upload');
  t.match(
    made.map((r) => ({ method: r.method, action: r.action, status: r.status, code: r.code, result: r.result, errno: r.errno })),
    [
      { method: 'PUT', action: 'put', status: 400, code: 'MIMD_CLIENT_ABORTED', result: 'error', errno: null },
      { method: 'POST', action: 'stage', status: 400, code: 'MIMD_CLIENT_ABORTED', result: 'error', errno: null },
    ],
  );
  t.strictSame(await errorCounts(app), { MIMD_CLIENT_ABORTED: 2 }, 'mimd_errors_total by the client\'s code, no MIMD_KERNEL_ERROR');
  t.notOk(app.logs.some((l) => l.level === 50), 'nothing logged as a failure of mimd');
});

t.test('a client that stalls mid-upload past requestTimeoutMs: 408 MIMD_REQUEST_TIMEOUT, and the record says so', async (t) => {
  const app = testApp(t, { requestTimeoutMs: 1000 });
  await app.app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.app.server.address() as net.AddressInfo;
  const answer = await partialUpload(port, 'PUT', SLOT, 'application/x-ndjson', NDJSON_ENTRY, async (socket) => {
    await Promise.race([once(socket, 'close'), sleep(5000)]);
  });
  t.match(answer, /^HTTP\/1\.1 408 /, 'the client was told 408');
  t.match(answer, /"code":"MIMD_REQUEST_TIMEOUT"/);
  const made = await records(app, 1);
  t.equal(made.length, 1, 'one record');
  t.match(made[0], { action: 'put', status: 408, code: 'MIMD_REQUEST_TIMEOUT', result: 'error', errno: null }, 'what the client was told');
  t.strictSame(await errorCounts(app), { MIMD_REQUEST_TIMEOUT: 1 });
  t.notOk(app.logs.some((l) => l.level === 50), 'nothing logged as a failure of mimd');
});
