// The API under /v1: one plugin per resource, each handed the slot service.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { FastifyRequest } from 'fastify';
import type { SlotsApi } from '../../domain/slots-api';
import type { ReloadResult } from '../app';
import mapsRoutes from './maps';
import slotsRoutes from './slots';
import versionsRoutes from './versions';
import entriesRoutes from './entries';
import kernelRoutes from './kernel';
import type { KernelReport } from '../../domain/kernel-features';

export interface ApiOptions {
  slots: SlotsApi;
  /** what SIGHUP does: tokens and limits read again (admin scope) */
  reload?: (() => Promise<ReloadResult>) | undefined;
  /** whether the request's principal may see an outer map ("object/map"); lists leave out the others */
  visible?: ((request: FastifyRequest, map: string) => boolean) | undefined;
  /** GET /kernel: the kernel feature probes and the swap strategy (null until the slots are restored) */
  kernel?: (() => KernelReport | null) | undefined;
}

/** URL of one slot; every slot route hangs below it. */
export const SLOT_PATH = '/maps/:object/:map/slots/:slot';

const apiRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots, reload, visible, kernel }) => {
  if (reload) {
    app.post('/reload', async () => reload());
  }
  await app.register(mapsRoutes, { slots, visible });
  await app.register(slotsRoutes, { slots });
  await app.register(versionsRoutes, { slots });
  await app.register(entriesRoutes, { slots });
  if (kernel) await app.register(kernelRoutes, { kernel });
};

export default apiRoutes;
