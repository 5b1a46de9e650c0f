// BTF as the kernel layer hands it over: one entry per type id (index 0 is
// void), in libbpf's terms. The typed codec (domain/typed-codec.ts) is built
// from these; nothing here reads bytes.

export interface BtfMember {
  name: string;
  type: number;
  bitOffset: number;
  /** 0 for a plain member */
  bitfieldSize: number;
}

export interface BtfEnumValue {
  name: string;
  /** a decimal string when the value is beyond 2^53 */
  value: number | string;
}

export type BtfType =
  | { id: number; kind: 'int'; name: string; size: number; bits: number; bitOffset: number; signed: boolean; char: boolean; bool: boolean }
  | { id: number; kind: 'float'; name: string; size: number }
  | { id: number; kind: 'array'; name: string; type: number; indexType: number; nelems: number }
  | { id: number; kind: 'struct' | 'union'; name: string; size: number; members: BtfMember[] }
  | { id: number; kind: 'enum' | 'enum64'; name: string; size: number; signed: boolean; values: BtfEnumValue[] }
  | { id: number; kind: 'fwd'; name: string; union: boolean }
  | {
      id: number;
      kind: 'ptr' | 'typedef' | 'volatile' | 'const' | 'restrict' | 'type_tag' | 'func' | 'var' | 'decl_tag';
      name: string;
      type: number;
    }
  | { id: number; kind: 'datasec' | 'func_proto' | 'unknown'; name: string };

/** Index = type id; entry 0 (void) is null. */
export type BtfTable = readonly (BtfType | null)[];
