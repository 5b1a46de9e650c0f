// The slots of an outer map: list, read one, replace its contents (PUT),
// empty it (DELETE), roll it back.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SLOT_PATH, type ApiOptions } from './index';
import { etag, parseIfMatch } from '../if-match';
import { MapParams, SlotParams, errorResponses } from '../schemas/common';
import { ClearResult, RollbackBody, SlotDetail, SlotList, SwapResult } from '../schemas/slots';
import { UploadQuery, VERSION_MEDIA_TYPES, VersionBody } from '../schemas/versions';
import { fromUpload } from '../streams';

const slotsRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots }) => {
  app.get(
    '/maps/:object/:map/slots',
    { schema: { params: MapParams, response: { 200: SlotList, ...errorResponses } } },
    async (request) => ({ slots: slots.listSlots(request.params.object, request.params.map) }),
  );

  app.get(
    SLOT_PATH,
    { schema: { params: SlotParams, response: { 200: SlotDetail, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const detail = slots.getSlot(object, map, slot);
      reply.header('etag', etag(detail.activeVersion));
      return detail;
    },
  );

  app.put(
    SLOT_PATH,
    {
      config: { streamBody: true },
      schema: {
        params: SlotParams,
        querystring: UploadQuery,
        body: VersionBody,
        consumes: VERSION_MEDIA_TYPES,
        response: { 200: SwapResult, 201: SwapResult, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const result = await fromUpload(request.body, request.query, reply, (input) =>
        slots.putSlot(object, map, slot, input, parseIfMatch(request.headers['if-match'])),
      );
      reply.code(result.created ? 201 : 200).header('etag', etag(result.version));
      return result;
    },
  );

  app.delete(
    SLOT_PATH,
    { schema: { params: SlotParams, response: { 200: ClearResult, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const expect = parseIfMatch(request.headers['if-match']);
      const result = await slots.clearSlot(object, map, slot, expect);
      reply.header('etag', etag(null));
      return result;
    },
  );

  app.post(
    `${SLOT_PATH}/rollback`,
    { schema: { params: SlotParams, body: RollbackBody, response: { 200: SwapResult, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const expect = parseIfMatch(request.headers['if-match']);
      const result = await slots.rollback(object, map, slot, request.body?.version, expect);
      reply.header('etag', etag(result.version));
      return result;
    },
  );
};

export default slotsRoutes;
