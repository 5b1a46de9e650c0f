// Probes at the root, outside /v1: liveness (the process answers) and
// readiness (objects loaded and programs attached).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiOptions } from './index';
import { ProbeStatus } from '../schemas/common';

const healthRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots }) => {
  app.get('/healthz', { schema: { response: { 200: ProbeStatus } } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { response: { 200: ProbeStatus, 503: ProbeStatus } } }, async (_request, reply) => {
    if (slots.ready()) return { status: 'ready' };
    reply.code(503);
    return { status: 'starting' };
  });
};

export default healthRoutes;
