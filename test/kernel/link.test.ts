// Attaching programs through the addon: XDP, tc (tcx), tracepoint and raw
// tracepoint links; pinning a link, opening the pin, detaching. Traffic goes
// only through a veth pair into a namespace this test makes.
import t from 'tap';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { spawn } from 'node:child_process';
import { BpfObject, BpfLink, type BpfMap } from '../../daemon/src/kernel';
import { fixture, netnsLink, pinDir, sendUdpFromNetns, u32, xdpProgId } from '../helpers/sandbox';

const HIT_XDP = 0;
const HIT_TC = 1;
const HIT_TRACEPOINT = 2;
const HIT_RAW_TRACEPOINT = 3;

async function loadAttachFixture(t: { teardown(fn: () => void): void }): Promise<{ obj: BpfObject; hits: BpfMap; target: BpfMap }> {
  const obj = BpfObject.open(fixture('attach.bpf.o'));
  t.teardown(() => obj.close());
  await obj.load();
  const hits = obj.map('hits');
  const target = obj.map('target');
  t.teardown(() => {
    hits.close();
    target.close();
  });
  return { obj, hits, target };
}

const hitCount = (hits: BpfMap, index: number): bigint => hits.lookup(u32(index))?.readBigUInt64LE(0) ?? 0n;

t.test('xdp link in generic mode sees traffic; pinned it survives its fd; detach removes it', async (t) => {
  const { obj, hits } = await loadAttachFixture(t);
  const net = netnsLink(t, 1);
  const dir = pinDir(t);

  const link = obj.attachXdp('xdp_pass', net.hostIfindex, 'generic');
  t.teardown(() => link.close());
  const info = link.info();
  t.equal(info.typeName, 'xdp');
  t.equal(info.ifindex, net.hostIfindex);
  t.equal(info.progId, obj.programId('xdp_pass'));
  t.equal(xdpProgId(net.host), info.progId, 'ip link shows the program');

  sendUdpFromNetns(net.netns, net.hostAddress);
  t.ok(hitCount(hits, HIT_XDP) > 0n, 'the program ran on ingress frames');

  const pin = path.join(dir, 'xdp_link');
  link.pin(pin);
  link.close();
  link.close();
  t.equal(link.closed, true, 'close is idempotent');
  t.equal(xdpProgId(net.host), info.progId, 'a pinned link stays attached after its fd closes');

  const reopened = BpfLink.openPinned(pin);
  t.teardown(() => reopened.close());
  t.equal(reopened.info().id, info.id, 'the same link through its pin');
  reopened.detach();
  t.equal(xdpProgId(net.host), null, 'detached');
  fs.unlinkSync(pin);

  t.throws(() => obj.attachXdp('xdp_pass', 999999, 'native'), {
    code: 'EINVAL',
    syscall: 'bpf_link_create',
    message: /ifindex 999999/,
  });
  t.throws(() => BpfLink.openPinned(path.join(dir, 'missing')), { code: 'ENOENT' });
});

t.test('an unpinned link detaches when its last fd closes', async (t) => {
  const { obj } = await loadAttachFixture(t);
  const net = netnsLink(t, 2);
  const link = obj.attachXdp('xdp_pass', net.hostIfindex, 'generic');
  t.ok(xdpProgId(net.host));
  link.close();
  t.equal(xdpProgId(net.host), null);
});

t.test('tc ingress and egress links (tcx)', async (t) => {
  const { obj, hits } = await loadAttachFixture(t);
  const net = netnsLink(t, 3);
  const ingress = obj.attachTc('tc_pass', net.hostIfindex, 'ingress');
  t.teardown(() => ingress.close());
  const egress = obj.attachTc('tc_pass', net.hostIfindex, 'egress');
  t.teardown(() => egress.close());
  t.equal(ingress.info().typeName, 'tcx');
  t.equal(ingress.info().ifindex, net.hostIfindex);
  const before = hitCount(hits, HIT_TC);
  sendUdpFromNetns(net.netns, net.hostAddress);
  t.ok(hitCount(hits, HIT_TC) > before, 'tc program ran');
  // bpftool 7.1 cannot name tcx attachments yet: the traffic is the proof.
  ingress.detach();
  egress.detach();
  const detached = hitCount(hits, HIT_TC);
  sendUdpFromNetns(net.netns, net.hostAddress);
  t.equal(hitCount(hits, HIT_TC), detached, 'after detach the program no longer runs');
  t.equal(ingress.info().ifindex, 0, 'a detached tcx link has no interface');
});

t.test('tracepoint and raw tracepoint links count this process', async (t) => {
  const { obj, hits, target } = await loadAttachFixture(t);
  // The programs count only the tgid in `target`: a child that calls getpid.
  const tp = obj.attachTracepoint('tp_getpid', 'syscalls', 'sys_enter_getpid');
  t.teardown(() => tp.close());
  const raw = obj.attachRawTracepoint('raw_sys_enter', 'sys_enter');
  t.teardown(() => raw.close());
  t.equal(tp.info().typeName, 'perf_event');
  t.equal(raw.info().typeName, 'raw_tracepoint');

  // This process makes syscalls all the time: the raw tracepoint sees them.
  await target.update(u32(0), u32(process.pid));
  fs.statSync('/');
  fs.statSync('/');
  t.ok(hitCount(hits, HIT_RAW_TRACEPOINT) > 0n, 'raw tracepoint ran for this process');

  // getpid: Node caches its pid, so ask a short-lived python to call it.
  const py = spawn('python3', ['-c', 'import os,sys\nsys.stdin.readline()\nfor _ in range(5): os.getpid()'], {
    stdio: ['pipe', 'ignore', 'inherit'],
  });
  t.teardown(() => {
    if (py.exitCode === null) py.kill();
  });
  await target.update(u32(0), u32(py.pid ?? 0));
  const exited = new Promise<number | null>((resolve) => py.on('exit', resolve));
  py.stdin?.end('go\n');
  t.equal(await exited, 0);
  t.ok(hitCount(hits, HIT_TRACEPOINT) >= 5n, 'tracepoint ran on each getpid');

  t.throws(() => obj.attachTracepoint('tp_getpid', 'syscalls', 'no_such_tracepoint'), {
    syscall: 'bpf_program__attach_tracepoint',
    code: 'ENOENT',
  });
  t.throws(() => obj.attachRawTracepoint('raw_sys_enter', 'no_such_tracepoint'), { code: 'ENOENT' });
});

t.test('pinned tracepoint links survive their fd', async (t) => {
  const { obj } = await loadAttachFixture(t);
  const dir = pinDir(t);
  const raw = obj.attachRawTracepoint('raw_sys_enter', 'sys_enter');
  const pin = path.join(dir, 'raw');
  raw.pin(pin);
  const id = raw.info().id;
  raw.close();
  const reopened = BpfLink.openPinned(pin);
  t.teardown(() => reopened.close());
  t.equal(reopened.info().id, id);
  t.throws(() => BpfLink.openPinned(path.join(dir, '..')), { code: /EINVAL|ENOENT|EPERM|EACCES/ }, 'a directory is not a link');
});
