// How keys and values cross the API as JSON. Every route goes through one
// EntryCodec per map (slots included), so the typed, BTF-driven codec can
// replace this raw one without touching routes.
//
// Raw codec: a field is an unsigned integer of its size in host byte order (a
// JSON number, or a decimal string for values above 2^53), or a hex string
// "0x..." of exactly the field's bytes in memory order. Fields of sizes other
// than 1, 2, 4 and 8 bytes are hex only.
import { endianness } from 'node:os';
import type { EntryJson } from './slots-api';
import { badInput } from './errors';

/** A JSON Schema (draft 2020-12 subset) describing a field's JSON form. */
export type JsonSchema = Record<string, unknown>;

export interface FieldCodec {
  readonly size: number;
  /** Throws a MIMD_BAD_INPUT error naming `field` (and the path below it) when the value does not fit. */
  encode(value: EntryJson, field: string): Buffer;
  /**
   * As encode, but writes the bytes into `target` at `offset` (every byte of
   * the field, padding zeroed): how bulk fills build their batch buffers
   * without a buffer per entry.
   */
  encodeInto(value: EntryJson, target: Buffer, offset: number, field: string): void;
  decode(bytes: Buffer): EntryJson;
  /** The JSON form this codec accepts and produces. */
  schema(): JsonSchema;
}

export interface EntryCodec {
  readonly key: FieldCodec;
  readonly value: FieldCodec;
}

const LITTLE_ENDIAN = endianness() === 'LE';
const INTEGER_SIZES = new Set([1, 2, 4, 8]);
const HEX = /^0x([0-9a-fA-F]*)$/;
const DECIMAL = /^(0|[1-9][0-9]*)$/;

class RawField implements FieldCodec {
  private readonly max: bigint;

  constructor(readonly size: number) {
    this.max = (1n << BigInt(8 * size)) - 1n;
  }

  private get integer(): boolean {
    return INTEGER_SIZES.has(this.size);
  }

  private expected(): string {
    const hex = `a hex string "0x..." of exactly ${this.size} bytes (${this.size * 2} hex digits)`;
    return this.integer ? `an unsigned integer of ${this.size} bytes (0 to ${this.max}) or ${hex}` : hex;
  }

  encode(value: EntryJson, field: string): Buffer {
    if (typeof value === 'string') {
      const hex = HEX.exec(value);
      if (hex) {
        const digits = hex[1] ?? '';
        if (digits.length !== this.size * 2) {
          throw badInput(field, `expected ${this.size} bytes, got ${digits.length / 2}`);
        }
        return Buffer.from(digits, 'hex');
      }
      if (this.integer && DECIMAL.test(value)) return this.fromInteger(BigInt(value), field, value);
      throw badInput(field, `expected ${this.expected()}, got ${JSON.stringify(value)}`);
    }
    if (typeof value === 'number' && this.integer) {
      if (!Number.isSafeInteger(value) || value < 0) {
        throw badInput(field, `expected ${this.expected()}, got ${value} (numbers above 2^53 go as decimal strings)`);
      }
      return this.fromInteger(BigInt(value), field, String(value));
    }
    throw badInput(field, `expected ${this.expected()}, got ${describe(value)}`);
  }

  encodeInto(value: EntryJson, target: Buffer, offset: number, field: string): void {
    // The common case of a bulk fill, without a BigInt or a buffer per entry.
    if (typeof value === 'number' && this.integer && this.size <= 4 && Number.isInteger(value) && value >= 0 && value <= Number(this.max)) {
      if (LITTLE_ENDIAN) target.writeUIntLE(value, offset, this.size);
      else target.writeUIntBE(value, offset, this.size);
      return;
    }
    this.encode(value, field).copy(target, offset);
  }

  private fromInteger(n: bigint, field: string, shown: string): Buffer {
    if (n > this.max) throw badInput(field, `expected at most ${this.max} (${this.size} bytes), got ${shown}`);
    const bytes = Buffer.alloc(this.size);
    let rest = n;
    for (let i = 0; i < this.size; i++) {
      bytes[LITTLE_ENDIAN ? i : this.size - 1 - i] = Number(rest & 0xffn);
      rest >>= 8n;
    }
    return bytes;
  }

  schema(): JsonSchema {
    const hex = { type: 'string', pattern: `^0x[0-9a-fA-F]{${this.size * 2}}$` };
    if (!this.integer) return hex;
    return {
      anyOf: [
        { type: 'integer', minimum: 0, maximum: Math.min(Number(this.max), Number.MAX_SAFE_INTEGER) },
        { type: 'string', pattern: '^(0|[1-9][0-9]*)$' },
        hex,
      ],
    };
  }

  decode(bytes: Buffer): EntryJson {
    if (!this.integer) return `0x${bytes.toString('hex')}`;
    let n = 0n;
    for (let i = 0; i < this.size; i++) {
      n = (n << 8n) | BigInt(bytes[LITTLE_ENDIAN ? this.size - 1 - i : i] ?? 0);
    }
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : n.toString();
  }
}

export function rawCodec(keySize: number, valueSize: number): EntryCodec {
  return { key: new RawField(keySize), value: new RawField(valueSize) };
}

/**
 * A slot as it appears in a URL: always a string, so a decimal integer
 * becomes a number before the key codec sees it.
 */
export function slotFromUrl(codec: FieldCodec, slot: string): Buffer {
  const value: EntryJson = DECIMAL.test(slot) && slot.length <= 15 ? Number(slot) : slot;
  return codec.encode(value, 'slot');
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  return `${typeof value} ${JSON.stringify(value)}`;
}
