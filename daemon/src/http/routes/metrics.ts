// GET /metrics: Prometheus text format, for any principal with read scope.
import type { FastifyPluginAsync } from 'fastify';
import type { Metrics } from '../metrics';

const metricsRoutes: FastifyPluginAsync<{ metrics: Metrics }> = async (app, { metrics }) => {
  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });
};

export default metricsRoutes;
