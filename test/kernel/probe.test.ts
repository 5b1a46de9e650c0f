// probeKernel() on this machine's kernel (6.18): what must hold here. Batch
// updates of outer maps work, a batch costs one wait (or waits are too short
// to tell), BPF_F_INNER_MAP is accepted, the four link types exist, and
// HASH_OF_MAPS replace is atomic (6.16+): keys stay in place and no program
// lookup misses. The control case shows the structural check can see a
// non-atomic replace: a plain HASH map still replaces by insert-and-unlink.
// Probes close what they make: the test counts the process's BPF fds around them.
import * as fs from 'node:fs';
import t from 'tap';
import { probeKernel, replaceRelinks } from '../../daemon/src/kernel/probe';
import { BpfMap, MapType } from '../../daemon/src/kernel';

/** This process's fds on BPF objects (maps, programs, links). */
const bpfFds = (): number =>
  fs.readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return fs.readlinkSync(`/proc/self/fd/${fd}`).startsWith('anon_inode:bpf');
    } catch {
      return false; // the fd of the directory listing itself, gone by now
    }
  }).length;

t.test('probeKernel on this kernel', async (t) => {
  const fdsBefore = bpfFds();
  const features = await probeKernel({ concurrency: 4 });
  t.comment(JSON.stringify(features));
  t.equal(bpfFds(), fdsBefore, 'every map, program and link the probes made is closed again');

  t.equal(features.batchOuterMaps.value, true, `batch updates of an outer map work: ${features.batchOuterMaps.detail}`);
  t.ok(
    features.oneWaitPerBatch.value === true || features.oneWaitPerBatch.value === 'indistinguishable',
    `one wait per batch, or indistinguishable: ${features.oneWaitPerBatch.detail}`,
  );
  t.equal(features.innerMapFlag.value, true, `BPF_F_INNER_MAP accepted: ${features.innerMapFlag.detail}`);
  for (const type of ['xdp', 'tcx', 'perf_event', 'raw_tracepoint'] as const) {
    t.equal(features.linkTypes[type]?.value, true, `link type ${type}: ${features.linkTypes[type]?.detail ?? 'not probed'}`);
  }
  const atomic = features.atomicHashOfMapsReplace;
  t.equal(atomic.value, true, `HASH_OF_MAPS replace is atomic on 6.18: ${atomic.detail}`);
  t.equal(atomic.relinks, false, 'replaced keys stay in place');
  t.equal(atomic.missed, 0, 'no program lookup missed');
  if (features.cpus >= 2) t.ok(atomic.lookups > 0 && atomic.replaces > 16, `the race ran: ${atomic.lookups} lookups, ${atomic.replaces} replaces`);
  t.equal(features.swapStrategy, 'batch');
  t.ok(features.probeMs < 10_000, `probing took ${features.probeMs} ms`);
});

t.test('only the configured kinds of attachment have their link types probed', async (t) => {
  const features = await probeKernel({ attachKinds: ['xdp', 'tracepoint'], concurrency: 1, raceMs: 50 });
  t.strictSame(Object.keys(features.linkTypes).sort(), ['perf_event', 'xdp']);
  t.equal(features.swapStrategy, 'batch', 'a batch is one update: concurrency 1 does not change it');
});

t.test('control: a plain HASH map replaces by insert-and-unlink, and the structural check sees it', async (t) => {
  for (const flags of [0, 1 /* NO_PREALLOC */]) {
    const map = await BpfMap.create({ type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 16, flags });
    t.teardown(() => map.close());
    for (let i = 0; i < 16; i++) {
      const key = Buffer.alloc(4);
      key.writeUInt32LE(i);
      await map.update(key, Buffer.alloc(4));
    }
    const { relinks } = await replaceRelinks(map, Buffer.from([1, 0, 0, 0]));
    t.equal(relinks, true, `HASH (flags ${flags}): a replaced key moved in its bucket`);
  }
});

t.test('the CLI prints the same JSON', async (t) => {
  const { execFileSync } = await import('node:child_process');
  const path = await import('node:path');
  const cli = path.join(__dirname, '..', '..', 'dist', 'daemon', 'src', 'kernel', 'probe-cli.js');
  if (!fs.existsSync(cli)) {
    t.fail(`${cli} is missing: build with node scripts/setup.mjs --for-tests`);
    return;
  }
  const out = JSON.parse(execFileSync(process.execPath, [cli], { encoding: 'utf8' })) as Record<string, unknown>;
  for (const key of ['batchOuterMaps', 'oneWaitPerBatch', 'innerMapFlag', 'linkTypes', 'atomicHashOfMapsReplace', 'swapStrategy']) {
    t.ok(key in out, `${key} is in the output`);
  }
  t.equal(out['swapStrategy'], 'batch');
});
