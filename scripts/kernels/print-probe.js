#!/usr/bin/env node
// Prints the daemon's own feature probe (daemon/src/kernel/probe.ts, compiled to
// dist) for the kernel this runs on, as one line `MIMD-KERNELS-PROBE <json>`.
// The probe is the daemon's; this script only calls it, so the matrix reports
// what mimd itself decides on each kernel. Until the probe exists this says so
// and exits 0: its absence is not a test failure.
'use strict';
const path = require('node:path');
const fs = require('node:fs');

const probePath = path.join(__dirname, '..', '..', 'dist', 'daemon', 'src', 'kernel', 'probe.js');

async function main() {
  if (!fs.existsSync(probePath)) {
    console.log(`MIMD-KERNELS-PROBE-MISSING ${path.relative(process.cwd(), probePath)} not built`);
    return;
  }
  try {
    const { probeKernel } = require(probePath);
    if (typeof probeKernel !== 'function') throw new Error('probe.js exports no probeKernel()');
    const features = await probeKernel();
    console.log(`MIMD-KERNELS-PROBE ${JSON.stringify(features)}`);
  } catch (err) {
    console.log(`MIMD-KERNELS-PROBE-ERROR ${JSON.stringify(String(err && err.stack ? err.stack.split('\n')[0] : err))}`);
  }
}

main();
