// Where things are: the repository, the bench object, the daemon, bpftool.
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const BENCH_OBJECT = path.join(ROOT, 'bpf', 'bench.bpf.o');
export const BENCH_CONFIG = path.join(ROOT, 'scripts', 'bench', 'mimd.bench.yaml');
export const MAIN = path.join(ROOT, 'dist', 'daemon', 'src', 'main.js');
/** Debian installs bpftool in /usr/sbin, which is not on every PATH. */
export const BPFTOOL = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].find((p) => existsSync(p)) ?? 'bpftool';
