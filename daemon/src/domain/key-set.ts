// Which keys a streamed upload has already sent, to refuse a duplicate the
// way a JSON body's is refused. The kernel cannot tell: a batch update takes
// no BPF_NOEXIST, and a hash map quietly keeps the last value of a repeated
// key. Keeping the keys themselves would make memory grow with key size; this
// keeps a 64-bit fingerprint of each (8 bytes an entry, half-full table), and
// a fingerprint seen before is only a suspicion, which the caller confirms by
// comparing keys.

/** An open-addressing set of 64-bit fingerprints of byte strings. */
export class FingerprintSet {
  private high: Uint32Array;
  private low: Uint32Array;
  private size = 0;

  constructor(expected = 1024) {
    let capacity = 1024;
    while (capacity < expected * 2) capacity *= 2;
    this.high = new Uint32Array(capacity);
    this.low = new Uint32Array(capacity);
  }

  /** Adds the key's fingerprint; true when it was there already (the key may be a duplicate). */
  add(bytes: Buffer, offset: number, length: number): boolean {
    const [h, l] = fingerprint(bytes, offset, length);
    if ((this.size + 1) * 2 > this.high.length) this.grow();
    return this.insert(h, l);
  }

  private insert(h: number, l: number): boolean {
    const mask = this.high.length - 1;
    for (let i = l & mask; ; i = (i + 1) & mask) {
      const slotHigh = this.high[i]!;
      const slotLow = this.low[i]!;
      if (slotHigh === 0 && slotLow === 0) {
        this.high[i] = h;
        this.low[i] = l;
        this.size++;
        return false;
      }
      if (slotHigh === h && slotLow === l) return true;
    }
  }

  private grow(): void {
    const { high, low } = this;
    this.high = new Uint32Array(high.length * 2);
    this.low = new Uint32Array(low.length * 2);
    this.size = 0;
    for (let i = 0; i < high.length; i++) {
      if (high[i] !== 0 || low[i] !== 0) this.insert(high[i]!, low[i]!);
    }
  }
}

/**
 * Two independent 32-bit multiplicative hashes (murmur3's mixing steps with
 * two seeds) over the key's bytes; never both zero, which marks an empty slot.
 */
function fingerprint(bytes: Buffer, offset: number, length: number): [number, number] {
  let a = 0x9747b28c ^ length;
  let b = 0x2f1d5a63 ^ length;
  const end = offset + length;
  let i = offset;
  for (; i + 4 <= end; i += 4) {
    const word = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    a = mix(a, word);
    b = mix(b, word ^ 0x5bd1e995);
  }
  let tail = 0;
  for (let shift = 0; i < end; i++, shift += 8) tail |= bytes[i]! << shift;
  a = finish(mix(a, tail));
  b = finish(mix(b, tail ^ 0x5bd1e995));
  if (a === 0 && b === 0) b = 1;
  return [a >>> 0, b >>> 0];
}

function mix(h: number, word: number): number {
  let k = Math.imul(word, 0xcc9e2d51);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, 0x1b873593);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function finish(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return h ^ (h >>> 16);
}
