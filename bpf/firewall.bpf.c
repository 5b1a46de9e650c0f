// SPDX-License-Identifier: GPL-2.0
/*
 * XDP ingress firewall whose rules live in inner maps that mimd swaps while
 * the program runs. Only untagged IPv4 is filtered, on its source address.
 *
 * Order: the blocklist is checked before the policy, so a source blocked in
 * any slot stays blocked even where an interface's policy would pass it.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "firewall.h"

/*
 * Build-time hooks for test fixtures that rebuild this program with a small
 * difference (test/fixtures/firewall_v2.bpf.c, firewall_incompat.bpf.c).
 * The defaults are this program as shipped.
 */
/* How much a frame adds to its counter: a "new build" counts differently. */
#ifndef FIREWALL_COUNT_STEP
#define FIREWALL_COUNT_STEP 1
#endif

/* Template of every blocklist slot: source address (network order) -> listed. */
struct blocklist_inner {
	__uint(type, BPF_MAP_TYPE_HASH);
#ifdef FIREWALL_BLOCKLIST_INNER_FLAGS
	/* Only set by a fixture: an inner template pinned maps do not fit. */
	__uint(map_flags, FIREWALL_BLOCKLIST_INNER_FLAGS);
#endif
	__uint(max_entries, BLOCKLIST_MAX_SOURCES);
	__type(key, __u32);
	__type(value, __u8);
};

/* Several slots so lists from different owners can be swapped independently. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, BLOCKLIST_SLOTS);
	__type(key, __u32);
	__array(values, struct blocklist_inner);
} blocklist SEC(".maps");

/* Template of every per-interface policy; LPM_TRIE requires BPF_F_NO_PREALLOC. */
struct policy_inner {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, POLICY_MAX_PREFIXES);
	__type(key, struct policy_key);
	__type(value, struct policy_value);
};

/* Keyed by ingress ifindex: each interface gets its own trie, or none. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH_OF_MAPS);
	__uint(max_entries, POLICY_MAX_IFACES);
	__type(key, __u32);
	__array(values, struct policy_inner);
} policy SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, COUNTER_MAX);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/*
 * Never called, never loaded. clang 14 emits types that are reached only
 * through an inner map template (policy_inner's key and value) as BTF
 * forward declarations, which libbpf cannot size, so opening the object
 * fails. Naming the types in a function signature makes clang emit them in
 * full; the enums come along so BTF readers can name verdicts and counters.
 */
void firewall_btf_types(const struct policy_key *key,
			const struct policy_value *value, enum verdict verdict,
			enum counter counter)
{
}

static __always_inline int count(__u32 idx, int action)
{
	__u64 *n = bpf_map_lookup_elem(&counters, &idx);

	/* Per-CPU value: no other CPU writes it, so a plain add is race-free. */
	if (n)
		*n += FIREWALL_COUNT_STEP;
	return action;
}

static __always_inline int blocklisted(__u32 saddr)
{
	__u32 slot;

	/* Unrolled; the key is a copy because taking &slot defeats unrolling. */
#pragma unroll
	for (slot = 0; slot < BLOCKLIST_SLOTS; slot++) {
		__u32 key = slot;
		void *inner = bpf_map_lookup_elem(&blocklist, &key);
		__u8 *listed;

		/* Unused slots are normal, not an error. */
		if (!inner)
			continue;
		listed = bpf_map_lookup_elem(inner, &saddr);
		if (listed && *listed)
			return 1;
	}
	return 0;
}

static __always_inline int policy_drops(__u32 ifindex, __u32 saddr)
{
	struct policy_key key = { .prefixlen = 32, .addr = saddr };
	struct policy_value *val;
	void *trie;

	/* No trie for this interface means no policy: pass. */
	trie = bpf_map_lookup_elem(&policy, &ifindex);
	if (!trie)
		return 0;
	val = bpf_map_lookup_elem(trie, &key);
	return val && val->verdict == VERDICT_DROP;
}

SEC("xdp")
int xdp_firewall(struct xdp_md *ctx)
{
	void *data_end = (void *)(long)ctx->data_end;
	void *data = (void *)(long)ctx->data;
	struct ethhdr *eth = data;
	struct iphdr *ip;

	/* Runt frames and anything but untagged IPv4 are the stack's business. */
	if ((void *)(eth + 1) > data_end)
		return count(COUNTER_PASSED, XDP_PASS);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(COUNTER_PASSED, XDP_PASS);
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end || ip->version != 4)
		return count(COUNTER_PASSED, XDP_PASS);

	if (blocklisted(ip->saddr))
		return count(COUNTER_DROPPED_BLOCKLIST, XDP_DROP);
	if (policy_drops(ctx->ingress_ifindex, ip->saddr))
		return count(COUNTER_DROPPED_POLICY, XDP_DROP);
	return count(COUNTER_PASSED, XDP_PASS);
}

char LICENSE[] SEC("license") = "GPL";
