// The HTTP API as a Fastify instance that does not listen (main.ts does):
// health probes at the root, the API under /v1, and the one place where
// errors become responses.
import Fastify, {
  LogController,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
  type FastifySchemaCompiler,
  type FastifySchemaValidationError,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import type { TSchema } from '@sinclair/typebox';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { Value } from '@sinclair/typebox/value';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import createError from '@fastify/error';
import rateLimit from '@fastify/rate-limit';
import { badInput, isMimdError, mimdError, TooManyEntriesError } from '../domain/errors';
import type { SlotsApi } from '../domain/slots-api';
import type { KernelReport } from '../domain/kernel-features';
import type { Scope } from '../config/schema';
import apiRoutes from './routes/index';
import healthRoutes from './routes/health';
import metricsRoutes from './routes/metrics';
import { registerDocs } from './docs';
import { registerStreamBodies, StreamBody } from './streams';
import { answerClientError } from './client-errors';
import type { AccessControl, Principal, Transport } from './auth';
import { actorOf, auditAction, outcomeOf, type AuditRecord, type AuditSink } from './audit';
import type { Metrics } from './metrics';

/** Limits SIGHUP may change: read on every request. */
export interface Limits {
  /** most entries one PUT, stage or PATCH may carry (413 above) */
  maxEntries: number;
  /** changes per principal per window (429 above) */
  rateLimit: { max: number; windowMs: number };
}

export interface ReloadResult {
  tokens: number;
  limits: Limits;
}

export interface AppOptions {
  slots: SlotsApi;
  logger: Logger;
  /** largest request body in bytes; larger ones get 413 */
  bodyLimit: number;
  /** which listener this app serves: the unix socket lets peers in by the socket's mode, TCP only by token */
  transport: Transport;
  access: AccessControl;
  /** the uid of the peer of a unix socket connection */
  peer?: (socket: Socket) => { uid: number } | null;
  audit: AuditSink;
  metrics: Metrics;
  limits: () => Limits;
  /** time to receive a whole request, milliseconds */
  requestTimeoutMs: number;
  /** TLS for the TCP listener */
  https?: { key: Buffer; cert: Buffer };
  /** POST /v1/reload (admin): what SIGHUP does */
  reload?: () => Promise<ReloadResult>;
  /** GET /v1/kernel: the kernel feature probes and the swap strategy */
  kernel?: () => KernelReport | null;
}

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    /** the answer's body, kept for the audit record and metrics */
    answer?: unknown;
    /** the request's audit record is written */
    audited?: boolean;
  }
}

export const RateLimitedError = createError('MIMD_RATE_LIMITED', '%s', 429);

/** Routes anyone who can reach the listener may call: probes and the API's description. */
const OPEN_PATHS = /^\/(healthz|readyz|docs)(\/|$|\?)/;
const READ_METHODS = new Set(['GET', 'HEAD']);

/** The app as built: pino's Logger and TypeBox's types, so routes added later are typed too. */
export type App = FastifyInstance<RawServerDefault, RawRequestDefaultExpression, RawReplyDefaultExpression, Logger, TypeBoxTypeProvider>;

/** The body of every error response. */
export interface ErrorReply {
  code: string;
  message: string;
  field?: string;
  errno?: string;
}

/**
 * A hex slot of a HASH_OF_MAPS is "0x" and two digits per key byte: longer
 * than find-my-way's default of 100 characters for big keys. Beyond this the
 * route is not found at all; the slot schema answers 400 well before.
 */
const MAX_PARAM_LENGTH = 2048;

/** Seconds a client waits before retrying a 503 that did not say. */
const DEFAULT_RETRY_AFTER = 1;

export function buildApp(options: AppOptions): App {
  const { slots } = options;
  const app = Fastify({
    loggerInstance: options.logger,
    // Two synchronous log lines per request (Fastify's default at info) cost
    // more than a GET itself: changes are logged and audited on their own;
    // every request is logged at debug (onResponse below).
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: options.bodyLimit,
    routerOptions: { maxParamLength: MAX_PARAM_LENGTH },
    schemaErrorFormatter: validationError,
    // Receiving a request has a deadline (slow clients); handling one does
    // not: a million-entry fill may run longer, with the socket idle.
    requestTimeout: options.requestTimeoutMs,
    ...(options.https ? { https: { ...options.https, ...serverTimeouts(options.requestTimeoutMs) } } : { http: serverTimeouts(options.requestTimeoutMs) }),
    clientErrorHandler: answerClientError,
  }).withTypeProvider<TypeBoxTypeProvider>() as unknown as App;

  app.setValidatorCompiler(typeBoxValidator);
  // JSON only: a text/plain body would reach the schema as a string and fail
  // with a confusing message instead of 415.
  app.removeContentTypeParser('text/plain');
  registerStreamBodies(app, () => options.limits().maxEntries);
  app.setErrorHandler(handleError);
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ code: 'MIMD_NOT_FOUND', message: `no route ${request.method} ${request.url.slice(0, 200)}` });
  });

  guard(app, options);
  registerDocs(app);
  void app.register(rateLimit, {
    // After onRequest's authentication: the limit is per principal.
    hook: 'preHandler',
    keyGenerator: (request) => request.principal?.id ?? request.ip ?? 'anonymous',
    max: async () => options.limits().rateLimit.max,
    timeWindow: async () => options.limits().rateLimit.windowMs,
    // Reads are never limited: a flood of changes must not lock operators out of looking.
    allowList: (request) => READ_METHODS.has(request.method) || OPEN_PATHS.test(request.url),
    errorResponseBuilder: (request, context) =>
      mimdError(RateLimitedError, `${request.principal?.id ?? 'this client'} made more than ${context.max} changes in ${context.after === '' ? 'the window' : 'the window'}; retry in ${context.after}`, {
        retryAfter: Math.max(1, Math.ceil(context.ttl / 1000)),
      }),
  });
  void app.register(healthRoutes, { slots });
  void app.register(metricsRoutes, { metrics: options.metrics });
  void app.register(apiRoutes, {
    prefix: '/v1',
    slots,
    reload: options.reload,
    kernel: options.kernel,
    visible: (request, map) => !request.principal || options.access.canSee(request.principal, map),
  });
  return app;
}

/**
 * Node checks request deadlines every connectionsCheckingInterval (30 s by
 * default): check often enough that a stalled client is cut off near its
 * deadline, and give headers the same deadline as the whole request.
 */
function serverTimeouts(requestTimeoutMs: number): { headersTimeout: number; requestTimeout: number; connectionsCheckingInterval: number } {
  return {
    headersTimeout: requestTimeoutMs,
    requestTimeout: requestTimeoutMs,
    connectionsCheckingInterval: Math.max(100, Math.min(1000, Math.floor(requestTimeoutMs / 4))),
  };
}

/**
 * Authentication and authorization (onRequest), the entry limit
 * (preValidation), and one audit record plus metrics per answered request
 * (onResponse).
 */
function guard(app: App, options: AppOptions): void {
  const { access, transport } = options;
  app.addHook('onRequest', async (request) => {
    if (OPEN_PATHS.test(request.url)) return;
    const peer = transport === 'unix' ? (options.peer?.(request.socket) ?? null) : null;
    const address = transport === 'tcp' ? (request.socket?.remoteAddress ?? null) : null;
    const principal = access.identify(transport, request.headers.authorization, peer, address);
    request.principal = principal;
    const params = request.params as { object?: string; map?: string } | undefined;
    const map = params?.object !== undefined && params.map !== undefined ? `${params.object}/${params.map}` : null;
    access.authorize(principal, scopeNeeded(request.method, request.routeOptions.url), map);
  });

  app.addHook('preValidation', async (request) => {
    const body = request.body as { entries?: unknown; upsert?: unknown; delete?: unknown } | null | undefined;
    if (!body || typeof body !== 'object') return;
    const { maxEntries } = options.limits();
    const count = (v: unknown): number => (Array.isArray(v) ? v.length : 0);
    const entries = count(body.entries) + count(body.upsert) + count(body.delete);
    if (entries > maxEntries) {
      const field = Array.isArray(body.entries) ? 'entries' : count(body.upsert) > 0 ? 'upsert' : 'delete';
      throw mimdError(TooManyEntriesError, `${field}: ${entries} entries in one request; at most ${maxEntries} (api.maxEntries)`, { field });
    }
  });

  app.addHook('onResponse', async (request, reply) => {
    if (options.logger.isLevelEnabled('debug')) {
      request.log.debug({ method: request.method, url: request.url.slice(0, 512), statusCode: reply.statusCode, ms: reply.elapsedTime }, 'request');
    }
  });

  app.addHook('preSerialization', async (request, _reply, payload) => {
    request.answer = payload;
    return payload;
  });

  // The record is made as the answer is sent (onSend), not once it has
  // arrived (onResponse): a change whose client went away is recorded too.
  const knownMaps = new Set(options.slots.listMaps().map((m) => `${m.object}/${m.name}`));
  app.addHook('onSend', async (request, reply, payload) => {
    if (request.audited) return payload;
    request.audited = true;
    const mutation = !READ_METHODS.has(request.method) && request.method !== 'OPTIONS';
    const route = request.routeOptions.url;
    const action = mutation ? auditAction(request.method, route) : 'unknown';
    const body = request.answer !== null && typeof request.answer === 'object' ? (request.answer as Record<string, unknown>) : null;
    const failed = reply.statusCode >= 400;
    const outcome = outcomeOf(action, body, failed);
    const params = (request.params ?? {}) as { object?: string; map?: string; slot?: string };
    const map = params.object !== undefined && params.map !== undefined ? `${params.object}/${params.map}` : null;
    // Label values come from the URL: only maps mimd has, or anyone could grow the series without end.
    const metricMap = map !== null && knownMaps.has(map) ? map : null;
    options.metrics.observe(mutation ? action : 'unknown', metricMap, reply.statusCode, outcome.code, typeof body?.swapMs === 'number' ? body.swapMs : null);
    if (!mutation) return payload;
    if (failed && map !== null && params.slot !== undefined) {
      // What the slot holds now, which a failed change left as it was.
      try {
        const now = options.slots.getSlot(params.object ?? '', params.map ?? '', params.slot);
        outcome.oldVersion = now.activeVersion;
        outcome.oldMapId = now.kernelMapId;
      } catch {
        // no such map or slot: nothing to say
      }
    }
    const peerUid = request.principal?.uid ?? (transport === 'unix' ? (options.peer?.(request.socket)?.uid ?? null) : null);
    const record: AuditRecord = {
      time: new Date().toISOString(),
      requestId: String(request.id),
      actor: actorOf(request.principal, transport, peerUid, transport === 'tcp' ? (request.socket?.remoteAddress ?? null) : null),
      action,
      method: request.method,
      url: request.url.slice(0, 512),
      map,
      slot: params.slot ?? null,
      ...outcome,
      result: failed ? 'error' : 'ok',
      status: reply.statusCode,
    };
    try {
      options.audit(record);
    } catch (err) {
      request.log.error({ err }, 'cannot write an audit record');
    }
    return payload;
  });
}

function scopeNeeded(method: string, route: string | undefined): Scope {
  if (route?.endsWith('/reload')) return 'admin';
  return READ_METHODS.has(method) ? 'read' : 'write';
}

// ---------------------------------------------------------------------------
// Validation. TypeBox's own compiler checks exactly what the TypeScript types
// say: no coercion of bodies (Ajv's coerceTypes would turn "5" into 5 and
// removeAdditional would drop a misspelt key silently). URL parts are strings
// by nature, so their integer fields are converted first, strictly: "1.5",
// "0x10" or "1e3" stay strings and fail as not integers.

const typeBoxValidator: FastifySchemaCompiler<TSchema> = ({ schema, httpPart }) => {
  const check = TypeCompiler.Compile(schema);
  const fromUrl = httpPart === 'querystring' || httpPart === 'params' || httpPart === 'headers';
  return (data: unknown) => {
    // NDJSON and binary bodies are checked entry by entry as they are read.
    if (httpPart === 'body' && data instanceof StreamBody) return { value: data };
    const value = fromUrl ? convertUrlValues(schema, Value.Default(schema, data)) : data;
    if (check.Check(value)) return { value };
    const first = check.Errors(value).First();
    const error = first === undefined ? undefined : innermost(first);
    return {
      error: [
        {
          keyword: error === undefined ? 'type' : ValueErrorType[error.type],
          instancePath: error?.path ?? '',
          schemaPath: '',
          params: {},
          message: error === undefined ? 'invalid' : describe(error),
        },
      ],
    };
  };
};

const DECIMAL = { integer: /^-?[0-9]{1,16}$/, number: /^-?[0-9]{1,16}(\.[0-9]{1,16})?$/ } as const;

/** Query strings and URL parameters are flat: only top-level numeric properties need converting. */
function convertUrlValues(schema: TSchema, data: unknown): unknown {
  const properties = (schema as { properties?: Record<string, { type?: unknown }> }).properties;
  if (properties === undefined || data === null || typeof data !== 'object') return data;
  const out: Record<string, unknown> = { ...(data as Record<string, unknown>) };
  for (const [key, value] of Object.entries(out)) {
    // Own properties only: a parameter named `constructor` is unknown, not Object's.
    const type = Object.hasOwn(properties, key) ? properties[key]?.type : undefined;
    if (typeof value === 'string' && (type === 'integer' || type === 'number') && DECIMAL[type].test(value)) {
      out[key] = Number(value);
    }
  }
  return out;
}

/**
 * A union's own error ("Expected union value") says nothing; the branch that
 * got furthest into the value usually says what is wrong.
 */
function innermost(error: ValueError): ValueError {
  if (error.type !== ValueErrorType.Union) return error;
  let best = error;
  for (const branch of error.errors) {
    const first = branch.First();
    if (first !== undefined && first.path.length > best.path.length) best = innermost(first);
  }
  return best;
}

function describe(error: ValueError): string {
  switch (error.type) {
    case ValueErrorType.ObjectRequiredProperty:
      return 'missing';
    case ValueErrorType.ObjectAdditionalProperties: {
      const patterns = Object.keys((error.schema as { patternProperties?: object }).patternProperties ?? {});
      return patterns.length > 0 ? `name does not match ${patterns.join(' or ')}` : 'unknown property';
    }
    case ValueErrorType.Union: {
      const branches = ((error.schema as { anyOf?: { type?: unknown }[] }).anyOf ?? []).map((s) => String(s.type ?? 'value'));
      return `expected ${branches.join(' or ')}`;
    }
    default:
      return error.message.charAt(0).toLowerCase() + error.message.slice(1);
  }
}

/** The one error for a failed schema: the first problem, with its field named like `entries[3].key`. */
function validationError(errors: FastifySchemaValidationError[], dataVar: string): Error {
  const first = errors[0];
  return badInput(fieldOf(first?.instancePath ?? '', dataVar), first?.message ?? 'invalid');
}

/** JSON pointer to the way a JavaScript reader would write the path; the root is the part's name. */
export function fieldOf(pointer: string, part: string): string {
  if (pointer === '') return part;
  let field = '';
  for (const raw of pointer.split('/').slice(1)) {
    const segment = raw.replace(/~1/g, '/').replace(/~0/g, '~');
    if (/^(0|[1-9][0-9]*)$/.test(segment)) field += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(segment)) field += field === '' ? segment : `.${segment}`;
    else field += `[${JSON.stringify(segment)}]`;
  }
  return field;
}

// ---------------------------------------------------------------------------
// Errors. Domain errors (MIMD_*) carry their status and are the client's to
// read, 5xx included: a kernel errno is what an operator needs. Anything else
// at 5xx is a bug whose details stay in the log. Fastify's own 4xx (body
// parsing, media type, size) get a MIMD_ code so clients match one family.

const FASTIFY_CODES: Record<number, string> = {
  400: 'MIMD_BAD_INPUT',
  404: 'MIMD_NOT_FOUND',
  413: 'MIMD_BODY_TOO_LARGE',
  415: 'MIMD_UNSUPPORTED_MEDIA_TYPE',
};

interface Answer {
  status: number;
  body: ErrorReply;
  retryAfter?: number;
}

function statusOf(err: unknown): number {
  const status = (err as { statusCode?: unknown }).statusCode;
  return typeof status === 'number' && Number.isInteger(status) && status >= 400 && status <= 599 ? status : 500;
}

export function answerFor(err: unknown): Answer {
  const status = statusOf(err);
  if (isMimdError(err)) {
    const body: ErrorReply = { code: err.code, message: err.message };
    if (typeof err.field === 'string') body.field = err.field;
    if (typeof err.errno === 'string') body.errno = err.errno;
    return typeof err.retryAfter === 'number' ? { status, body, retryAfter: err.retryAfter } : { status, body };
  }
  if (status >= 500) return { status, body: { code: 'MIMD_INTERNAL', message: 'internal error' } };
  const code = (err as { code?: unknown }).code;
  const body: ErrorReply = {
    code: FASTIFY_CODES[status] ?? 'MIMD_BAD_REQUEST',
    message: err instanceof Error ? err.message : String(err),
  };
  if (status === 415) {
    body.message = 'unsupported media type: the API takes application/json (and, for PUT of a slot and POST of a version, application/x-ndjson or application/octet-stream)';
    body.field = 'Content-Type';
  }
  else if (typeof code === 'string' && code.startsWith('FST_ERR_CTP_') && status === 400) body.field = 'body';
  return { status, body };
}

function handleError(err: FastifyError, request: FastifyRequest, reply: FastifyReply): void {
  const { status, body, retryAfter } = answerFor(err);
  if (status >= 500) request.log.error({ err }, 'request failed');
  else request.log.info({ err }, body.message);
  if (status === 503 || status === 429) reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter ?? DEFAULT_RETRY_AFTER))));
  if (status === 401) reply.header('www-authenticate', 'Bearer realm="mimd"');
  void reply.code(status).send(body);
}
