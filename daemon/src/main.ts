#!/usr/bin/env node
// mimd's composition root: reads the configuration, builds the logger, the
// kernel port and the services, and owns the process: signals, exit codes.
// Nothing imports this file.
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import { parseArgs } from 'node:util';
import { Value } from '@sinclair/typebox/value';
import { stringify as stringifyYaml } from 'yaml';
import closeWithGrace from 'close-with-grace';
import { ConfigError, defaultConfigFile, loadConfig } from './config/load';
import { ListenerError } from './listeners';
import createError from '@fastify/error';
import { mimdError } from './domain/errors';

/** POST /v1/reload with a configuration mimd refuses: nothing changed. */
const ReloadRefusedError = createError('MIMD_CONFIG', '%s', 422);
import { TokenSchema, type Config } from './config/schema';
import { createLogger, flushLogger, type Logger } from './logger';
import { HostService, isHostError, purgeOwned, type HostError } from './domain/host';
import { FileStateStore } from './state/file-store';
import type { KernelPort } from './domain/ports';
import { SlotsService } from './domain/slots-service';
import { SwapQueue } from './domain/swap-queue';
import { kernelReport, mapsAtRisk, replaceGuard, type KernelFeatures, type KernelReport, type ReplaceGuardedMap } from './domain/kernel-features';
import { buildApp, type App, type Limits, type ReloadResult } from './http/app';
import { AccessControl, tokenDigest } from './http/auth';
import { Metrics } from './http/metrics';
import { openAuditLog, type AuditLog } from './audit-sink';
import { listenOnSocket, prepareSocket, readTls } from './listeners';
import type { NativeError } from './kernel/index';

// sysexits.h
const EX_USAGE = 64;
const EX_TEMPFAIL = 75;
const EX_CONFIG = 78;
const EXIT_START_FAILED = 1;

/** A grace period longer than any detach; after it close-with-grace exits 1. */
const SHUTDOWN_DELAY_MS = 10_000;

const USAGE = `Usage: mimd [run] [--config <file>]
       mimd purge [--config <file>]
       mimd token <id> <read|write|admin> [--map <object/map>]...

run (the default) loads the BPF objects the configuration names, attaches
their programs and serves the API. It carries on from what an earlier run
pinned: outer maps, attachments and every slot's versions. SIGTERM or SIGINT
stops it; with onStop: keep (the default) the programs stay attached.

purge removes everything mimd owns for the configured objects (detaching
their programs): pins under pinRoot and records under stateDir. While mimd
runs it refuses (exit 75) and changes nothing.

token makes a new bearer token: it prints the token (give it to the client;
mimd never stores it) and the entry for api.tokens (its sha256), then exits.

Options:
  -c, --config <file>  override file merged over the defaults
                       (default: $MIMD_CONFIG, if set)
  -h, --help           show this help

Defaults: ${defaultConfigFile()}
Exit codes: 0 clean stop, 1 start failed, 64 bad arguments,
            75 another mimd owns stateDir or pinRoot (nothing changed), 78 bad configuration
`;

const COMMANDS = ['run', 'purge', 'token'] as const;
type Command = (typeof COMMANDS)[number];

function usageError(text: string): never {
  process.stderr.write(`mimd: ${text}\n\n${USAGE}`);
  process.exit(EX_USAGE);
}

interface CommandLine {
  command: Command;
  config?: string;
  /** token: id, scope, maps */
  args: string[];
  maps: string[];
}

function parseCommandLine(): CommandLine {
  let values: { config?: string; help?: boolean; map?: string[] };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
        map: { type: 'string', multiple: true },
      },
      strict: true,
      allowPositionals: true,
    }));
  } catch (err) {
    usageError((err as Error).message);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const command = positionals[0] ?? 'run';
  if (!(COMMANDS as readonly string[]).includes(command)) usageError(`unknown command ${JSON.stringify(command)} (expected ${COMMANDS.join(', ')})`);
  const rest = positionals.slice(1);
  if (command === 'token' ? rest.length !== 2 : rest.length > 0) {
    usageError(command === 'token' ? 'token: expected <id> <read|write|admin>' : `unexpected argument ${JSON.stringify(rest[0])}`);
  }
  if (values.map && command !== 'token') usageError('--map: only for the token command');
  const config = values.config ?? (process.env.MIMD_CONFIG || undefined);
  return { command: command as Command, args: rest, maps: values.map ?? [], ...(config === undefined ? {} : { config }) };
}

function readConfig(file: string | undefined): Config {
  try {
    return loadConfig(file);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    process.stderr.write(`${err.message}\n`);
    process.exit(EX_CONFIG);
  }
}

/**
 * The kernel layer loads the native addon when first required. Requiring it
 * only here, after the configuration is good, lets --help and configuration
 * errors work on hosts without the addon, and turns a missing addon into a
 * logged start failure instead of a crash at import.
 */
function kernelLayer(): {
  kernel: KernelPort;
  routeLibbpfLog: typeof import('./kernel/index').routeLibbpfLog;
  libbpfVersion: string;
  peerCredentials: typeof import('./kernel/peer').peerCredentials;
  preparePinRoot: typeof import('./kernel/bpffs').preparePinRoot;
  takeOwnership: typeof import('./kernel/owner-lock').takeOwnership;
  probeKernel: typeof import('./kernel/probe').probeKernel;
} {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const index = require('./kernel/index') as typeof import('./kernel/index');
  const { KernelAdapter } = require('./kernel/adapter') as typeof import('./kernel/adapter');
  const { peerCredentials } = require('./kernel/peer') as typeof import('./kernel/peer');
  const { preparePinRoot } = require('./kernel/bpffs') as typeof import('./kernel/bpffs');
  const { probeKernel } = require('./kernel/probe') as typeof import('./kernel/probe');
  const { takeOwnership } = require('./kernel/owner-lock') as typeof import('./kernel/owner-lock');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { kernel: new KernelAdapter(), routeLibbpfLog: index.routeLibbpfLog, libbpfVersion: index.libbpfVersion, peerCredentials, preparePinRoot, takeOwnership, probeKernel };
}

/** Top-level keys SIGHUP does not apply (everything but tokens and limits). */
function restartOnlyKeys(before: Config, after: Config): string[] {
  const changed: string[] = [];
  const live = new Set(['tokens', 'maxEntries', 'rateLimit']);
  for (const key of Object.keys(after) as (keyof Config)[]) {
    if (key === 'api') {
      for (const apiKey of Object.keys(after.api) as (keyof Config['api'])[]) {
        if (!live.has(apiKey) && JSON.stringify(before.api[apiKey]) !== JSON.stringify(after.api[apiKey])) changed.push(`api.${apiKey}`);
      }
    } else if (JSON.stringify(before[key]) !== JSON.stringify(after[key])) {
      changed.push(key);
    }
  }
  return changed;
}

function purge(config: Config, logger: Logger): void {
  const { kernel, takeOwnership } = kernelLayer();
  // Not while a mimd runs over the same directories: it would go on
  // answering "ready" with its pins and records gone.
  takeOwnership({ stateDir: config.stateDir, pinRoot: fs.existsSync(config.pinRoot) ? config.pinRoot : null });
  purgeOwned({ objects: config.objects, pinRoot: config.pinRoot, kernel, state: new FileStateStore(config.stateDir), logger: logger.child({ component: 'purge' }) });
  logger.child({ component: 'main' }).info({ objects: config.objects.map((o) => o.name) }, 'purged');
}

/** Prints a new token and its api.tokens entry, checked against the config schema. */
function printToken(args: CommandLine): void {
  const [id = '', scope = ''] = args.args;
  if (!['read', 'write', 'admin'].includes(scope)) usageError(`token: scope: expected one of read, write, admin, got ${JSON.stringify(scope)}`);
  const token = randomBytes(32).toString('base64url');
  const entry = { id, sha256: tokenDigest(token), scope, ...(args.maps.length > 0 ? { maps: args.maps } : {}) };
  const first = Value.Errors(TokenSchema, entry).First();
  if (first) usageError(`token: ${first.path.slice(1) || 'entry'}: ${(first.schema as { expected?: string }).expected ?? first.message}`);
  process.stdout.write(
    `# Give this token to the client (it is shown only now):\n#   ${token}\n` +
      `# and add this under api.tokens in the configuration, then reload (SIGHUP):\n` +
      stringifyYaml([entry]),
  );
}

async function main(): Promise<void> {
  const args = parseCommandLine();
  if (args.command === 'token') {
    printToken(args);
    return;
  }
  const config = readConfig(args.config);
  sizeThreadPool(config.swapQueue.concurrency);
  const logger = createLogger(config.log);
  const log = logger.child({ component: 'main' });
  if (args.command === 'purge') {
    try {
      purge(config, logger);
    } catch (err) {
      log.fatal({ err }, 'purge failed');
      await flushLogger(logger);
      process.stderr.write(`mimd: purge failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(isOwnerLocked(err) ? EX_TEMPFAIL : EXIT_START_FAILED);
    }
    await flushLogger(logger);
    return;
  }

  let host: HostService | null = null;
  let slots: SlotsService | null = null;
  let metrics: Metrics | null = null;
  let audit: AuditLog | null = null;
  const apps: App[] = [];
  let shuttingDown = false;
  const access = new AccessControl({ tokens: config.api.tokens, socketScope: config.api.socket?.scope ?? 'read' });
  let limits: Limits = { maxEntries: config.api.maxEntries, rateLimit: { ...config.api.rateLimit } };

  /** Reads the configuration again; takes tokens and limits from it, and nothing else. */
  const reload = async (): Promise<ReloadResult> => {
    let next: Config;
    try {
      next = loadConfig(args.config);
    } catch (err) {
      log.error({ err: { message: (err as Error).message } }, 'reload refused: the configuration has errors; nothing changed');
      throw mimdError(ReloadRefusedError, (err as Error).message, { field: 'config' });
    }
    access.reload({ tokens: next.api.tokens, socketScope: next.api.socket?.scope ?? 'read' });
    limits = { maxEntries: next.api.maxEntries, rateLimit: { ...next.api.rateLimit } };
    const needRestart = restartOnlyKeys(config, next);
    if (needRestart.length > 0) log.warn({ keys: needRestart }, 'changed keys take effect only at the next start');
    log.info({ tokens: access.tokenCount, limits }, 'reloaded tokens and limits');
    return { tokens: access.tokenCount, limits };
  };

  closeWithGrace({ delay: SHUTDOWN_DELAY_MS, logger: logger.child({ component: 'shutdown' }), skip: ['SIGHUP'] }, async ({ signal, err }) => {
    shuttingDown = true;
    if (err) log.fatal({ err }, 'unexpected error, shutting down');
    else log.info({ signal }, 'shutting down');
    // In-flight requests finish (and with them any swap they started) before
    // the maps under them go away.
    await Promise.all(apps.map((a) => a.close()));
    slots?.close();
    await host?.close(config.onStop);
    metrics?.close();
    audit?.close();
    log.info('stopped');
    await flushLogger(logger);
  });
  // SIGHUP reloads tokens and limits (see reload()); it does not stop mimd.
  process.on('SIGHUP', () => {
    void reload().catch((err: unknown) => log.error({ err }, 'reload failed'));
  });

  try {
    const kernelSide = kernelLayer();
    const libbpfLog = logger.child({ component: 'libbpf' });
    // libbpf ends every message with a newline; pino adds its own.
    kernelSide.routeLibbpfLog((level, message) => libbpfLog[level](message.trimEnd()));

    log.info({ config: args.config ?? null, libbpf: kernelSide.libbpfVersion }, 'starting');
    try {
      kernelSide.preparePinRoot(config.pinRoot);
    } catch (err) {
      throw new ListenerError('pinRoot', (err as Error).message.replace(/^pinRoot: /, ''));
    }
    // Before the probe, restore or any listener: a second mimd over the same
    // directories stops here, having changed nothing.
    kernelSide.takeOwnership({ stateDir: config.stateDir, pinRoot: config.pinRoot });
    const features = await probe(kernelSide.probeKernel, config, log);
    const state = new FileStateStore(config.stateDir, { fsync: config.stateFsync });
    const running = new HostService({
      objects: config.objects,
      pinRoot: config.pinRoot,
      kernel: kernelSide.kernel,
      state,
      logger: logger.child({ component: 'host' }),
    });
    host = running;
    // Slots are restored after the maps load and before any program is
    // attached or updated, so a program never sees them half restored.
    let report: KernelReport | null = null;
    await running.start(async () => {
      const maps = running.managedMaps();
      const guarded = guardedMaps(maps);
      const atomic = features?.atomicHashOfMapsReplace.value ?? 'unknown';
      warnNonAtomicReplace(log, guarded, atomic, features);
      const swaps = new SwapQueue({ ...config.swapQueue, strategy: features?.swapStrategy ?? 'batch', guard: replaceGuard(guarded, atomic) });
      report = kernelReport(features, swaps.strategy, guarded);
      slots = new SlotsService({
        maps,
        kernel: kernelSide.kernel,
        swaps,
        retain: config.retain,
        pinRoot: config.pinRoot,
        state,
        logger: logger.child({ component: 'slots' }),
        ready: () => running.running,
        pauseAt: process.env.MIMD_PAUSE_AT || undefined,
      });
      const summary = await slots.restore();
      log.info(summary, 'restored slots');
    });
    const service: SlotsService | null = slots;
    if (!service) throw new Error('slots were not restored');
    metrics = new Metrics(service);
    audit = openAuditLog(config.audit);
    const common = {
      slots: service,
      logger: logger.child({ component: 'http' }),
      bodyLimit: config.api.bodyLimit,
      access,
      audit: audit.sink,
      metrics,
      limits: () => limits,
      requestTimeoutMs: config.api.requestTimeoutMs,
      reload,
      kernel: () => report,
    };
    if (config.api.socket) {
      const socket = config.api.socket;
      const { gid } = await prepareSocket(socket);
      const app = buildApp({ ...common, transport: 'unix', peer: kernelSide.peerCredentials });
      apps.push(app);
      await listenOnSocket(socket.path, gid, () => app.listen({ path: socket.path }));
    }
    if (config.api.tcp) {
      const tcp = config.api.tcp;
      const app = buildApp({ ...common, transport: 'tcp', ...(tcp.tls ? { https: readTls(tcp.tls) } : {}) });
      apps.push(app);
      await app.listen({ host: tcp.host, port: tcp.port });
      if (access.tokenCount === 0) log.warn({ listen: app.addresses() }, 'TCP listener without tokens: every request over it gets 401');
    }
  } catch (err) {
    // A signal during start: close-with-grace is already taking the process down.
    if (shuttingDown) return;
    await failStart(logger, err);
    return;
  }

  // A signal during the last steps of start: the shutdown already detached everything.
  if (shuttingDown) return;
  log.info({ ...host.summary(), listen: apps.flatMap((a) => a.addresses()), socket: config.api.socket?.path ?? null }, 'started');
}

/**
 * Probes the kernel's swap path (kernel/probe.ts) and logs the result once.
 * A probe that cannot run is not a reason to refuse to start: mimd then
 * batches, falls back on ENOTSUPP, and treats HASH_OF_MAPS replace as not
 * atomic.
 */
async function probe(probeKernel: typeof import('./kernel/probe').probeKernel, config: Config, log: Logger): Promise<KernelFeatures | null> {
  const attachKinds = [...new Set(config.objects.flatMap((o) => o.attach.map((a) => a.type)))];
  try {
    const features = await probeKernel({ attachKinds, concurrency: config.swapQueue.concurrency });
    // Test seam: the safe mode on a kernel (6.16+) whose replace is atomic.
    if (process.env.MIMD_ASSUME_NON_ATOMIC_REPLACE === '1') {
      const probed = features.atomicHashOfMapsReplace;
      features.atomicHashOfMapsReplace = { ...probed, value: false, detail: `assumed not atomic (MIMD_ASSUME_NON_ATOMIC_REPLACE=1); the probe: ${probed.detail}` };
    }
    log.info(
      {
        release: features.release,
        batchOuterMaps: features.batchOuterMaps.value,
        oneWaitPerBatch: features.oneWaitPerBatch.value,
        singleMs: features.oneWaitPerBatch.singleMs,
        batchMs: features.oneWaitPerBatch.batchMs,
        innerMapFlag: features.innerMapFlag.value,
        linkTypes: Object.fromEntries(Object.entries(features.linkTypes).map(([k, v]) => [k, v.value])),
        atomicHashOfMapsReplace: features.atomicHashOfMapsReplace.value,
        swapStrategy: features.swapStrategy,
        probeMs: features.probeMs,
      },
      'kernel features',
    );
    for (const [type, result] of Object.entries(features.linkTypes)) {
      if (result.value !== true) log.warn({ linkType: type, probe: result }, `link type ${type} ${result.value === false ? 'is missing' : 'could not be probed'}: attachments that need it may fail`);
    }
    return features;
  } catch (err) {
    log.warn({ err }, 'kernel feature probes failed: batching with fallback, HASH_OF_MAPS replace treated as not atomic');
    return null;
  }
}

function guardedMaps(maps: readonly { object: string; name: string; type: string; field: string; handle: ReplaceGuardedMap['handle']; codec: { onNonAtomicReplace?: 'warn' | 'refuse' } | undefined }[]): ReplaceGuardedMap[] {
  return maps.map((m) => ({ handle: m.handle, ref: `${m.object}/${m.name}`, type: m.type, field: m.field, policy: m.codec?.onNonAtomicReplace ?? 'warn' }));
}

function warnNonAtomicReplace(log: Logger, maps: readonly ReplaceGuardedMap[], atomic: boolean | 'unknown', features: KernelFeatures | null): void {
  for (const map of mapsAtRisk(maps, atomic)) {
    log.warn(
      { map: map.ref, field: `${map.field}.onNonAtomicReplace`, policy: map.policy, atomicHashOfMapsReplace: atomic, probe: features?.atomicHashOfMapsReplace.detail ?? null },
      map.policy === 'refuse'
        ? `${map.ref} is a HASH_OF_MAPS map and replacing a key is not atomic on this kernel: swaps into occupied slots will be refused`
        : `${map.ref} is a HASH_OF_MAPS map and replacing a key is not atomic on this kernel: while a slot is swapped a program's lookup can find no inner map (set onNonAtomicReplace: refuse to refuse such swaps)`,
    );
  }
}

async function failStart(logger: Logger, err: unknown): Promise<never> {
  const mismatch = (isHostError(err) && err.code === 'MIMD_CONFIG_MISMATCH') || err instanceof ListenerError;
  logger.child({ component: 'main' }).fatal(isHostError(err) ? describeStartFailure(err) : { err }, 'start failed');
  await flushLogger(logger);
  // The configuration names something the host or the object does not have:
  // the same class of failure as a bad key, so the same exit code.
  const text = err instanceof Error ? err.message : String(err);
  process.stderr.write(mismatch ? `config: ${text}\n` : `mimd: start failed: ${text}\n`);
  process.exit(mismatch ? EX_CONFIG : isOwnerLocked(err) ? EX_TEMPFAIL : EXIT_START_FAILED);
}

/** Another mimd owns the state directory or the pin root (kernel/owner-lock.ts, loaded lazily with the addon). */
function isOwnerLocked(err: unknown): boolean {
  return err instanceof Error && (err as { code?: unknown }).code === 'MIMD_LOCKED';
}

/**
 * An expected, operational failure: no stack, but the kernel's error (errno,
 * failed call) and the verifier's log, which pino's err serializer would drop
 * from the cause.
 */
function describeStartFailure(err: HostError): Record<string, unknown> {
  const cause = err.cause as (Error & Partial<NativeError>) | undefined;
  return {
    error: { code: err.code, field: err.field, message: err.message },
    ...(cause instanceof Error
      ? { cause: { message: cause.message, code: cause.code, errno: cause.errno, syscall: cause.syscall } }
      : {}),
    ...(cause?.verifierLog ? { verifierLog: cause.verifierLog } : {}),
  };
}

main().catch((err: unknown) => {
  process.stderr.write(`mimd: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(EXIT_START_FAILED);
});

/**
 * Outer-map updates run on libuv's thread pool and each holds its thread for
 * an RCU grace period (about 10 ms on most kernels): with Node's default of 4
 * threads, `concurrency` swaps would leave none for the state files, map
 * fills and dumps queued behind them. Size the pool before its first use
 * (libuv reads the variable once); an operator's own setting wins.
 */
function sizeThreadPool(swapConcurrency: number): void {
  process.env.UV_THREADPOOL_SIZE ??= String(swapConcurrency + 4);
}
