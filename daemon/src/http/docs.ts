// The OpenAPI document of the API, generated from the routes' TypeBox
// schemas (@fastify/swagger), and its UI at /docs (@fastify/swagger-ui).
// Both are open to whoever reaches the listener: they describe the API,
// they hold no data.
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { App } from './app';

export function registerDocs(app: App): void {
  void app.register(swagger, {
    openapi: {
      info: {
        title: 'mimd',
        description: 'The map-in-map daemon: hot-swaps the inner maps of running eBPF programs. Over TCP every request needs a bearer token.',
        version: '1',
      },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
      security: [{ bearer: [] }],
    },
  });
  void app.register(swaggerUi, { routePrefix: '/docs' });
}
