// GET /v1/kernel: the kernel feature probes (kernel/probe.ts) and what mimd
// makes of them.
import { Type } from '@sinclair/typebox';
import { Nullable } from './common';

const Verdict = Type.Union([Type.Boolean(), Type.Literal('unknown')]);

const Probe = Type.Object({
  value: Verdict,
  detail: Type.String({ description: 'what the probe did and saw' }),
  errno: Type.Optional(Type.String({ description: "the kernel's answer when it refused" })),
});

const WaitProbe = Type.Object({
  value: Type.Union([Type.Boolean(), Type.Literal('indistinguishable'), Type.Literal('unknown')]),
  detail: Type.String(),
  errno: Type.Optional(Type.String()),
  singleMs: Nullable(Type.Number({ description: 'median time of a single-slot update, ms' })),
  batchMs: Nullable(Type.Number({ description: 'median time of a batch of `slots` slots, ms' })),
  slots: Type.Integer(),
  rounds: Type.Integer(),
});

const AtomicReplaceProbe = Type.Object({
  value: Verdict,
  detail: Type.String(),
  errno: Type.Optional(Type.String()),
  relinks: Nullable(Type.Boolean({ description: 'a replace moved the key in its bucket (insert new, unlink old)' })),
  lookups: Type.Integer({ description: 'program lookups made while keys were replaced' }),
  missed: Type.Integer({ description: 'of those, lookups that found no inner map' }),
  replaces: Type.Integer(),
});

const SwapStrategy = Type.Union([Type.Literal('batch'), Type.Literal('concurrent'), Type.Literal('single')]);

export const KernelFeatures = Type.Object({
  release: Type.String({ description: 'uname release, for people: no decision reads it' }),
  cpus: Type.Integer(),
  batchOuterMaps: Probe,
  oneWaitPerBatch: WaitProbe,
  innerMapFlag: Probe,
  linkTypes: Type.Object({
    xdp: Type.Optional(Probe),
    tcx: Type.Optional(Probe),
    perf_event: Type.Optional(Probe),
    raw_tracepoint: Type.Optional(Probe),
  }),
  atomicHashOfMapsReplace: AtomicReplaceProbe,
  swapStrategy: SwapStrategy,
  probeMs: Type.Integer(),
});

export const KernelReport = Type.Object({
  features: Nullable(KernelFeatures),
  swapStrategy: SwapStrategy,
  hashOfMaps: Type.Array(
    Type.Object({
      map: Type.String({ description: 'object/map' }),
      field: Type.String({ description: 'the configuration key of its policy' }),
      policy: Type.Union([Type.Literal('warn'), Type.Literal('refuse')]),
      atRisk: Type.Boolean({ description: 'replacing a key is not atomic (or not known to be) on this kernel' }),
    }),
  ),
});
