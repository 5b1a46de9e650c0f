#!/usr/bin/env node
// Prints what probeKernel() finds on this kernel as JSON (the kernel matrix
// runs it in each guest). Exit 0 when the probes ran, 1 when they could not.
//   node dist/daemon/src/kernel/probe-cli.js [--concurrency N]
import { probeKernel } from './probe';

async function main(): Promise<void> {
  const at = process.argv.indexOf('--concurrency');
  const concurrency = at > 0 ? Number(process.argv[at + 1]) : undefined;
  if (concurrency !== undefined && !(Number.isInteger(concurrency) && concurrency >= 1)) {
    process.stderr.write('probe-cli: --concurrency: expected an integer of at least 1\n');
    process.exit(64);
  }
  const features = await probeKernel(concurrency === undefined ? {} : { concurrency });
  process.stdout.write(`${JSON.stringify(features, null, 2)}\n`);
}

main().catch((err: unknown) => {
  process.stderr.write(`probe-cli: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
