/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shapes shared by bpf/bench.bpf.c (what mimd is benchmarked with) and
 * scripts/bench/floor.c (the same work done with libbpf directly), so the
 * two always measure maps of the same type and sizes.
 */
#ifndef MIMD_BENCH_H
#define MIMD_BENCH_H

/* Outer ARRAY_OF_MAPS: enough slots for 64 concurrent activations plus the rest. */
#define BENCH_SLOTS 128
/* Inner HASH template (u32 -> u64); fills pass a larger max_entries (HASH is resizable). */
#define BENCH_INNER_MAX 1024

#endif
