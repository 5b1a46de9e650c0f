// Numbers from <linux/bpf.h>. Kept here by name so that nothing above the kernel
// layer spells a raw map type or flag.

export const MapType = {
  UNSPEC: 0,
  HASH: 1,
  ARRAY: 2,
  PROG_ARRAY: 3,
  PERF_EVENT_ARRAY: 4,
  PERCPU_HASH: 5,
  PERCPU_ARRAY: 6,
  STACK_TRACE: 7,
  CGROUP_ARRAY: 8,
  LRU_HASH: 9,
  LRU_PERCPU_HASH: 10,
  LPM_TRIE: 11,
  ARRAY_OF_MAPS: 12,
  HASH_OF_MAPS: 13,
  DEVMAP: 14,
  SOCKMAP: 15,
  CPUMAP: 16,
  XSKMAP: 17,
  SOCKHASH: 18,
  CGROUP_STORAGE: 19,
  REUSEPORT_SOCKARRAY: 20,
  PERCPU_CGROUP_STORAGE: 21,
  QUEUE: 22,
  STACK: 23,
  SK_STORAGE: 24,
  DEVMAP_HASH: 25,
  STRUCT_OPS: 26,
  RINGBUF: 27,
  INODE_STORAGE: 28,
  TASK_STORAGE: 29,
  BLOOM_FILTER: 30,
  USER_RINGBUF: 31,
  CGRP_STORAGE: 32,
  ARENA: 33,
} as const;

export type MapTypeName = keyof typeof MapType;

const mapTypeNames = new Map<number, MapTypeName>(
  (Object.entries(MapType) as [MapTypeName, number][]).map(([name, value]) => [value, name]),
);

/** 'ARRAY_OF_MAPS' for 12; `UNKNOWN(99)` for numbers this build does not know. */
export function mapTypeName(type: number): string {
  return mapTypeNames.get(type) ?? `UNKNOWN(${type})`;
}

export function isMapInMap(type: number): boolean {
  return type === MapType.ARRAY_OF_MAPS || type === MapType.HASH_OF_MAPS;
}

/** Per-CPU maps carry one value per possible CPU, each rounded up to 8 bytes. */
export function isPerCpu(type: number): boolean {
  return (
    type === MapType.PERCPU_HASH ||
    type === MapType.PERCPU_ARRAY ||
    type === MapType.LRU_PERCPU_HASH ||
    type === MapType.PERCPU_CGROUP_STORAGE
  );
}

export const MapFlag = {
  NO_PREALLOC: 1 << 0,
  NO_COMMON_LRU: 1 << 1,
  NUMA_NODE: 1 << 2,
  RDONLY: 1 << 3,
  WRONLY: 1 << 4,
  STACK_BUILD_ID: 1 << 5,
  ZERO_SEED: 1 << 6,
  RDONLY_PROG: 1 << 7,
  WRONLY_PROG: 1 << 8,
  CLONE: 1 << 9,
  MMAPABLE: 1 << 10,
  PRESERVE_ELEMS: 1 << 11,
  INNER_MAP: 1 << 12,
} as const;

export type MapFlagName = keyof typeof MapFlag;

/** ['NO_PREALLOC', 'INNER_MAP'] for 0x1001; unknown bits as hex. */
export function mapFlagNames(flags: number): string[] {
  const names: string[] = [];
  let rest = flags >>> 0;
  for (const [name, bit] of Object.entries(MapFlag)) {
    if (rest & bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest) names.push(`0x${rest.toString(16)}`);
  return names;
}

/** Flags of BPF_MAP_UPDATE_ELEM. */
export const UpdateFlag = {
  ANY: 0,
  NOEXIST: 1,
  EXIST: 2,
  LOCK: 4,
} as const;

export type UpdateMode = 'any' | 'noexist' | 'exist';

export const updateModeFlag: Record<UpdateMode, number> = {
  any: UpdateFlag.ANY,
  noexist: UpdateFlag.NOEXIST,
  exist: UpdateFlag.EXIST,
};

/** XDP_* return codes, for reading BPF_PROG_TEST_RUN results. */
export const XdpAction = {
  ABORTED: 0,
  DROP: 1,
  PASS: 2,
  TX: 3,
  REDIRECT: 4,
} as const;

/** BPF object names are at most 15 characters (BPF_OBJ_NAME_LEN - 1). */
export const BPF_OBJ_NAME_MAX = 15;
