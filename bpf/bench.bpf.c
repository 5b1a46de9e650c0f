// SPDX-License-Identifier: GPL-2.0
/*
 * The object `npm run bench` loads into mimd: one ARRAY_OF_MAPS whose slots
 * hold HASH inner maps (u32 -> u64), and a trivial program that refers to it
 * (a map only becomes part of a loaded object through a program). The
 * program is never attached: an outer-map update waits one RCU grace period
 * whether or not a program runs.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

#include "bench.h"

struct bench_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BENCH_INNER_MAX);
	__type(key, __u32);
	__type(value, __u64);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, BENCH_SLOTS);
	__type(key, __u32);
	__array(values, struct bench_inner);
} outer SEC(".maps");

SEC("xdp")
int xdp_bench(struct xdp_md *ctx)
{
	__u32 key = 0;
	__u64 *value;
	void *inner = bpf_map_lookup_elem(&outer, &key);

	if (!inner)
		return XDP_PASS;
	value = bpf_map_lookup_elem(inner, &key);
	return value && *value ? XDP_DROP : XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
