// Limits under abuse: a client that stalls its body is cut off after
// requestTimeoutMs, and a flood of queued writes does not starve reads.
// (413 and 429 are in security.test.ts and reload.test.ts, beside the audit
// records they make; 503 from a full swap queue in concurrency.test.ts.)
import t from 'tap';
import * as net from 'node:net';
import { once } from 'node:events';
import { pinDir, vethPair } from '../helpers/sandbox';
import {
  TEST_TOKEN,
  ensureBuilt,
  firewallConfig,
  firewallKernelView,
  skipUnlessRoot,
  startApi,
  u32Hex,
  withTimeout,
} from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';
const POL = '/v1/maps/firewall/policy/slots';

t.test('a stalled body is cut off; reads are answered while a flood of writes is queued', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const veth = vethPair(t);
  // One outer-map update at a time, so that a flood of writes queues up.
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host, { api: { requestTimeoutMs: 1000 }, swapQueue: { capacity: 1024, concurrency: 1 } }));
  const { api } = daemon;

  await t.test('a client that sends headers and stalls its body is cut off after requestTimeoutMs (1000)', async (t) => {
    const before = firewallKernelView(pinRoot);
    const socket = net.connect(daemon.port, '127.0.0.1');
    await once(socket, 'connect');
    let received = '';
    socket.setEncoding('utf8').on('data', (chunk: string) => (received += chunk));
    socket.on('error', () => {});
    const sent = Date.now();
    socket.write(
      `PUT ${BL}/0 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${TEST_TOKEN}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"entries":[`,
    );
    // Waits 6 s at most: a connection still open then has not been cut off in time.
    const closed = await withTimeout(once(socket, 'close'), 6_000, 'close').then(
      () => true,
      () => false,
    );
    const elapsed = Date.now() - sent;
    socket.destroy();
    t.comment(closed ? `closed after ${elapsed} ms; answer: ${JSON.stringify(received.split('\r\n')[0] ?? '')}` : `still open after ${elapsed} ms`);
    t.ok(closed, 'the connection was closed by mimd within 6 s');
    t.ok(elapsed >= 900, `not before the timeout (${elapsed} ms)`);
    t.match(received, /^(|HTTP\/1\.1 408 [^\r]*\r\n[\s\S]*)$/, 'answered 408, or closed without an answer');
    if (received !== '') t.match(received.slice(received.indexOf('\r\n\r\n') + 4), /^\{"code":"MIMD_/, 'a 408 in the API\'s error shape (a MIMD_ code)');
    t.same(firewallKernelView(pinRoot), before, 'nothing changed in the kernel');
    t.match(await api('GET', '/readyz'), { status: 200 }, 'the daemon answers others');
  });

  await t.test('reads are answered while a flood of writes is queued', async (t) => {
    t.match(await api('PUT', `${BL}/0`, { entries: [{ key: '192.0.2.1', value: 1 }] }), { status: 201 });

    // 200 PUTs in flight at once: 4 versions each of 50 policy slots, one
    // outer-map update at a time (concurrency 1), each waiting out an RCU grace period.
    const SLOTS = 50;
    const ROUNDS = 4;
    let pending = SLOTS * ROUNDS;
    const flood = Promise.all(
      Array.from({ length: SLOTS * ROUNDS }, (_, i) =>
        api('PUT', `${POL}/${i % SLOTS}`, { entries: [{ key: `10.${Math.floor(i / SLOTS)}.0.0/16`, value: { verdict: 'drop' } }] }).finally(() => (pending -= 1)),
      ),
    );
    const started = Date.now();
    const reads: { ms: number; status: number; pendingWrites: number }[] = [];
    while (pending > 0) {
      const sent = Date.now();
      const url = reads.length % 2 === 0 ? `${BL}/0` : `${POL}/${reads.length % SLOTS}`;
      const res = await withTimeout(api('GET', url), 10_000, `GET ${url} during the flood`);
      reads.push({ ms: Date.now() - sent, status: res.status, pendingWrites: pending });
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const writes = await flood;
    const floodMs = Date.now() - started;
    const during = reads.filter((r) => r.pendingWrites >= 20);
    const max = Math.max(...reads.map((r) => r.ms));
    const sorted = reads.map((r) => r.ms).sort((a, b) => a - b);
    t.comment(`${writes.length} PUTs took ${floodMs} ms; ${reads.length} GETs meanwhile (${during.length} with 20 or more PUTs pending): median ${sorted[Math.floor(sorted.length / 2)]} ms, max ${max} ms`);

    t.same([...new Set(writes.map((w) => w.status))].filter((s) => s !== 200 && s !== 201), [], 'every PUT swapped (200 or 201)');
    t.ok(during.length >= 3, `GETs were answered while 20 or more PUTs were pending (${during.length})`);
    t.ok(reads.every((r) => r.status === 200 || r.status === 404), 'every GET answered (200, or 404 for a slot not made yet)');
    t.ok(reads.filter((r) => r.ms > 2000).length === 0, `each GET within 2 s (max ${max} ms)`);

    const kernel = firewallKernelView(pinRoot).policy;
    t.equal(Object.keys(kernel).length, SLOTS, 'the kernel holds every slot');
    const slots = (await api('GET', POL)).body.slots as { slot: number; activeVersion: number; mapId: number }[];
    t.equal(slots.length, SLOTS, 'the API lists every slot');
    t.ok(
      slots.every((s) => s.activeVersion === ROUNDS && kernel[u32Hex(s.slot)] === s.mapId),
      `each slot at version ${ROUNDS}, the map the kernel holds`,
    );
  });

  await t.test('SIGTERM: exit 0', async (t) => {
    t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
    t.equal(daemon.stderr(), '');
  });
});
