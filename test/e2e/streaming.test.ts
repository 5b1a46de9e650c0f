// Streamed uploads and read-backs through the running daemon over TCP: a bad
// line early in a long upload is answered at once and the connection closed,
// with nothing changed in the kernel; a 200,000-entry NDJSON PUT and a binary
// stage are read back whole as NDJSON and binary.
import t from 'tap';
import * as http from 'node:http';
import { Readable } from 'node:stream';
import { pinDir, vethPair } from '../helpers/sandbox';
import { TEST_TOKEN, ensureBuilt, firewallConfig, firewallKernelView, skipUnlessRoot, startApi, withTimeout } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';

interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
  /** whether the server ended the connection after the answer */
  closed: boolean;
}

/** One request with a streamed body; resolves once the answer is read, even if the body was not all sent. */
function request(port: number, method: string, path: string, headers: Record<string, string>, body?: Iterable<Buffer | string> | AsyncIterable<Buffer | string>): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const agent = new http.Agent({ keepAlive: false });
    const req = http.request({ host: '127.0.0.1', port, method, path, agent, headers: { authorization: `Bearer ${TEST_TOKEN}`, ...headers } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(parts), closed: res.headers.connection === 'close' }));
      res.on('error', reject);
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      // The server may close while the rest of the body is on its way: the answer still counts.
      if (err.code !== 'EPIPE' && err.code !== 'ECONNRESET') reject(err);
    });
    if (body) Readable.from(body).on('error', () => undefined).pipe(req);
    else req.end();
  });
}

/** `count` distinct addresses from 10.0.0.0 on, as NDJSON lines, a few thousand per piece. */
function* ndjsonAddresses(count: number, bad?: { at: number; line: string }): Generator<string> {
  let piece = '';
  for (let i = 0; i < count; i++) {
    piece += bad?.at === i ? `${bad.line}\n` : `{"key":"10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}","value":1}\n`;
    if (piece.length > 64 * 1024) {
      yield piece;
      piece = '';
    }
  }
  if (piece) yield piece;
}

t.test('streamed uploads and read-backs through the daemon', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host, { api: { maxEntries: 1_000_000, requestTimeoutMs: 60_000 } }));
  const { port } = daemon;
  const count = 200_000;

  await t.test('a bad line early in a long upload: 400 at once, connection closed, nothing changed', async (t) => {
    const before = firewallKernelView(pinRoot);
    const started = Date.now();
    const bad = await withTimeout(
      request(port, 'PUT', `${BL}/1?maxEntries=1000000`, { 'content-type': 'application/x-ndjson' }, ndjsonAddresses(1_000_000, { at: 1000, line: '{"key":"10.0.300.1","value":1}' })),
      30_000,
      'bad PUT',
    );
    t.equal(bad.status, 400);
    t.match(JSON.parse(bad.body.toString()), { code: 'MIMD_BAD_INPUT', field: 'entries[1000].key', message: /NDJSON line 1001/ });
    t.ok(bad.closed, 'Connection: close: the rest of the body is not read');
    t.comment(`answered after ${Date.now() - started} ms`);
    t.same(firewallKernelView(pinRoot), before, 'nothing changed in the kernel');
    t.match(await daemon.api('GET', `${BL}/1`), { status: 404 }, 'the slot was never filled');
    t.match(await daemon.api('GET', '/readyz'), { status: 200 }, 'the daemon answers');
  });

  await t.test('a 200,000-entry NDJSON PUT, read back whole as NDJSON', async (t) => {
    const put = await withTimeout(
      request(port, 'PUT', `${BL}/0?maxEntries=${count}&label=source=stream`, { 'content-type': 'application/x-ndjson' }, ndjsonAddresses(count)),
      60_000,
      'PUT',
    );
    t.equal(put.status, 201, put.body.toString().slice(0, 300));
    const result = JSON.parse(put.body.toString()) as { version: number; entryCount: number };
    t.match(result, { version: 1, entryCount: count });

    const dump = await withTimeout(request(port, 'GET', `${BL}/0/entries`, { accept: 'application/x-ndjson' }), 60_000, 'GET');
    t.equal(dump.status, 200);
    t.match(dump.headers['content-type'], /^application\/x-ndjson/);
    const lines = dump.body.toString().trimEnd().split('\n');
    t.equal(lines.length, count, 'a line per entry');
    const keys = new Set(lines.map((line) => (JSON.parse(line) as { key: string }).key));
    t.equal(keys.size, count, 'every address once');
    t.ok(keys.has('10.3.13.63') && keys.has('10.0.0.0'), 'addresses in the ipv4 format of the config');
  });

  await t.test('a binary stage of the same size, read back as binary records', async (t) => {
    const records = Buffer.alloc(count * 5);
    for (let i = 0; i < count; i++) {
      records.writeUInt32BE(0x0b000000 + i, i * 5); // 11.x.y.z: the key is the address in network order
      records[i * 5 + 4] = 1;
    }
    const pieces = Array.from({ length: Math.ceil(records.length / 65_537) }, (_, i) => records.subarray(i * 65_537, (i + 1) * 65_537));
    const staged = await withTimeout(request(port, 'POST', `${BL}/0/versions?maxEntries=${count}`, { 'content-type': 'application/octet-stream' }, pieces), 60_000, 'stage');
    t.equal(staged.status, 201, staged.body.toString().slice(0, 300));
    t.match(JSON.parse(staged.body.toString()), { version: 2, state: 'staged', entryCount: count });
    const dump = await request(port, 'GET', `${BL}/0/versions/2/entries`, { accept: 'application/octet-stream' });
    t.equal(dump.status, 200);
    t.equal(dump.body.length, records.length, 'a record per entry');
    const sorted = (buf: Buffer): string[] => Array.from({ length: buf.length / 5 }, (_, i) => buf.toString('hex', i * 5, i * 5 + 5)).sort();
    t.same(sorted(dump.body), sorted(records), 'exactly the records sent');
  });

});
