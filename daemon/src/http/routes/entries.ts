// Entries of a slot's inner maps, read from the kernel a page at a time, and
// changed in place in the active one (no new version, no swap).
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { SLOT_PATH, type ApiOptions } from './index';
import { etag, parseIfMatch } from '../if-match';
import { SlotParams, VersionParams, errorResponses } from '../schemas/common';
import { EntriesQuery, EntryPage, PatchBody, PatchResult } from '../schemas/entries';
import { Readable } from 'node:stream';
import type { DumpFormat } from '../../domain/slots-api';
import { badInput } from '../../domain/errors';
import { dumpFormat, STREAM_MEDIA_TYPES } from '../streams';

const entriesRoutes: FastifyPluginAsyncTypebox<ApiOptions> = async (app, { slots }) => {
  app.get(
    `${SLOT_PATH}/entries`,
    { schema: { params: SlotParams, querystring: EntriesQuery, produces: DUMP_MEDIA_TYPES, response: { 200: EntryPage, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot } = request.params;
      const { limit, cursor } = request.query;
      const format = dumpFormat(request);
      if (format) return dump(reply, slots.dumpEntries(object, map, slot, format), format, cursor);
      return slots.readEntries(object, map, slot, { limit, cursor });
    },
  );

  app.get(
    `${SLOT_PATH}/versions/:version/entries`,
    { schema: { params: VersionParams, querystring: EntriesQuery, produces: DUMP_MEDIA_TYPES, response: { 200: EntryPage, ...errorResponses } } },
    async (request, reply) => {
      const { object, map, slot, version } = request.params;
      const { limit, cursor } = request.query;
      const format = dumpFormat(request);
      if (format) return dump(reply, slots.dumpEntries(object, map, slot, format, version), format, cursor);
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

/** Media types the entries of a version can be read in (OpenAPI). */
const DUMP_MEDIA_TYPES = ['application/json', 'application/x-ndjson', 'application/octet-stream'];

/**
 * The whole inner map as a stream (Accept: NDJSON or binary). The map, slot
 * and version were found before the first byte: errors before then are the
 * usual error answers; a kernel error midway cuts the answer short.
 */
function dump<R extends StreamReply>(reply: R, pieces: AsyncIterable<Buffer>, format: DumpFormat, cursor: string | undefined): R {
  if (cursor !== undefined) throw badInput('cursor', 'a streamed answer (NDJSON or binary) has every entry: leave out cursor');
  const type = Object.entries(STREAM_MEDIA_TYPES).find(([, f]) => f === format)![0];
  reply.type(format === 'ndjson' ? `${type}; charset=utf-8` : type);
  // Returning the reply tells Fastify the answer is on its way (async handlers).
  reply.send(Readable.from(pieces, { objectMode: false }));
  return reply;
}

/** The part of a reply a streamed answer needs; method syntax so any route's reply fits. */
interface StreamReply {
  type(contentType: string): unknown;
  send(payload: unknown): unknown;
}

export default entriesRoutes;
