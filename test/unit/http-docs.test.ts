// The API's OpenAPI document (from the routes' TypeBox schemas) and its UI at
// /docs, open to whoever reaches the listener.
import t from 'tap';
import type { ReloadResult } from '../../daemon/src/http/app';
import { json, testApp } from '../helpers/fake-slots';

const RELOADED: ReloadResult = { tokens: 0, limits: { maxEntries: 1, rateLimit: { max: 1, windowMs: 1000 } } };

interface OpenApi {
  openapi: string;
  info: { title: string; version: string };
  paths: Record<string, Record<string, { responses?: Record<string, unknown>; requestBody?: unknown; parameters?: { name: string; in: string }[] }>>;
  components: { securitySchemes: Record<string, unknown>; schemas?: unknown };
  security: unknown[];
}

const SLOT = '/v1/maps/{object}/{map}/slots/{slot}';

t.test('GET /docs/json: an OpenAPI 3 document of the /v1 routes, with bearer security', async (t) => {
  const { app } = testApp(t, { transport: 'tcp', reload: async () => RELOADED });
  const res = await app.inject({ method: 'GET', url: '/docs/json' });
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^application\/json/);
  const doc = json(res) as unknown as OpenApi;
  t.match(doc.openapi, /^3\.\d+\.\d+$/);
  t.equal(doc.info.title, 'mimd');
  t.strictSame(doc.components.securitySchemes, { bearer: { type: 'http', scheme: 'bearer' } });
  t.strictSame(doc.security, [{ bearer: [] }]);

  const methods = (path: string) => Object.keys(doc.paths[path] ?? {}).sort();
  t.strictSame(methods('/v1/maps'), ['get']);
  t.strictSame(methods('/v1/maps/{object}/{map}'), ['get']);
  t.strictSame(methods('/v1/maps/{object}/{map}/slots'), ['get']);
  t.strictSame(methods(SLOT), ['delete', 'get', 'put']);
  t.strictSame(methods(`${SLOT}/versions`), ['get', 'post']);
  t.strictSame(methods(`${SLOT}/versions/{version}/activate`), ['post']);
  t.strictSame(methods(`${SLOT}/rollback`), ['post']);
  t.strictSame(methods(`${SLOT}/entries`), ['get', 'patch']);
  t.strictSame(methods(`${SLOT}/versions/{version}/entries`), ['get']);
  t.strictSame(methods('/v1/reload'), ['post']);
  t.notOk(doc.paths['/metrics'], '/metrics is not part of the API description');

  const put = doc.paths[SLOT]!.put!;
  t.ok(put.requestBody, 'PUT has its body schema');
  t.ok(put.responses?.['200'] && put.responses['201'], 'PUT answers 200 or 201');
  t.strictSame(
    (put.parameters ?? []).filter((p) => p.in === 'path').map((p) => p.name).sort(),
    ['map', 'object', 'slot'],
    'path parameters',
  );
});

t.test('GET /docs serves the UI: HTML, or a redirect to it', async (t) => {
  const { app } = testApp(t, { transport: 'tcp' });
  let res = await app.inject({ method: 'GET', url: '/docs' });
  for (let hops = 0; res.statusCode >= 300 && res.statusCode < 400 && hops < 3; hops++) {
    const location = String(res.headers.location);
    t.ok(location, 'a redirect says where');
    res = await app.inject({ method: 'GET', url: new URL(location, 'http://localhost/docs').pathname });
  }
  t.equal(res.statusCode, 200);
  t.match(res.headers['content-type'], /^text\/html/);
  t.match(res.body, /swagger-ui/i);
});

t.test('the document is also served as YAML', async (t) => {
  const { app } = testApp(t, { transport: 'tcp' });
  const res = await app.inject({ method: 'GET', url: '/docs/yaml' });
  t.equal(res.statusCode, 200);
  t.match(res.body, /^openapi: 3\./m);
  t.match(res.body, /\/v1\/maps/);
});
