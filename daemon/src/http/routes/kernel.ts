// GET /kernel: what the kernel feature probes found at start, the swap
// strategy in use, and each HASH_OF_MAPS map's replace policy.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { KernelReport as KernelReportData } from '../../domain/kernel-features';
import { mimdError, NotReadyError } from '../../domain/errors';
import { errorResponses } from '../schemas/common';
import { KernelReport } from '../schemas/kernel';

const kernelRoutes: FastifyPluginAsyncTypebox<{ kernel: () => KernelReportData | null }> = async (app, { kernel }) => {
  app.get('/kernel', { schema: { response: { 200: KernelReport, ...errorResponses } } }, async () => {
    const report = kernel();
    if (!report) throw mimdError(NotReadyError, 'kernel: mimd is still starting', { retryAfter: 1 });
    return report;
  });
};

export default kernelRoutes;
