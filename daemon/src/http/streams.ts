// Bodies and answers that are streams: a new version's entries as NDJSON
// (application/x-ndjson) or packed binary records (application/octet-stream),
// read while the inner map fills; and a whole inner map read back the same
// ways. JSON stays the API's language for everything else.
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import type { FastifyRequest } from 'fastify';
import type { DumpFormat, Labels, VersionBody, VersionInput } from '../domain/slots-api';
import { badInput, mimdError, UnsupportedMediaTypeError } from '../domain/errors';
import type { App } from './app';
import { uploadError } from './client-errors';

export const STREAM_MEDIA_TYPES: Record<string, DumpFormat> = {
  'application/x-ndjson': 'ndjson',
  'application/octet-stream': 'binary',
};

/** The streamed format of a media type the client named: own keys only (`toString` is not a format). */
function streamFormat(type: string): DumpFormat | undefined {
  return Object.hasOwn(STREAM_MEDIA_TYPES, type) ? STREAM_MEDIA_TYPES[type] : undefined;
}

/** A request body left unread for the route to stream (see registerStreamBodies). */
export class StreamBody {
  constructor(
    readonly stream: Readable,
    readonly format: DumpFormat,
    /** api.maxEntries when the request arrived */
    readonly requestLimit: number,
    /** the connection it comes on: how the stream ended, if it failed, is known there */
    readonly socket: Socket | null = null,
  ) {}

  /** Whether the client has sent the whole body: if not, the connection is closed after an error instead of reading on. */
  get consumed(): boolean {
    return this.stream.readableEnded;
  }
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** the route takes NDJSON and binary bodies as a stream (PUT of a slot, stage) */
    streamBody?: boolean;
  }
}

/**
 * NDJSON and binary bodies are handed to the route unread: no body limit
 * applies (api.maxEntries does, counted as the entries arrive). Routes that
 * do not stream answer 415 for them.
 */
export function registerStreamBodies(app: App, requestLimit: () => number): void {
  app.addContentTypeParser(Object.keys(STREAM_MEDIA_TYPES), (request, payload, done) => {
    const type = mediaType(request.headers['content-type']);
    const format = streamFormat(type);
    if (!request.routeOptions.config.streamBody || format === undefined) {
      done(
        mimdError(UnsupportedMediaTypeError, `Content-Type: ${type} is taken only by PUT of a slot and POST of a version; this route takes application/json`, {
          field: 'Content-Type',
        }),
        undefined,
      );
      return;
    }
    done(null, new StreamBody(payload as Readable, format, requestLimit(), request.raw.socket ?? null));
  });
}

function mediaType(header: string | undefined): string {
  return (header ?? '').split(';')[0]!.trim().toLowerCase();
}

/** Query parameters of PUT and stage that carry what a streamed body cannot. */
export interface UploadQuery {
  maxEntries?: number;
  label?: string | string[];
}

const LABEL_NAME = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const MAX_LABELS = 64;
const MAX_LABEL_VALUE = 255;

/** The version input of a PUT or stage: the JSON body as it is, or the stream with its query parameters. */
export function versionInput(body: unknown, query: UploadQuery): VersionInput {
  if (!(body instanceof StreamBody)) {
    if (query.maxEntries !== undefined || query.label !== undefined) {
      const field = query.maxEntries !== undefined ? 'maxEntries' : 'label';
      throw badInput(field, 'the maxEntries and label query parameters go with NDJSON and binary bodies; a JSON body carries maxEntries and labels itself');
    }
    return body as VersionBody;
  }
  const stream = clientPieces(body);
  const input: VersionInput = { format: body.format, body: stream, requestLimit: body.requestLimit, labels: labelsOf(query.label) };
  if (query.maxEntries !== undefined) input.maxEntries = query.maxEntries;
  return input;
}

/**
 * The body's pieces; a failure of the stream itself (the client went away,
 * or missed the deadline) becomes the client's error, so that no layer below
 * takes it for a kernel refusal.
 */
async function* clientPieces(body: StreamBody): AsyncGenerator<Buffer | string> {
  // destroyOnReturn false: a fill that stops early (bad entry) must not
  // destroy the request, and with it the socket the error answer goes out on.
  const pieces = body.stream.iterator({ destroyOnReturn: false });
  try {
    for await (const piece of pieces) yield piece as Buffer | string;
  } catch (err) {
    throw uploadError(err, body.socket);
  }
}

/** `label=name=value`, repeated. */
function labelsOf(label: string | string[] | undefined): Labels {
  const given = label === undefined ? [] : Array.isArray(label) ? label : [label];
  if (given.length > MAX_LABELS) throw badInput('label', `at most ${MAX_LABELS} labels, got ${given.length}`);
  // A Map, not an object: `constructor` or `toString` are names like any other.
  const labels = new Map<string, string>();
  given.forEach((text, i) => {
    const field = given.length === 1 ? 'label' : `label[${i}]`;
    const equals = text.indexOf('=');
    if (equals < 0) throw badInput(field, `expected name=value, got ${JSON.stringify(text.slice(0, 80))}`);
    const name = text.slice(0, equals);
    const value = text.slice(equals + 1);
    if (!LABEL_NAME.test(name)) throw badInput(field, `label name ${JSON.stringify(name.slice(0, 80))} does not match ${LABEL_NAME.source}`);
    if (value.length > MAX_LABEL_VALUE) throw badInput(field, `label value longer than ${MAX_LABEL_VALUE} characters`);
    if (labels.has(name)) throw badInput(field, `label ${name} given twice`);
    labels.set(name, value);
  });
  return Object.fromEntries(labels) as Labels;
}

/**
 * The streamed form the client asks for in Accept, or null for a JSON page.
 * Only an explicit NDJSON or binary media type streams; `*\/*` and JSON do not.
 */
export function dumpFormat(request: FastifyRequest): DumpFormat | null {
  const accept = request.headers.accept;
  if (!accept) return null;
  // The first of the types mimd answers in, in the client's order.
  for (const part of accept.split(',')) {
    const type = mediaType(part);
    if (type === 'application/json') return null;
    const format = streamFormat(type);
    if (format !== undefined) return format;
  }
  return null;
}

/**
 * Builds a version from the request body (PUT, stage). After an error, an
 * upload not read to its end gets its connection closed: reading on would
 * only fill the map that was just thrown away.
 */
export async function fromUpload<T>(
  body: unknown,
  query: UploadQuery,
  reply: { header(name: string, value: string): unknown },
  build: (input: VersionInput) => Promise<T>,
): Promise<T> {
  try {
    return await build(versionInput(body, query));
  } catch (err) {
    if (body instanceof StreamBody && !body.consumed) reply.header('connection', 'close');
    throw err;
  }
}
