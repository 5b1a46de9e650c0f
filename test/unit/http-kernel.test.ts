// GET /v1/kernel: the probe report passed through whole (every field survives
// serialization), 503 while mimd is still starting, read scope is enough.
import t from 'tap';
import pino from 'pino';
import { buildApp } from '../../daemon/src/http/app';
import { AccessControl } from '../../daemon/src/http/auth';
import { Metrics } from '../../daemon/src/http/metrics';
import type { KernelReport } from '../../daemon/src/domain/kernel-features';
import { FakeSlots, TEST_LIMITS, TOKEN_CONFIG, TOKENS, bearer, json } from '../helpers/fake-slots';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const REPORT: KernelReport = {
  features: {
    release: '6.18.0-test',
    cpus: 2,
    batchOuterMaps: { value: true, detail: 'BPF_MAP_UPDATE_BATCH of 2 slots of an ARRAY_OF_MAPS succeeded' },
    oneWaitPerBatch: { value: 'indistinguishable', detail: 'waits too short', singleMs: 0.2, batchMs: 0.3, slots: 8, rounds: 5 },
    innerMapFlag: { value: true, detail: 'accepted' },
    linkTypes: {
      xdp: { value: true, errno: 'EOPNOTSUPP', detail: 'past the link type' },
      tcx: { value: false, errno: 'EINVAL', detail: 'unknown link type' },
    },
    atomicHashOfMapsReplace: { value: false, detail: 'moved', relinks: true, lookups: 1600, missed: 3, replaces: 20 },
    swapStrategy: 'batch',
    probeMs: 350,
  },
  swapStrategy: 'concurrent',
  hashOfMaps: [{ map: 'firewall/policy', field: 'objects[0].maps.policy.onNonAtomicReplace', policy: 'refuse', atRisk: true }],
};

function app(t: Test, kernel: () => KernelReport | null) {
  const slots = new FakeSlots();
  const metrics = new Metrics(slots);
  const built = buildApp({
    slots,
    logger: pino({ level: 'silent' }),
    bodyLimit: 1024 * 1024,
    transport: 'tcp',
    access: new AccessControl({ tokens: TOKEN_CONFIG, socketScope: 'admin' }),
    audit: () => undefined,
    metrics,
    limits: () => TEST_LIMITS,
    requestTimeoutMs: 30_000,
    kernel,
  });
  t.teardown(async () => {
    await built.close();
    metrics.close();
  });
  return built;
}

t.test('GET /v1/kernel answers the report whole', async (t) => {
  const server = app(t, () => REPORT);
  const res = await server.inject({ method: 'GET', url: '/v1/kernel', headers: bearer(TOKENS.reader) });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), REPORT as unknown as Record<string, unknown>);
});

t.test('a report without probe results (the probes could not run)', async (t) => {
  const report: KernelReport = { features: null, swapStrategy: 'batch', hashOfMaps: [] };
  const server = app(t, () => report);
  const res = await server.inject({ method: 'GET', url: '/v1/kernel', headers: bearer(TOKENS.reader) });
  t.equal(res.statusCode, 200);
  t.strictSame(json(res), report as unknown as Record<string, unknown>);
});

t.test('503 while mimd is starting', async (t) => {
  const server = app(t, () => null);
  const res = await server.inject({ method: 'GET', url: '/v1/kernel', headers: bearer(TOKENS.reader) });
  t.equal(res.statusCode, 503);
  t.equal(json(res)['code'], 'MIMD_NOT_READY');
});

t.test('no token: 401 like every other route', async (t) => {
  const server = app(t, () => REPORT);
  const res = await server.inject({ method: 'GET', url: '/v1/kernel' });
  t.equal(res.statusCode, 401);
});

t.test('the API description has GET /v1/kernel with its answer', async (t) => {
  const server = app(t, () => REPORT);
  const res = await server.inject({ method: 'GET', url: '/docs/json' });
  t.equal(res.statusCode, 200);
  const doc = json(res) as { paths: Record<string, Record<string, { responses?: Record<string, unknown> }>> };
  t.ok(doc.paths['/v1/kernel']?.['get']?.responses?.['200'], 'GET /v1/kernel answers 200 with a schema');
});
