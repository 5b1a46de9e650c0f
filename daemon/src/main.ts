#!/usr/bin/env node
// mimd's composition root: reads the configuration, builds the logger, the
// kernel port and the services, and owns the process: signals, exit codes.
// Nothing imports this file.
import { parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { ConfigError, defaultConfigFile, loadConfig } from './config/load';
import type { Config } from './config/schema';
import { createLogger, flushLogger, type Logger } from './logger';
import { HostService, isHostError, purgeOwned, type HostError } from './domain/host';
import { FileStateStore } from './state/file-store';
import type { KernelPort } from './domain/ports';
import { SlotsService } from './domain/slots-service';
import { SwapQueue } from './domain/swap-queue';
import { buildApp, type App } from './http/app';
import type { NativeError } from './kernel/index';

// sysexits.h
const EX_USAGE = 64;
const EX_CONFIG = 78;
const EXIT_START_FAILED = 1;

/** A grace period longer than any detach; after it close-with-grace exits 1. */
const SHUTDOWN_DELAY_MS = 10_000;

const USAGE = `Usage: mimd [run] [--config <file>]
       mimd purge [--config <file>]

run (the default) loads the BPF objects the configuration names, attaches
their programs and serves the API. It carries on from what an earlier run
pinned: outer maps, attachments and every slot's versions. SIGTERM or SIGINT
stops it; with onStop: keep (the default) the programs stay attached.

purge removes everything mimd owns for the configured objects (detaching
their programs): pins under pinRoot and records under stateDir. Do not run it
while mimd runs.

Options:
  -c, --config <file>  override file merged over the defaults
                       (default: $MIMD_CONFIG, if set)
  -h, --help           show this help

Defaults: ${defaultConfigFile()}
Exit codes: 0 clean stop, 1 start failed, 64 bad arguments, 78 bad configuration
`;

const COMMANDS = ['run', 'purge'] as const;
type Command = (typeof COMMANDS)[number];

function usageError(text: string): never {
  process.stderr.write(`mimd: ${text}\n\n${USAGE}`);
  process.exit(EX_USAGE);
}

function parseCommandLine(): { command: Command; config?: string } {
  let values: { config?: string; help?: boolean };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
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
  if (positionals.length > 1) usageError(`expected one command, got ${positionals.length}: ${positionals.join(' ')}`);
  const command = positionals[0] ?? 'run';
  if (!(COMMANDS as readonly string[]).includes(command)) usageError(`unknown command ${JSON.stringify(command)} (expected ${COMMANDS.join(' or ')})`);
  const config = values.config ?? (process.env.MIMD_CONFIG || undefined);
  return { command: command as Command, ...(config === undefined ? {} : { config }) };
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
function kernelLayer(): { kernel: KernelPort; routeLibbpfLog: typeof import('./kernel/index').routeLibbpfLog; libbpfVersion: string } {
  /* eslint-disable @typescript-eslint/no-require-imports */
  const index = require('./kernel/index') as typeof import('./kernel/index');
  const { KernelAdapter } = require('./kernel/adapter') as typeof import('./kernel/adapter');
  /* eslint-enable @typescript-eslint/no-require-imports */
  return { kernel: new KernelAdapter(), routeLibbpfLog: index.routeLibbpfLog, libbpfVersion: index.libbpfVersion };
}

function purge(config: Config, logger: Logger): void {
  const { kernel } = kernelLayer();
  purgeOwned({ objects: config.objects, pinRoot: config.pinRoot, kernel, state: new FileStateStore(config.stateDir), logger: logger.child({ component: 'purge' }) });
  logger.child({ component: 'main' }).info({ objects: config.objects.map((o) => o.name) }, 'purged');
}

async function main(): Promise<void> {
  const args = parseCommandLine();
  const config = readConfig(args.config);
  const logger = createLogger(config.log);
  const log = logger.child({ component: 'main' });
  if (args.command === 'purge') {
    try {
      purge(config, logger);
    } catch (err) {
      log.fatal({ err }, 'purge failed');
      await flushLogger(logger);
      process.stderr.write(`mimd: purge failed: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(EXIT_START_FAILED);
    }
    await flushLogger(logger);
    return;
  }

  let host: HostService | null = null;
  let slots: SlotsService | null = null;
  let app: App | null = null;
  let shuttingDown = false;
  closeWithGrace({ delay: SHUTDOWN_DELAY_MS, logger: logger.child({ component: 'shutdown' }) }, async ({ signal, err }) => {
    shuttingDown = true;
    if (err) log.fatal({ err }, 'unexpected error, shutting down');
    else log.info({ signal }, 'shutting down');
    // In-flight requests finish (and with them any swap they started) before
    // the maps under them go away.
    await app?.close();
    slots?.close();
    await host?.close(config.onStop);
    log.info('stopped');
    await flushLogger(logger);
  });

  try {
    const kernelSide = kernelLayer();
    const libbpfLog = logger.child({ component: 'libbpf' });
    // libbpf ends every message with a newline; pino adds its own.
    kernelSide.routeLibbpfLog((level, message) => libbpfLog[level](message.trimEnd()));

    log.info({ config: args.config ?? null, libbpf: kernelSide.libbpfVersion }, 'starting');
    const state = new FileStateStore(config.stateDir);
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
    await running.start(async () => {
      slots = new SlotsService({
        maps: running.managedMaps(),
        kernel: kernelSide.kernel,
        swaps: new SwapQueue(config.swapQueue),
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
    if (!slots) throw new Error('slots were not restored');
    app = buildApp({ slots, logger: logger.child({ component: 'http' }), bodyLimit: config.api.bodyLimit });
    await app.listen({ host: config.api.host, port: config.api.port });
  } catch (err) {
    // A signal during start: close-with-grace is already taking the process down.
    if (shuttingDown) return;
    await failStart(logger, err);
    return;
  }

  // A signal during the last steps of start: the shutdown already detached everything.
  if (shuttingDown) return;
  log.info({ ...host.summary(), listen: app.addresses() }, 'started');
}

async function failStart(logger: Logger, err: unknown): Promise<never> {
  const mismatch = isHostError(err) && err.code === 'MIMD_CONFIG_MISMATCH';
  logger.child({ component: 'main' }).fatal(isHostError(err) ? describeStartFailure(err) : { err }, 'start failed');
  await flushLogger(logger);
  // The configuration names something the host or the object does not have:
  // the same class of failure as a bad key, so the same exit code.
  const text = err instanceof Error ? err.message : String(err);
  process.stderr.write(mismatch ? `config: ${text}\n` : `mimd: start failed: ${text}\n`);
  process.exit(mismatch ? EX_CONFIG : EXIT_START_FAILED);
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
