// SPDX-License-Identifier: GPL-2.0
/*
 * The kernel floor for `npm run bench`: the same jobs mimd does, done with
 * libbpf directly and nothing else, so mimd's figures can be read as ratios.
 *
 *   swap:       one outer-map update of one slot (one RCU grace period)
 *   batch64:    one BPF_MAP_UPDATE_BATCH putting 64 inner maps into 64 slots
 *   fill <n>:   create an inner map and fill n entries by batch update
 *
 * Output: one JSON object on stdout. Times in microseconds.
 * Build: cc -O2 -o floor floor.c -lbpf
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

#define SLOTS 64
#define INNER_MAX 65536

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
	/* The example firewall's blocklist template: source address -> listed. */
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH, "floor_inner", 4, 1, max_entries, NULL);
	if (fd < 0) {
		fprintf(stderr, "floor: bpf_map_create inner: %s\n", strerror(-fd));
		exit(1);
	}
	return fd;
}

static int outer_map(int template_fd)
{
	LIBBPF_OPTS(bpf_map_create_opts, opts, .inner_map_fd = template_fd);
	int fd = bpf_map_create(BPF_MAP_TYPE_HASH_OF_MAPS, "floor_outer", 4, 4, SLOTS, &opts);
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
	uint8_t *values = malloc(n);
	for (unsigned int i = 0; i < n; i++) {
		keys[i] = i;
		values[i] = 1;
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

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 200;
	int template_fd = inner_map(INNER_MAX);
	int outer = outer_map(template_fd);
	double swap_p50, swap_p99, batch_p50;

	bench_swap(outer, rounds, &swap_p50, &swap_p99);
	bench_batch(outer, rounds / 10 > 5 ? rounds / 10 : 5, &batch_p50);
	printf("{\"swapP50Us\":%.2f,\"swapP99Us\":%.2f,\"batch64P50Us\":%.2f,\"fillUs\":{", swap_p50, swap_p99, batch_p50);
	const unsigned int sizes[] = {1000, 10000, 100000, 1000000};
	for (int i = 0; i < 4; i++) printf("%s\"%u\":%.1f", i ? "," : "", sizes[i], bench_fill(sizes[i]));
	printf("}}\n");
	close(outer);
	close(template_fd);
	return 0;
}
