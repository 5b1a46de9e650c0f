// A full state directory (a 1 MiB tmpfs of the test's own, not a real disk):
// every change answers 500 MIMD_STATE_WRITE_FAILED and changes nothing in
// the kernel, no temporary record (<slot>.json.tmp-<pid>-<n>) is left behind
// by any of the failures, and once space is freed the next change succeeds.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { fillUp, pinDir, smallTmpfs, vethPair } from '../helpers/sandbox';
import { ensureBuilt, firewallBytes, firewallConfig, kernelEntries, kernelSlots, pinLeaves, skipUnlessRoot, startApi, u32Hex } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const BL = '/v1/maps/firewall/blocklist/slots';
const A = '198.51.100.7';
const B = '203.0.113.9';

/** Every file under `dir` whose name marks a temporary record. */
function temporaries(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).map(String).filter((p) => p.includes('.tmp-'));
}

t.test('a full state directory: clean 500s, no temporary left per failure, the next write after space is freed succeeds', { skip }, async (t) => {
  const pinRoot = pinDir(t);
  const disk = smallTmpfs(t, '1m');
  const state = path.join(disk, 'state');
  const veth = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinRoot, veth.host, { stateDir: state }));
  const { api } = daemon;
  const v1 = await api('PUT', `${BL}/0`, { entries: [{ key: A, value: 1 }] });
  t.match(v1, { status: 201, body: { version: 1 } });
  const outerId = ((await api('GET', '/v1/maps/firewall/blocklist')).body as { mapId: number }).mapId;
  const slotPins = path.join(pinRoot, 'firewall', 'slots');
  const filler = path.join(disk, 'filler');
  t.ok(fillUp(filler) > 0, 'the state directory is full');

  // Each kind of change, again and again: every one of them writes a record first.
  const failing = [
    ['PUT', `${BL}/0`, { entries: [{ key: B, value: 1 }] }],
    ['POST', `${BL}/0/versions`, { entries: [{ key: B, value: 1 }] }],
    ['PATCH', `${BL}/0/entries`, { upsert: [{ key: B, value: 1 }] }],
    ['DELETE', `${BL}/0`, undefined],
    ['PUT', `${BL}/1`, { entries: [] }],
  ] as const;
  let failures = 0;
  for (let round = 0; round < 18; round++) {
    for (const [method, url, body] of failing) {
      const res = await api(method, url, body);
      if (res.status !== 500 || res.body?.code !== 'MIMD_STATE_WRITE_FAILED') t.fail(`${method} ${url}: ${res.status} ${JSON.stringify(res.body)}`);
      else failures += 1;
    }
  }
  t.equal(failures, 90, 'every change on the full disk answered 500 MIMD_STATE_WRITE_FAILED');
  t.same(temporaries(state), [], 'no temporary record left by 90 failed writes');
  t.same(kernelSlots(outerId), { [u32Hex(0)]: v1.body.mapId }, 'the kernel: slot 0 holds version 1, slot 1 nothing');
  t.same(kernelEntries(v1.body.mapId), { [firewallBytes.source(A)]: '01' }, 'version 1 unpatched');
  t.same(pinLeaves(slotPins), [`blocklist/${u32Hex(0)}/1`], 'no version of a failed change left pinned');
  t.match(await api('GET', `${BL}/0`), { status: 200, body: { activeVersion: 1, versions: [{ version: 1, entryCount: 1 }] } });

  fs.rmSync(filler);
  const v2 = await api('PUT', `${BL}/0`, { entries: [{ key: B, value: 1 }] });
  t.match(v2, { status: 200, body: { version: 2, previousVersion: 1 } }, 'with space again the next write succeeds, numbered as if nothing failed');
  t.same(kernelSlots(outerId), { [u32Hex(0)]: v2.body.mapId }, 'the kernel has version 2 in slot 0');
  t.same(kernelEntries(v2.body.mapId), { [firewallBytes.source(B)]: '01' });
  t.same(pinLeaves(slotPins), [1, 2].map((n) => `blocklist/${u32Hex(0)}/${n}`));
  const record = JSON.parse(fs.readFileSync(path.join(state, 'firewall', 'blocklist', 'slots', `${u32Hex(0)}.json`), 'utf8')) as Record<string, unknown>;
  t.match(record, { lastVersion: 2, active: 2, pending: null }, 'and the record on disk says so');
  t.same(temporaries(state), []);
  t.same(await daemon.stop('SIGTERM'), { code: 0, signal: null });
});
