// The kernel probes in the daemon: one `kernel features` log line at start,
// GET /v1/kernel, and the HASH_OF_MAPS safe mode end to end. This kernel's
// replace is atomic, so the refusal runs under MIMD_ASSUME_NON_ATOMIC_REPLACE
// (the start then warns as it would before 6.16): a swap into an occupied
// policy slot is refused with the configuration key named and nothing
// changes; an empty slot is filled, DELETE then PUT takes the gap knowingly,
// and the ARRAY_OF_MAPS blocklist is not affected.
import t from 'tap';
import { pinDir, vethPair } from '../helpers/sandbox';
import { FIREWALL_MAPS, ensureBuilt, firewallConfig, kernelSlots, skipUnlessRoot, startApi } from '../helpers/daemon';

const skip = skipUnlessRoot;
if (!skip) ensureBuilt();

const POLICY = '/v1/maps/firewall/policy/slots';
const refusing = { ...FIREWALL_MAPS, policy: { ...(FIREWALL_MAPS['policy'] as object), onNonAtomicReplace: 'refuse' } };
const rule = (verdict: 'pass' | 'drop') => ({ entries: [{ key: '10.0.0.0/8', value: { verdict } }] });

t.test('the probes at start and GET /v1/kernel', { skip }, async (t) => {
  const { host } = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinDir(t), host, { maps: refusing }));
  const lines = daemon.logs.filter((l) => l.msg === 'kernel features');
  t.equal(lines.length, 1, 'one kernel features line');
  t.match(lines[0], { batchOuterMaps: true, innerMapFlag: true, atomicHashOfMapsReplace: true, swapStrategy: 'batch', linkTypes: { xdp: true } });
  t.notOk(daemon.logs.some((l) => String(l.msg).includes('not atomic')), 'no warning where replace is atomic');

  const res = await daemon.api('GET', '/v1/kernel');
  t.equal(res.status, 200);
  t.equal(res.body.swapStrategy, 'batch');
  t.equal(res.body.features.atomicHashOfMapsReplace.value, true);
  t.strictSame(Object.keys(res.body.features.linkTypes), ['xdp'], 'only the configured kinds of attachment');
  t.strictSame(res.body.hashOfMaps, [{ map: 'firewall/policy', field: 'objects[0].maps.policy.onNonAtomicReplace', policy: 'refuse', atRisk: false }]);

  // Atomic here: refuse changes nothing, a replace goes through.
  t.match(await daemon.api('PUT', `${POLICY}/7`, rule('pass')), { status: 201 });
  t.match(await daemon.api('PUT', `${POLICY}/7`, rule('drop')), { status: 200, body: { version: 2 } });
  await daemon.stop();
});

t.test('onNonAtomicReplace: refuse where replace is not atomic', { skip }, async (t) => {
  const { host } = vethPair(t);
  const daemon = await startApi(t, firewallConfig(pinDir(t), host, { maps: refusing }), { env: { MIMD_ASSUME_NON_ATOMIC_REPLACE: '1' } });
  const warning = daemon.logs.find((l) => l.map === 'firewall/policy' && l.level === 40);
  t.match(warning, { field: 'objects[0].maps.policy.onNonAtomicReplace', policy: 'refuse', atomicHashOfMapsReplace: false }, 'warned at start');
  t.notOk(daemon.logs.some((l) => l.map === 'firewall/blocklist' && l.level === 40), 'ARRAY_OF_MAPS: no warning');

  const report = await daemon.api('GET', '/v1/kernel');
  t.match(report.body.hashOfMaps, [{ map: 'firewall/policy', policy: 'refuse', atRisk: true }]);

  t.match(await daemon.api('PUT', `${POLICY}/7`, rule('pass')), { status: 201, body: { version: 1 } }, 'an empty slot is filled');
  const mapId = (await daemon.api('GET', `${POLICY}/7`)).body.kernelMapId as number;
  const policyId = (await daemon.api('GET', '/v1/maps/firewall/policy')).body.mapId as number;

  const refused = await daemon.api('PUT', `${POLICY}/7`, rule('drop'));
  t.equal(refused.status, 409);
  t.equal(refused.body.code, 'MIMD_NON_ATOMIC_REPLACE');
  t.equal(refused.body.field, 'slot');
  t.match(refused.body.message, /objects\[0\]\.maps\.policy\.onNonAtomicReplace is refuse/);

  const slot = await daemon.api('GET', `${POLICY}/7`);
  t.equal(slot.body.activeVersion, 1, 'still version 1');
  t.strictSame(slot.body.versions.map((v: { version: number }) => v.version), [1], 'no version 2 was kept');
  t.equal(slot.body.kernelMapId, mapId, 'the kernel slot holds the same inner map');
  t.equal(kernelSlots(policyId)[Object.keys(kernelSlots(policyId))[0] ?? ''], mapId, 'bpftool agrees');
  t.match(await daemon.api('GET', `${POLICY}/7/entries`), { status: 200, body: { entries: [{ key: '10.0.0.0/8', value: { verdict: 'pass' } }] } });

  t.match(await daemon.api('DELETE', `${POLICY}/7`), { status: 200 }, 'clearing is allowed: the gap is asked for');
  t.match(await daemon.api('PUT', `${POLICY}/7`, rule('drop')), { status: 201 }, 'then the slot is filled again');

  t.match(await daemon.api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [] }), { status: 201 });
  t.match(await daemon.api('PUT', '/v1/maps/firewall/blocklist/slots/0', { entries: [] }), { status: 200 }, 'ARRAY_OF_MAPS replace is not refused');
  await daemon.stop();
});
