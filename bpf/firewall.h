/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * Layouts shared by firewall.bpf.c and whoever fills its maps. The same types
 * are in the object's BTF; keep every type that crosses the kernel boundary a
 * plain fixed-size struct without padding, so the byte layout is obvious.
 */
#ifndef MIMD_FIREWALL_H
#define MIMD_FIREWALL_H

#include <linux/types.h>

/* Slots of the `blocklist` ARRAY_OF_MAPS; a source listed in any slot drops. */
#define BLOCKLIST_SLOTS 4
/* Default capacity of one blocklist inner map (HASH; not compared on insert). */
#define BLOCKLIST_MAX_SOURCES 65536

/* Ingress interfaces that can carry their own `policy` trie. */
#define POLICY_MAX_IFACES 64
/* Default capacity of one policy inner map (LPM_TRIE; not compared on insert). */
#define POLICY_MAX_PREFIXES 16384

/* policy_value.verdict */
enum verdict {
	VERDICT_PASS = 0,
	VERDICT_DROP = 1,
};

/*
 * Indices of the per-CPU `counters` array. PASSED counts every frame let
 * through, IPv4 or not.
 */
enum counter {
	COUNTER_PASSED = 0,
	COUNTER_DROPPED_BLOCKLIST = 1,
	COUNTER_DROPPED_POLICY = 2,
	COUNTER_MAX,
};

/*
 * LPM_TRIE key: prefixlen in host byte order, then the IPv4 address in network
 * byte order exactly as it sits in the packet (8 bytes, no padding).
 */
struct policy_key {
	__u32 prefixlen;
	__u32 addr;
};

/* enum verdict is 4 bytes: the layout stays one u32, and BTF names the values. */
struct policy_value {
	enum verdict verdict;
};

#endif /* MIMD_FIREWALL_H */
