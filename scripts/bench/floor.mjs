// The kernel floor: builds scripts/bench/floor.c (cc -O2 ... -lbpf) and runs
// it on bpf/bench.bpf.o, the object mimd is benchmarked with.
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { ROOT } from './paths.mjs';

/** Compiles floor.c into `dir`; returns the binary's path. */
export function buildFloor(dir) {
  const bin = path.join(dir, 'floor');
  execFileSync('cc', ['-O2', '-Wall', '-I', path.join(ROOT, 'bpf'), '-o', bin, path.join(ROOT, 'scripts', 'bench', 'floor.c'), '-lbpf'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  return bin;
}

/**
 * Runs the floor: { swapP50Us, swapP99Us, put100P50Us, batch64P50Us, fillUs: { [n]: us } }.
 * libbpf's own messages (stderr) are kept back unless it fails.
 */
export function runFloor(bin, { rounds = 200, sizes }) {
  const out = execFileSync(bin, ['-o', path.join(ROOT, 'bpf', 'bench.bpf.o'), '-r', String(rounds), ...sizes.map(String)], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out);
}
