// Just enough of the BPF instruction set to write the feature probes'
// programs by hand (struct bpf_insn: opcode, dst:4 src:4, off s16, imm s32).
// Raw instructions need no BTF and no object file: they load on any kernel.

export type Insn = Buffer;

function insn(code: number, dst: number, src: number, off: number, imm: number): Insn {
  const b = Buffer.alloc(8);
  b.writeUInt8(code, 0);
  b.writeUInt8(((src & 0xf) << 4) | (dst & 0xf), 1);
  b.writeInt16LE(off, 2);
  b.writeInt32LE(imm, 4);
  return b;
}

export const R0 = 0;
export const R1 = 1;
export const R2 = 2;
export const R6 = 6;
export const R7 = 7;
export const R10 = 10;

/** dst = imm (64-bit) */
export const movImm = (dst: number, imm: number): Insn => insn(0xb7, dst, 0, 0, imm);
/** dst = src (64-bit) */
export const movReg = (dst: number, src: number): Insn => insn(0xbf, dst, src, 0, 0);
/** dst += imm (64-bit) */
export const addImm = (dst: number, imm: number): Insn => insn(0x07, dst, 0, 0, imm);
/** *(u32 *)(dst + off) = imm */
export const storeImm32 = (dst: number, off: number, imm: number): Insn => insn(0x62, dst, 0, off, imm);
/** lock *(u64 *)(dst + off) += src */
export const atomicAdd64 = (dst: number, src: number, off: number): Insn => insn(0xdb, dst, src, off, 0);
/** dst = the map behind fd (BPF_LD_IMM64 with BPF_PSEUDO_MAP_FD): two instruction slots */
export const loadMapFd = (dst: number, fd: number): Insn => Buffer.concat([insn(0x18, dst, 1, 0, fd), insn(0, 0, 0, 0, 0)]);
/** if dst != imm goto pc + off */
export const jneImm = (dst: number, imm: number, off: number): Insn => insn(0x55, dst, 0, off, imm);
/** if dst == imm goto pc + off */
export const jeqImm = (dst: number, imm: number, off: number): Insn => insn(0x15, dst, 0, off, imm);
export const call = (helper: number): Insn => insn(0x85, 0, 0, 0, helper);
export const exit = (): Insn => insn(0x95, 0, 0, 0, 0);

export const HELPER_MAP_LOOKUP_ELEM = 1;

/** Instruction slots a piece of code takes (ld_imm64 takes two). */
export const slots = (code: Insn[]): number => code.reduce((n, i) => n + i.length / 8, 0);

export const program = (code: Insn[]): Buffer => Buffer.concat(code);
