// Boots one kernel under qemu (software emulation) with the guest initramfs,
// the host's root shared read-only over 9p, and returns what came back over the
// serial ports. It decides nothing about test results: report.mjs does that.
//
// Why these qemu settings:
// - `-accel tcg,thread=single`: no KVM on these machines, and with thread=multi
//   about 1 boot in 20 crashed early.
// - `-smp 2`: with one CPU, synchronize_rcu() returns at once, and the RCU wait
//   every outer-map update makes (the thing the matrix measures) would vanish.
//   Both vCPUs still run on one host thread (thread=single).
// - two serial ports: ttyS0 is the console (kernel log, init's progress), ttyS1
//   carries only the test output, so kernel messages never break a TAP line.
// - `-no-reboot` with `panic=-1`: a panic ends qemu instead of hanging it.
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

/** qemu processes this module started and that still run: killed by pid if the matrix is stopped. */
const running = new Set();
export function killGuests() {
  for (const child of running) child.kill('SIGKILL');
}

/**
 * @param {object} o
 * @param {string} o.kernelDir  from fetch-kernel.sh: vmlinuz, initramfs.cpio.gz
 * @param {string} o.outDir     console.log and results.log go here
 * @param {string} o.run        script the guest runs (a host path, seen through 9p)
 * @param {string} o.cwd        directory the guest runs it in (the repo)
 * @param {number} o.timeoutMs  the whole boot, tests included
 * @returns {Promise<{console: string, results: string, ms: number, timedOut: boolean, reachedInit: boolean, exit: number|null}>}
 */
export async function bootOnce({ kernelDir, outDir, run, cwd, timeoutMs }) {
  fs.mkdirSync(outDir, { recursive: true });
  const consoleLog = path.join(outDir, 'console.log');
  const resultsLog = path.join(outDir, 'results.log');
  for (const f of [consoleLog, resultsLog]) fs.rmSync(f, { force: true });
  const args = [
    '-accel', 'tcg,thread=single',
    '-smp', '2',
    '-m', '2048',
    '-cpu', 'max',
    '-nodefaults', '-no-reboot', '-display', 'none', '-monitor', 'none',
    '-kernel', path.join(kernelDir, 'vmlinuz'),
    '-initrd', path.join(kernelDir, 'initramfs.cpio.gz'),
    '-append', `console=ttyS0 panic=-1 loglevel=4 mimd.run=${run} mimd.cwd=${cwd}`,
    '-serial', `file:${consoleLog}`,
    '-serial', `file:${resultsLog}`,
    // the host's root, read-only: Node.js, the addon, dist/ and bpf/ as they are
    '-virtfs', 'local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap',
  ];
  const started = Date.now();
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  running.add(qemu);
  let stderr = '';
  qemu.stderr.on('data', (d) => (stderr += d));
  let timedOut = false;
  // qemu is ours: on timeout it is killed by its pid, nothing else
  const timer = setTimeout(() => {
    timedOut = true;
    qemu.kill('SIGKILL');
  }, timeoutMs);
  const exit = await new Promise((resolve) => {
    qemu.on('error', (err) => {
      stderr += String(err);
      resolve(null);
    });
    qemu.on('exit', (code) => resolve(code));
  });
  clearTimeout(timer);
  running.delete(qemu);
  const read = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').replace(/\r/g, '') : '');
  const consoleText = read(consoleLog) + (stderr ? `\n[qemu stderr]\n${stderr}` : '');
  return {
    console: consoleText,
    results: read(resultsLog),
    ms: Date.now() - started,
    timedOut,
    reachedInit: consoleText.includes('mimd-init: started'),
    exit,
  };
}

/**
 * bootOnce, and once more when the first boot never reached init (an early
 * crash of the emulated machine, not something the kernel under test did).
 * A guest that reached init and then failed is never retried.
 */
export async function boot(options) {
  const first = await bootOnce(options);
  if (first.reachedInit) return { ...first, retried: false };
  const second = await bootOnce(options);
  return { ...second, retried: true, firstAttempt: first };
}
