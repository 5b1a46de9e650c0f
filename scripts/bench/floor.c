// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel floor for `npm run bench`: the same jobs mimd does, done with
 * libbpf directly and nothing else, so mimd's figures can be read as ratios.
 *
 *   swap:       one outer-map update of one slot (one RCU grace period)
 *   put100:     create an inner map, fill 100 entries, swap it in (what a PUT does)
 *   batch64:    one BPF_MAP_UPDATE_BATCH putting 64 inner maps into 64 slots
 *   fill <n>:   create an inner map and fill n entries by batch update (fastest of 3)
 *
 * The maps have the shapes of bpf/bench.bpf.c (bpf/bench.h): an
 * ARRAY_OF_MAPS of BENCH_SLOTS slots holding HASH u32 -> u64 inner maps.
 *
 * Usage: floor [-o bench.bpf.o] [-r rounds] [fill sizes...]
 *   (default: 200 rounds; fills of 1000 10000 100000 1000000)
 * Output: one JSON object on stdout. Times in microseconds.
 * Build (npm run bench does it): cc -O2 -I bpf -o floor scripts/bench/floor.c -lbpf
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"

#define SLOTS 64
#define INNER_MAX BENCH_INNER_MAX
#define FILL_TRIES 3

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p)
{
	qsort(v, n, sizeof(*v), cmp_double);
	int i = (int)(p / 100.0 * (n - 1) + 0.5);
	return v[i];
}

static int inner_map(unsigned int max_entries)
{
	/* bench.bpf.c's inner template: u32 -> u64. */
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "floor_inner", sizeof(uint32_t), sizeof(uint64_t), max_entries, NULL);
	if (fd < 0) {
		fprintf(stderr, "floor: bpf_map_create inner: %s\n", strerror(-fd));
		exit(1);
	}
	return fd;
}

static int outer_map(int template_fd)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = template_fd);
	int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY_OF_MAPS, "floor_outer", 4, 4, BENCH_SLOTS, &opts);
	if (fd < 0) {
		fprintf(stderr, "floor: bpf_map_create outer: %s\n", strerror(-fd));
		exit(1);
	}
	return fd;
}

/* One slot swapped `rounds` times, each time with a fresh inner map (as mimd's PUT does). */
static void bench_swap(int outer, int rounds, double *p50, double *p99)
{
	double *t = calloc(rounds, sizeof(*t));
	uint32_t key = 0;
	for (int i = 0; i < rounds; i++) {
		int inner = inner_map(INNER_MAX);
		uint32_t value = inner;
		double start = now_us();
		int err = bpf_map_update_elem(outer, &key, &value, BPF_ANY);
		t[i] = now_us() - start;
		if (err) {
			fprintf(stderr, "floor: update: %s\n", strerror(-err));
			exit(1);
		}
		close(inner);
	}
	*p50 = pct(t, rounds, 50);
	*p99 = pct(t, rounds, 99);
	free(t);
}

/* Create an inner map, fill 100 entries by one batch update, swap it into slot 1: `rounds` times. */
static void bench_put100(int outer, int rounds, double *p50)
{
	double *t = calloc(rounds, sizeof(*t));
	uint32_t keys[100], slot = 1;
	uint64_t values[100];
	for (int i = 0; i < 100; i++) {
		keys[i] = i;
		values[i] = i + 1;
	}
	for (int r = 0; r < rounds; r++) {
		double start = now_us();
		int inner = inner_map(INNER_MAX);
		__u32 count = 100;
		int err = bpf_map_update_batch(inner, keys, values, &count, NULL);
		uint32_t value = inner;
		if (!err)
			err = bpf_map_update_elem(outer, &slot, &value, BPF_ANY);
		t[r] = now_us() - start;
		if (err) {
			fprintf(stderr, "floor: put100: %s\n", strerror(-err));
			exit(1);
		}
		close(inner);
	}
	*p50 = pct(t, rounds, 50);
	free(t);
}

/* 64 slots in one batch update, `rounds` times. */
static void bench_batch(int outer, int rounds, double *p50)
{
	double *t = calloc(rounds, sizeof(*t));
	uint32_t keys[SLOTS], values[SLOTS];
	int fds[SLOTS];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < SLOTS; i++) {
			fds[i] = inner_map(INNER_MAX);
			keys[i] = i;
			values[i] = fds[i];
		}
		__u32 count = SLOTS;
		double start = now_us();
		int err = bpf_map_update_batch(outer, keys, values, &count, NULL);
		t[r] = now_us() - start;
		if (err) {
			fprintf(stderr, "floor: update_batch: %s (%u done)\n", strerror(-err), count);
			exit(1);
		}
		for (int i = 0; i < SLOTS; i++) close(fds[i]);
	}
	*p50 = pct(t, rounds, 50);
	free(t);
}

/* Create an inner map of n entries and fill it by batch updates of 4096 (as mimd does). */
static double bench_fill(unsigned int n)
{
	uint32_t *keys = malloc(sizeof(*keys) * n);
	uint64_t *values = malloc(sizeof(*values) * n);
	for (unsigned int i = 0; i < n; i++) {
		keys[i] = i;
		values[i] = i + 1;
	}
	double start = now_us();
	int fd = inner_map(n < 16 ? 16 : n);
	for (unsigned int done = 0; done < n;) {
		__u32 count = n - done < 4096 ? n - done : 4096;
		int err = bpf_map_update_batch(fd, keys + done, values + done, &count, NULL);
		if (err) {
			fprintf(stderr, "floor: fill: %s\n", strerror(-err));
			exit(1);
		}
		done += count;
	}
	double took = now_us() - start;
	close(fd);
	free(keys);
	free(values);
	return took;
}

static void usage(void)
{
	fprintf(stderr, "usage: floor [-o bench.bpf.o] [-r rounds] [fill sizes...]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	const char *object_path = NULL;
	int rounds = 200, opt;
	while ((opt = getopt(argc, argv, "o:r:")) != -1) {
		if (opt == 'o')
			object_path = optarg;
		else if (opt == 'r')
			rounds = atoi(optarg);
		else
			usage();
	}
	if (rounds < 10)
		usage();
	unsigned int sizes[16] = {1000, 10000, 100000, 1000000};
	int nsizes = 4;
	if (optind < argc) {
		nsizes = 0;
		for (int i = optind; i < argc && nsizes < 16; i++) sizes[nsizes++] = (unsigned int)strtoul(argv[i], NULL, 10);
	}

	/*
	 * With -o the outer map is the object's own, loaded by libbpf with its
	 * program (not attached), exactly as mimd loads it; without, a bare
	 * outer map of the same shape.
	 */
	int template_fd = inner_map(INNER_MAX), outer;
	struct bpf_object *obj = NULL;
	if (object_path) {
		obj = bpf_object__open_file(object_path, NULL);
		if (!obj || bpf_object__load(obj)) {
			fprintf(stderr, "floor: cannot load %s\n", object_path);
			exit(1);
		}
		outer = bpf_object__find_map_fd_by_name(obj, "outer");
		if (outer < 0) {
			fprintf(stderr, "floor: %s has no map named outer\n", object_path);
			exit(1);
		}
	} else {
		outer = outer_map(template_fd);
	}

	double swap_p50, swap_p99, put100_p50, batch_p50;
	bench_swap(outer, rounds, &swap_p50, &swap_p99);
	bench_put100(outer, rounds / 4 > 5 ? rounds / 4 : 5, &put100_p50);
	bench_batch(outer, rounds / 10 > 5 ? rounds / 10 : 5, &batch_p50);
	printf("{\"rounds\":%d,\"swapP50Us\":%.2f,\"swapP99Us\":%.2f,\"put100P50Us\":%.2f,\"batch64P50Us\":%.2f,\"fillUs\":{",
	       rounds, swap_p50, swap_p99, put100_p50, batch_p50);
	/* Fastest of FILL_TRIES: the floor is what the kernel can do, not what a busy machine let it. */
	for (int i = 0; i < nsizes; i++) {
		double best = bench_fill(sizes[i]);
		for (int k = 1; k < FILL_TRIES; k++) {
			double t = bench_fill(sizes[i]);
			if (t < best)
				best = t;
		}
		printf("%s\"%u\":%.1f", i ? "," : "", sizes[i], best);
	}
	printf("}}\n");
	if (obj)
		bpf_object__close(obj);
	else
		close(outer);
	close(template_fd);
	return 0;
}
