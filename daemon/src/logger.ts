// The root pino logger: JSON lines on stdout, one per event. Everything else
// logs through logger.child({ component }).
import pino, { type DestinationStream, type Logger } from 'pino';
import type { LogConfig } from './config/schema';

export type { Logger };

export function createLogger(config: LogConfig, destination?: DestinationStream): Logger {
  const options: pino.LoggerOptions = {
    name: 'mimd',
    level: config.level,
    // ISO time: operators read these lines without pino-pretty.
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  // Synchronous: lines keep their order up to the last one at exit, which an
  // asynchronous stdout loses when the thread pool is busy with kernel work.
  return destination ? pino(options, destination) : pino(options, pino.destination({ dest: 1, sync: true }));
}

/** Resolves once everything logged so far has reached the destination. */
export function flushLogger(logger: Logger): Promise<void> {
  return new Promise((resolve) => {
    logger.flush((err) => {
      // A closed stdout must not turn a clean shutdown into a crash.
      void err;
      resolve();
    });
  });
}
