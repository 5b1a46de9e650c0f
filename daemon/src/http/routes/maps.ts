// GET /maps, GET /maps/:object/:map
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { ApiOptions } from './index';
import { MapParams, errorResponses } from '../schemas/common';
import { OuterMapDetail, OuterMapList } from '../schemas/maps';

const mapsRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots, visible }) => {
  app.get('/maps', { schema: { response: { 200: OuterMapList, ...errorResponses } } }, async (request) => ({
    maps: slots.listMaps().filter((m) => !visible || visible(request, `${m.object}/${m.name}`)),
  }));

  app.get(
    '/maps/:object/:map',
    { schema: { params: MapParams, response: { 200: OuterMapDetail, ...errorResponses } } },
    async (request) => slots.getMap(request.params.object, request.params.map),
  );
};

export default mapsRoutes;
