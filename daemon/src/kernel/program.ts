// BpfProgram: an owned fd on a program loaded from raw instructions. Only the
// kernel feature probes use it (probe.ts): tiny throwaway programs that need
// neither BTF nor an object file, so they load the same on 5.10 and 7.x.
import { native, type NativeProgram } from './native';
import { BpfLink } from './link';
import { assertBuffer, assertNonEmptyString, assertUint } from './check';

export interface ProgramSpec {
  /** enum bpf_prog_type (ProgType) */
  type: number;
  insns: Buffer;
  license?: string;
  expectedAttachType?: number;
}

export class BpfProgram {
  private constructor(private readonly handle: NativeProgram) {}

  /** Verifies and loads off the event loop. */
  static async load(spec: ProgramSpec): Promise<BpfProgram> {
    assertUint('type', spec.type);
    assertBuffer('insns', spec.insns);
    if (spec.insns.length === 0 || spec.insns.length % 8 !== 0) {
      throw new TypeError(`insns: expected a non-empty multiple of 8 bytes, got ${spec.insns.length}`);
    }
    if (spec.expectedAttachType !== undefined) assertUint('expectedAttachType', spec.expectedAttachType);
    const license = spec.license ?? 'GPL';
    assertNonEmptyString('license', license);
    return new BpfProgram(
      await native.NativeProgram.load({ type: spec.type, insns: spec.insns, license, expectedAttachType: spec.expectedAttachType }),
    );
  }

  get fd(): number {
    return this.handle.fd;
  }

  /** Runs the program `repeat` times on `data` in the kernel (BPF_PROG_TEST_RUN), off the event loop. */
  testRun(data: Buffer, repeat: number): Promise<{ retval: number; duration: number }> {
    assertBuffer('data', data);
    assertUint('repeat', repeat);
    return this.handle.testRun(data, repeat);
  }

  /** BPF_LINK_CREATE. The link is the caller's: closing it detaches. */
  linkCreate(target: number, attachType: number, flags = 0): BpfLink {
    if (!Number.isInteger(target) || target < -1 || target > 0x7fffffff) {
      throw new TypeError(`target: expected an integer from -1 to 2147483647, got ${String(target)}`);
    }
    assertUint('attachType', attachType);
    assertUint('flags', flags);
    return BpfLink.adopt(this.handle.linkCreate(target, attachType, flags));
  }

  rawTracepointOpen(name: string): BpfLink {
    assertNonEmptyString('name', name);
    return BpfLink.adopt(this.handle.rawTracepointOpen(name));
  }

  /** Idempotent. */
  close(): void {
    this.handle.close();
  }
}
