// Versions of a slot: stage one without making it active, list the retained
// ones, swap one into the slot.
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SLOT_PATH, type ApiOptions } from './index';
import { etag, parseIfMatch } from '../if-match';
import { SlotParams, VersionParams, errorResponses } from '../schemas/common';
import { SwapResult } from '../schemas/slots';
import { UploadQuery, VERSION_MEDIA_TYPES, VersionBody, VersionList, VersionView } from '../schemas/versions';
import { fromUpload } from '../streams';

const versionsRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots }) => {
  app.post(
    `${SLOT_PATH}/versions`,
    {
      config: { streamBody: true },
      schema: {
        params: SlotParams,
        querystring: UploadQuery,
        body: VersionBody,
        consumes: VERSION_MEDIA_TYPES,
        response: { 201: VersionView, ...errorResponses },
      },
    },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const staged = await fromUpload(request.body, request.query, reply, (input) => slots.stageVersion(object, map, slot, input));
      // No ETag: staging does not tell which version is active.
      reply.code(201);
      return staged;
    },
  );

  app.get(
    `${SLOT_PATH}/versions`,
    { schema: { params: SlotParams, response: { 200: VersionList, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const versions = slots.listVersions(object, map, slot);
      reply.header('etag', etag(versions.find((v) => v.state === 'active')?.version ?? null));
      return { versions };
    },
  );

  app.post(
    `${SLOT_PATH}/versions/:version/activate`,
    { schema: { params: VersionParams, response: { 200: SwapResult, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot, version } = request.params;
      const expect = parseIfMatch(request.headers['if-match']);
      const result = await slots.activate(object, map, slot, version, expect);
      reply.header('etag', etag(result.version));
      return result;
    },
  );
};

export default versionsRoutes;
