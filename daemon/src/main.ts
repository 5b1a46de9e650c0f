#!/usr/bin/env node
// mimd's composition root: reads the configuration, builds the logger, the
// kernel port and the services, and owns the process: signals, exit codes.
// Nothing imports this file.
import { parseArgs } from 'node:util';
import closeWithGrace from 'close-with-grace';
import { ConfigError, defaultConfigFile, loadConfig } from './config/load';
import type { Config } from './config/schema';
import { createLogger, flushLogger, type Logger } from './logger';
import { HostService, isHostError, type HostError } from './domain/host';
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

const USAGE = `Usage: mimd [--config <file>]

Loads the BPF objects the configuration names and attaches their programs;
SIGTERM or SIGINT detaches them and exits.

Options:
  -c, --config <file>  override file merged over the defaults
                       (default: $MIMD_CONFIG, if set)
  -h, --help           show this help

Defaults: ${defaultConfigFile()}
Exit codes: 0 clean stop, 1 start failed, 64 bad arguments, 78 bad configuration
`;

function parseCommandLine(): { config?: string } {
  let values: { config?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      options: {
        config: { type: 'string', short: 'c' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    process.stderr.write(`mimd: ${(err as Error).message}\n\n${USAGE}`);
    process.exit(EX_USAGE);
  }
  if (values.help) {
    process.stdout.write(USAGE);
    process.exit(0);
  }
  const config = values.config ?? (process.env.MIMD_CONFIG || undefined);
  return config === undefined ? {} : { config };
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

async function main(): Promise<void> {
  const args = parseCommandLine();
  const config = readConfig(args.config);
  const logger = createLogger(config.log);
  const log = logger.child({ component: 'main' });

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
    await host?.close();
    log.info('stopped');
    await flushLogger(logger);
  });

  try {
    const kernelSide = kernelLayer();
    const libbpfLog = logger.child({ component: 'libbpf' });
    // libbpf ends every message with a newline; pino adds its own.
    kernelSide.routeLibbpfLog((level, message) => libbpfLog[level](message.trimEnd()));

    log.info({ config: args.config ?? null, libbpf: kernelSide.libbpfVersion }, 'starting');
    host = new HostService({
      objects: config.objects,
      pinRoot: config.pinRoot,
      kernel: kernelSide.kernel,
      logger: logger.child({ component: 'host' }),
    });
    await host.start();

    slots = new SlotsService({
      maps: host.managedMaps(),
      kernel: kernelSide.kernel,
      swaps: new SwapQueue(config.swapQueue),
      retain: config.retain,
      pinRoot: config.pinRoot,
      logger: logger.child({ component: 'slots' }),
      ready: () => host?.running ?? false,
    });
    slots.removeStalePins();
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
