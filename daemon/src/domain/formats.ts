// Per-field formats for what BTF cannot say: that a __u32 is an IPv4 address
// in network byte order, that a __u8[6] is a MAC address, that a struct is an
// LPM trie key. The typed codec (typed-codec.ts) puts one of these in place of
// the node it would build from BTF when the configuration names the field.
//
// Also home to what every node of the typed codec shares: the node interface
// and how a bad value is described in an error.
import { badInput } from './errors';
import type { JsonSchema } from './codec';

export const FORMAT_NAMES = ['ipv4', 'ipv6', 'mac', 'be16', 'be32', 'be64', 'hex', 'cidr'] as const;
export type FormatName = (typeof FORMAT_NAMES)[number];

export function isFormatName(name: string): name is FormatName {
  return (FORMAT_NAMES as readonly string[]).includes(name);
}

/**
 * One field of a key or value: writes its JSON form into `buf` at `offset`
 * (the buffer arrives zeroed; a node writes only its own bytes or bits) and
 * reads it back. `path` is the field's full name for errors.
 */
export interface CodecNode {
  /** bytes from `offset` that the node covers */
  readonly size: number;
  encode(value: unknown, buf: Buffer, offset: number, path: string): void;
  decode(buf: Buffer, offset: number): unknown;
  schema(): JsonSchema;
}

/** A value as an error message shows it: strings quoted, long ones cut. */
export function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return `an array of ${value.length}`;
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 64 ? `${value.slice(0, 64)}...` : value);
  return String(value);
}

export const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);
export const UNSIGNED_DECIMAL = '^(0|[1-9][0-9]*)$';
export const SIGNED_DECIMAL = '^(0|-?[1-9][0-9]*)$';
const UNSIGNED_DECIMAL_RE = new RegExp(UNSIGNED_DECIMAL);

// ---------------------------------------------------------------- addresses

const IPV4_OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
export const IPV4_PATTERN = `${IPV4_OCTET}(\\.${IPV4_OCTET}){3}`;
const IPV4_RE = new RegExp(`^${IPV4_PATTERN}$`);
/** Loose on purpose: the full IPv6 grammar as a regex helps no one; the codec checks. */
const IPV6_CHARS = '[0-9A-Fa-f:.]{2,45}';
const HEX_GROUP = /^[0-9a-fA-F]{1,4}$/;
const MAC_PATTERN = '([0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}|[0-9A-Fa-f]{2}(-[0-9A-Fa-f]{2}){5})';
const MAC_RE = new RegExp(`^${MAC_PATTERN}$`);
const HEX_RE = /^0x([0-9a-fA-F]*)$/;

/** Dotted quad, decimal octets without leading zeros (no octal ambiguity). */
export function parseIpv4(text: string): Buffer | null {
  if (!IPV4_RE.test(text)) return null;
  return Buffer.from(text.split('.').map(Number));
}

export function formatIpv4(bytes: Buffer, offset = 0): string {
  return `${bytes[offset]}.${bytes[offset + 1]}.${bytes[offset + 2]}.${bytes[offset + 3]}`;
}

/** Any RFC 4291 text form: '::' once, an embedded IPv4 address last. No zone ids. */
export function parseIpv6(text: string): Buffer | null {
  if (text.length < 2 || text.length > 45) return null;
  const halves = text.split('::');
  if (halves.length > 2) return null;
  const head = ipv6Words(halves[0] ?? '', halves.length === 1);
  if (!head) return null;
  let words: number[];
  if (halves.length === 1) {
    if (head.length !== 8) return null;
    words = head;
  } else {
    const tail = ipv6Words(halves[1] ?? '', true);
    if (!tail || head.length + tail.length > 7) return null;
    words = [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
  }
  const bytes = Buffer.alloc(16);
  words.forEach((word, i) => bytes.writeUInt16BE(word, i * 2));
  return bytes;
}

function ipv6Words(part: string, last: boolean): number[] | null {
  if (part === '') return [];
  const groups = part.split(':');
  const words: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const group = groups[i] ?? '';
    if (last && i === groups.length - 1 && group.includes('.')) {
      const v4 = parseIpv4(group);
      if (!v4) return null;
      words.push(v4.readUInt16BE(0), v4.readUInt16BE(2));
    } else if (HEX_GROUP.test(group)) {
      words.push(parseInt(group, 16));
    } else {
      return null;
    }
  }
  return words;
}

/**
 * RFC 5952: lower case, no leading zeros, the longest run of two or more zero
 * groups (the first of equals) as '::', and IPv4-mapped addresses
 * (::ffff:0:0/96, RFC 5952 section 5) in mixed notation.
 */
export function formatIpv6(bytes: Buffer, offset = 0): string {
  const words: number[] = [];
  for (let i = 0; i < 8; i++) words.push(bytes.readUInt16BE(offset + i * 2));
  if (words.slice(0, 5).every((w) => w === 0) && words[5] === 0xffff) {
    return `::ffff:${formatIpv4(bytes, offset + 12)}`;
  }
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (words[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && words[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = words.map((w) => w.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLength).join(':')}`;
}

/** 'aa:bb:cc:dd:ee:ff' or 'aa-bb-cc-dd-ee-ff', either case, one separator throughout. */
export function parseMac(text: string): Buffer | null {
  if (!MAC_RE.test(text)) return null;
  return Buffer.from(text.replace(/[:-]/g, ''), 'hex');
}

export function formatMac(bytes: Buffer, offset = 0): string {
  const parts: string[] = [];
  for (let i = 0; i < 6; i++) parts.push((bytes[offset + i] ?? 0).toString(16).padStart(2, '0'));
  return parts.join(':');
}

// ------------------------------------------------------------------- nodes

/** Builds the node for a whole-byte field of `size` bytes; throws an Error saying why the format does not fit. */
export function formatNode(format: Exclude<FormatName, 'cidr'>, size: number): CodecNode {
  const needs = (bytes: number): void => {
    if (size !== bytes) throw new Error(`format ${format} needs a ${bytes}-byte field, got ${size} bytes`);
  };
  switch (format) {
    case 'ipv4':
      needs(4);
      return addressNode(4, 'an IPv4 address "a.b.c.d"', parseIpv4, formatIpv4, {
        type: 'string',
        format: 'ipv4',
        pattern: `^${IPV4_PATTERN}$`,
      });
    case 'ipv6':
      needs(16);
      return addressNode(16, 'an IPv6 address', parseIpv6, formatIpv6, {
        type: 'string',
        format: 'ipv6',
        pattern: `^${IPV6_CHARS}$`,
      });
    case 'mac':
      needs(6);
      return addressNode(6, 'a MAC address "aa:bb:cc:dd:ee:ff"', parseMac, formatMac, {
        type: 'string',
        pattern: `^${MAC_PATTERN}$`,
      });
    case 'be16':
      needs(2);
      return bigEndianNode(2);
    case 'be32':
      needs(4);
      return bigEndianNode(4);
    case 'be64':
      needs(8);
      return bigEndianNode(8);
    case 'hex':
      return hexNode(size);
  }
}

function addressNode(
  size: number,
  expected: string,
  parse: (text: string) => Buffer | null,
  format: (bytes: Buffer, offset: number) => string,
  schema: JsonSchema,
): CodecNode {
  return {
    size,
    encode(value, buf, offset, path) {
      const bytes = typeof value === 'string' ? parse(value) : null;
      if (!bytes) throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      bytes.copy(buf, offset);
    },
    decode: (buf, offset) => format(buf, offset),
    schema: () => ({ ...schema }),
  };
}

/** An unsigned integer stored in network byte order; be64 above 2^53 as a decimal string, like u64. */
function bigEndianNode(size: 2 | 4 | 8): CodecNode {
  const max = (1n << BigInt(size * 8)) - 1n;
  const wide = size === 8;
  const expected = `an unsigned integer from 0 to ${max}${wide ? ' (a decimal string above 2^53)' : ''}`;
  return {
    size,
    encode(value, buf, offset, path) {
      let n: bigint;
      if (typeof value === 'number' && Number.isSafeInteger(value)) n = BigInt(value);
      else if (wide && typeof value === 'string' && UNSIGNED_DECIMAL_RE.test(value) && value.length <= 20) n = BigInt(value);
      else throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      if (n < 0n || n > max) throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      if (size === 8) buf.writeBigUInt64BE(n, offset);
      else buf.writeUIntBE(Number(n), offset, size);
    },
    decode(buf, offset) {
      if (size !== 8) return buf.readUIntBE(offset, size);
      const n = buf.readBigUInt64BE(offset);
      return n <= MAX_SAFE ? Number(n) : n.toString();
    },
    schema() {
      const integer = { type: 'integer', minimum: 0, maximum: wide ? Number.MAX_SAFE_INTEGER : Number(max) };
      return wide ? { anyOf: [integer, { type: 'string', pattern: UNSIGNED_DECIMAL, maxLength: 20 }] } : integer;
    },
  };
}

export function hexSchema(size: number): JsonSchema {
  return { type: 'string', pattern: `^0x[0-9a-fA-F]{${size * 2}}$` };
}

/**
 * Parses "0x..." of exactly `size` bytes; null when `value` is no hex string
 * at all, so callers can try other readings.
 */
export function parseHex(value: unknown, size: number, path: string): Buffer | null {
  if (typeof value !== 'string') return null;
  const match = HEX_RE.exec(value);
  if (!match) return null;
  const digits = match[1] ?? '';
  if (digits.length % 2 !== 0) {
    throw badInput(path, `expected ${size} bytes, got an odd number of hex digits (${digits.length})`);
  }
  if (digits.length !== size * 2) throw badInput(path, `expected ${size} bytes, got ${digits.length / 2}`);
  return Buffer.from(digits, 'hex');
}

function hexNode(size: number): CodecNode {
  return {
    size,
    encode(value, buf, offset, path) {
      const bytes = parseHex(value, size, path);
      if (!bytes) throw badInput(path, `expected a hex string "0x..." of exactly ${size} bytes, got ${describe(value)}`);
      bytes.copy(buf, offset);
    },
    decode: (buf, offset) => `0x${buf.toString('hex', offset, offset + size)}`,
    schema: () => hexSchema(size),
  };
}

/**
 * LPM trie key { __u32 prefixlen (host order); address (network order) } as
 * "10.0.0.0/8" or "2001:db8::/32"; a bare address is a full-length prefix.
 * Host bits are zeroed on input (the trie ignores them, but a canonical key
 * makes equal prefixes equal keys); decode shows the bytes as they are.
 */
export function cidrNode(addressBytes: 4 | 16, littleEndian: boolean): CodecNode {
  const bits = addressBytes * 8;
  const v4 = addressBytes === 4;
  const expected = v4 ? 'an IPv4 prefix "a.b.c.d/n" (n from 0 to 32)' : 'an IPv6 prefix "addr/n" (n from 0 to 128)';
  const lengthPattern = v4 ? '(3[0-2]|[12]?[0-9])' : '(12[0-8]|1[01][0-9]|[1-9]?[0-9])';
  return {
    size: 4 + addressBytes,
    encode(value, buf, offset, path) {
      if (typeof value !== 'string') throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      const slash = value.indexOf('/');
      const text = slash < 0 ? value : value.slice(0, slash);
      const address = v4 ? parseIpv4(text) : parseIpv6(text);
      if (!address) throw badInput(path, `expected ${expected}, got ${describe(value)}`);
      let prefixlen = bits;
      if (slash >= 0) {
        const length = value.slice(slash + 1);
        if (!UNSIGNED_DECIMAL_RE.test(length) || length.length > 3) {
          throw badInput(path, `expected ${expected}, got ${describe(value)}`);
        }
        prefixlen = Number(length);
        if (prefixlen > bits) throw badInput(path, `prefix length ${prefixlen} is longer than the ${bits} bits of the address`);
      }
      for (let bit = prefixlen; bit < bits; bit++) {
        const i = bit >> 3;
        address[i] = (address[i] ?? 0) & ~(0x80 >> (bit & 7));
      }
      if (littleEndian) buf.writeUInt32LE(prefixlen, offset);
      else buf.writeUInt32BE(prefixlen, offset);
      address.copy(buf, offset + 4);
    },
    decode(buf, offset) {
      const prefixlen = littleEndian ? buf.readUInt32LE(offset) : buf.readUInt32BE(offset);
      const address = v4 ? formatIpv4(buf, offset + 4) : formatIpv6(buf, offset + 4);
      return `${address}/${prefixlen}`;
    },
    schema: () => ({
      type: 'string',
      pattern: v4 ? `^${IPV4_PATTERN}(/${lengthPattern})?$` : `^${IPV6_CHARS}(/${lengthPattern})?$`,
    }),
  };
}
