// mimd as a child process for the bench: its own pinRoot under /sys/fs/bpf,
// state directory and API socket under the bench's temp dir, logs to a file;
// stopped by its pid (SIGTERM, then SIGKILL), its pins removed whatever
// happened.
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { BENCH_CONFIG, MAIN, ROOT } from './paths.mjs';
import { Client } from './client.mjs';

/** USER_HZ: /proc reports CPU times in these ticks; 100 on every Linux architecture Node runs on. */
const CLOCK_TICKS = 100;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Every daemon started and not yet stopped, for the cleanup on failure or signal. */
export const running = new Set();

export class Daemon {
  /**
   * @param {object} o
   * @param {string} o.tmpDir the bench's temp dir (state directory, socket, config: on disk, like /var/lib/mimd)
   * @param {string} [o.logDir] where stdout (logs and audit records) goes; the bench uses tmpfs
   * @param {string} o.pinRoot a bpffs directory of this daemon's own
   * @param {string} o.name distinguishes several daemons of one run
   * @param {string[]} [o.nodeArgs] options for node itself, e.g. --cpu-prof (for diagnosis)
   */
  constructor({ tmpDir, logDir = tmpDir, pinRoot, name, nodeArgs = [] }) {
    this.nodeArgs = nodeArgs;
    this.dir = path.join(tmpDir, name);
    this.pinRoot = pinRoot;
    this.socket = path.join(this.dir, 'run', 'mimd.sock');
    this.logFile = path.join(logDir, `${name}.log`);
    this.child = null;
  }

  config() {
    const config = parseYaml(fs.readFileSync(BENCH_CONFIG, 'utf8'));
    config.pinRoot = this.pinRoot;
    config.stateDir = path.join(this.dir, 'state');
    config.api.socket.path = this.socket;
    return config;
  }

  /** Starts mimd and waits until /readyz answers 200. */
  async start(timeoutMs = 60_000) {
    fs.mkdirSync(this.dir, { recursive: true });
    const configFile = path.join(this.dir, 'mimd.bench.json');
    fs.writeFileSync(configFile, JSON.stringify(this.config(), null, 2));
    const log = fs.openSync(this.logFile, 'a');
    const env = { ...process.env, MIMD_CONFIG: '' };
    this.child = spawn(process.execPath, [...this.nodeArgs, MAIN, '--config', configFile], { cwd: ROOT, stdio: ['ignore', log, log], env });
    fs.closeSync(log);
    running.add(this);
    this.exited = once(this.child, 'exit');
    this.client = new Client(this.socket);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (this.child.exitCode !== null || this.child.signalCode !== null) throw new Error(`mimd exited (${this.child.exitCode ?? this.child.signalCode}) at start:\n${this.logTail()}`);
      try {
        const res = await this.client.request('GET', '/readyz');
        if (res.status === 200) return;
      } catch {
        // socket not there yet
      }
      if (Date.now() > deadline) throw new Error(`mimd not ready within ${timeoutMs} ms:\n${this.logTail()}`);
      await sleep(50);
    }
  }

  get pid() {
    return this.child?.pid;
  }

  /** { rssKb, hwmKb } of the daemon now, from /proc/<pid>/status. */
  memory() {
    const status = fs.readFileSync(`/proc/${this.pid}/status`, 'utf8');
    const kb = (field) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
    return { rssKb: kb('VmRSS'), hwmKb: kb('VmHWM') };
  }

  /** CPU time the daemon has used so far (all threads), seconds, from /proc/<pid>/stat. */
  cpuSeconds() {
    const stat = fs.readFileSync(`/proc/${this.pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
  }

  logTail(lines = 20) {
    try {
      return fs.readFileSync(this.logFile, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
    } catch {
      return '(no log)';
    }
  }

  /** SIGTERM (onStop: remove takes its pins away), SIGKILL after `graceMs`; then removes whatever pins remain. */
  async stop(graceMs = 20_000) {
    this.client?.close();
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      process.kill(child.pid, 'SIGTERM');
      const timer = setTimeout(() => child.exitCode === null && child.signalCode === null && process.kill(child.pid, 'SIGKILL'), graceMs);
      await this.exited;
      clearTimeout(timer);
    }
    running.delete(this);
    fs.rmSync(this.pinRoot, { recursive: true, force: true });
  }

  /** For process exit: no awaiting possible, so SIGKILL by pid and remove pins at once. */
  killNow() {
    const child = this.child;
    if (child && child.exitCode === null && child.signalCode === null) {
      try {
        process.kill(child.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    running.delete(this);
    fs.rmSync(this.pinRoot, { recursive: true, force: true });
  }
}
