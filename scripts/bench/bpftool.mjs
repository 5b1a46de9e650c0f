// The incumbent: the same jobs done as an operator would with bpftool, one
// `bpftool batch file` per job (an inner map made and pinned, its entries
// added one `map update` line each, then the outer slot pointed at it).
// Each job is timed from the process start to its exit, batch file already
// written.
import { execFileSync, spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { BENCH_OBJECT, BPFTOOL } from './paths.mjs';
import { nowMs, percentile } from './stats.mjs';

const hexLE = (value, bytes) => {
  const buf = Buffer.alloc(bytes);
  if (bytes === 4) buf.writeUInt32LE(value);
  else buf.writeBigUInt64LE(BigInt(value));
  return [...buf].map((b) => b.toString(16).padStart(2, '0')).join(' ');
};
const slotKey = (slot) => `hex ${hexLE(slot, 4)}`;

export class BpftoolBench {
  /** @param {string} pinDir a fresh bpffs directory of the bench's own; @param {string} tmpDir for batch files */
  constructor(pinDir, tmpDir) {
    this.pinDir = pinDir;
    this.tmpDir = tmpDir;
    this.outer = path.join(pinDir, 'maps', 'outer');
    this.seq = 0;
  }

  /** Loads bpf/bench.bpf.o (not attached) with its maps pinned, as mimd would have it. */
  load() {
    fs.mkdirSync(this.pinDir, { recursive: true });
    execFileSync(BPFTOOL, ['prog', 'load', BENCH_OBJECT, path.join(this.pinDir, 'prog'), 'pinmaps', path.join(this.pinDir, 'maps')], { stdio: 'pipe' });
  }

  /** Runs `bpftool batch file <lines>`, returns milliseconds. The file is written before the clock starts. */
  batch(lines, name = 'job') {
    const file = path.join(this.tmpDir, `bpftool-${name}.batch`);
    writeLines(file, lines);
    const start = nowMs();
    const r = spawnSync(BPFTOOL, ['batch', 'file', file], { stdio: ['ignore', 'ignore', 'pipe'], maxBuffer: 64 << 20 });
    const ms = nowMs() - start;
    fs.rmSync(file, { force: true });
    if (r.status !== 0) throw new Error(`bpftool batch ${name}: exit ${r.status}: ${String(r.stderr).slice(-400)}`);
    return ms;
  }

  innerPin() {
    return path.join(this.pinDir, `inner-${++this.seq}`);
  }

  /** `map create` of an inner map like the template, n entries, pinned at `pin`. */
  *fill(pin, n, maxEntries = Math.max(n, 1024)) {
    yield `map create ${pin} type hash key 4 value 8 entries ${maxEntries} name bench_inner`;
    for (let i = 0; i < n; i++) yield `map update pinned ${pin} key hex ${hexLE(i, 4)} value hex ${hexLE(i + 1, 8)}`;
  }

  swapLine(slot, pin) {
    return `map update pinned ${this.outer} key ${slotKey(slot)} value pinned ${pin}`;
  }

  /** One slot update with an inner map already made: one bpftool process per swap. */
  swap(rounds) {
    const pin = this.innerPin();
    this.batch(this.fill(pin, 0), 'prep');
    const times = [];
    for (let r = 0; r < rounds; r++) {
      const start = nowMs();
      execFileSync(BPFTOOL, ['map', 'update', 'pinned', this.outer, 'key', ...slotKey(0).split(' '), 'value', 'pinned', pin], { stdio: 'pipe' });
      times.push(nowMs() - start);
    }
    fs.rmSync(pin);
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), rounds };
  }

  /** PUT's job: make an inner map, add 100 entries, swap it into the slot; one batch file each time. */
  put100(rounds) {
    const times = [];
    for (let r = 0; r < rounds; r++) {
      const pin = this.innerPin();
      times.push(this.batch([...this.fill(pin, 100), this.swapLine(1, pin)], 'put100'));
      fs.rmSync(pin);
    }
    return { p50Ms: percentile(times, 50), p99Ms: percentile(times, 99), rounds };
  }

  /** 64 slots pointed at 64 ready inner maps: 64 `map update` lines in one batch file. */
  slots64(rounds) {
    const pins = Array.from({ length: 64 }, () => this.innerPin());
    this.batch(pins.flatMap((pin) => [...this.fill(pin, 0)]), 'prep64');
    const times = [];
    for (let r = 0; r < rounds; r++) times.push(this.batch(pins.map((pin, i) => this.swapLine(64 + i, pin)), 'slots64'));
    for (const pin of pins) fs.rmSync(pin);
    return { p50Ms: percentile(times, 50), rounds };
  }

  /** Fill-and-swap of n entries: create, n `map update` lines, the outer update. */
  fillAndSwap(n) {
    const pin = this.innerPin();
    const ms = this.batch(
      (function* (self) {
        yield* self.fill(pin, n, n);
        yield self.swapLine(2, pin);
      })(this),
      `fill${n}`,
    );
    fs.rmSync(pin);
    return { ms };
  }
}

/** Writes an iterable of lines to a file in large chunks (a 1M-line batch file is ~100 MB). */
function writeLines(file, lines) {
  const fd = fs.openSync(file, 'w');
  try {
    let buf = '';
    for (const line of lines) {
      buf += line + '\n';
      if (buf.length > 1 << 20) {
        fs.writeSync(fd, buf);
        buf = '';
      }
    }
    if (buf) fs.writeSync(fd, buf);
  } finally {
    fs.closeSync(fd);
  }
}
