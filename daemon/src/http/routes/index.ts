// The API under /v1: one plugin per resource, each handed the slot service.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { SlotsApi } from '../../domain/slots-api';
import type { ReloadResult } from '../app';
import mapsRoutes from './maps';
import slotsRoutes from './slots';
import versionsRoutes from './versions';
import entriesRoutes from './entries';

export interface ApiOptions {
  slots: SlotsApi;
  /** what SIGHUP does: tokens and limits read again (admin scope) */
  reload?: (() => Promise<ReloadResult>) | undefined;
}

/** URL of one slot; every slot route hangs below it. */
export const SLOT_PATH = '/maps/:object/:map/slots/:slot';

const apiRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots, reload }) => {
  if (reload) {
    app.post('/reload', async () => reload());
  }
  await app.register(mapsRoutes, { slots });
  await app.register(slotsRoutes, { slots });
  await app.register(versionsRoutes, { slots });
  await app.register(entriesRoutes, { slots });
};

export default apiRoutes;
