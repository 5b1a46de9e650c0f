// Where audit records go: a stream of their own, apart from the log. On
// stdout they are JSON lines marked "audit": true; in a file (mode 0600,
// appended to) they are the only thing there. Written synchronously, as the
// answer is sent: a record is written before the response it describes is.
import * as fs from 'node:fs';
import * as path from 'node:path';
import pino, { type Logger } from 'pino';
import type { AuditConfig } from './config/schema';
import type { AuditRecord, AuditSink } from './http/audit';

export interface AuditLog {
  sink: AuditSink;
  close(): void;
}

export function openAuditLog(config: AuditConfig): AuditLog {
  let fd = 1;
  if (config.destination !== 'stdout') {
    fs.mkdirSync(path.dirname(config.destination), { recursive: true, mode: 0o750 });
    fd = fs.openSync(config.destination, 'a', 0o600);
    // An existing file keeps its mode through open: narrow it.
    fs.fchmodSync(fd, 0o600);
  }
  const stream = pino.destination({ fd, sync: true });
  const logger: Logger = pino(
    // The record carries its own time.
    { base: { audit: true }, timestamp: false },
    stream,
  );
  return {
    sink: (record: AuditRecord) => logger.info(record, 'audit'),
    close: () => {
      if (fd !== 1) fs.closeSync(fd);
    },
  };
}
