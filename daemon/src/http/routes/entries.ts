// Entries of a slot's inner maps, read from the kernel a page at a time, and
// changed in place in the active one (no new version, no swap).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SLOT_PATH, type ApiOptions } from './index';
import { etag, parseIfMatch } from '../if-match';
import { SlotParams, VersionParams, errorResponses } from '../schemas/common';
import { EntriesQuery, EntryPage, PatchBody, PatchResult } from '../schemas/entries';

const entriesRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots }) => {
  app.get(
    `${SLOT_PATH}/entries`,
    { schema: { params: SlotParams, querystring: EntriesQuery, response: { 200: EntryPage, ...errorResponses } } },
    async (request) => {
      const { object, map, slot } = request.params;
      const { limit, cursor } = request.query;
      return slots.readEntries(object, map, slot, { limit, cursor });
    },
  );

  app.get(
    `${SLOT_PATH}/versions/:version/entries`,
    { schema: { params: VersionParams, querystring: EntriesQuery, response: { 200: EntryPage, ...errorResponses } } },
    async (request) => {
      const { object, map, slot, version } = request.params;
      const { limit, cursor } = request.query;
      return slots.readEntries(object, map, slot, { limit, cursor, version });
    },
  );

  app.patch(
    `${SLOT_PATH}/entries`,
    { schema: { params: SlotParams, body: PatchBody, response: { 200: PatchResult, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const expect = parseIfMatch(request.headers['if-match']);
      const result = await slots.patchEntries(object, map, slot, request.body, expect);
      reply.header('etag', etag(result.version));
      return result;
    },
  );
};

export default entriesRoutes;
