// Frame builders for tests that feed packets to XDP/tc programs
// (BPF_PROG_TEST_RUN) or send them through a veth pair, plus the key
// encodings of bpf/firewall.h. Byte order follows the kernel structs:
// addresses in network order as they sit in the packet, counters and
// prefix lengths in host order.

import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';

export const ETH_HLEN = 14;
export const ETH_P_IP = 0x0800;
export const ETH_P_ARP = 0x0806;
export const ETH_P_IPV6 = 0x86dd;
export const IPPROTO_UDP = 17;

const IPV4_HLEN = 20;
const IPV6_HLEN = 40;
const UDP_HLEN = 8;

// Locally administered unicast addresses: never a real NIC's.
const DEFAULT_SRC_MAC = '02:00:00:00:00:01';
const DEFAULT_DST_MAC = '02:00:00:00:00:02';
const BROADCAST_MAC = 'ff:ff:ff:ff:ff:ff';

export interface EthernetOptions {
  srcMac?: string;
  dstMac?: string;
}

export interface Ipv4FrameOptions extends EthernetOptions {
  src: string;
  dst: string;
  /** IPv4 protocol number; default UDP (17). */
  proto?: number;
  /**
   * With UDP: the UDP payload (a UDP header is built around it).
   * With any other proto: the bytes after the IPv4 header, as given.
   */
  payload?: Buffer;
  srcPort?: number;
  dstPort?: number;
  ttl?: number;
}

export interface Ipv6FrameOptions extends EthernetOptions {
  src: string;
  dst: string;
  /** IPv6 next header; default UDP (17). */
  nextHeader?: number;
  /** Same rule as Ipv4FrameOptions.payload. */
  payload?: Buffer;
  srcPort?: number;
  dstPort?: number;
  hopLimit?: number;
}

export interface ArpFrameOptions extends EthernetOptions {
  senderIp?: string;
  targetIp?: string;
}

/** Ethernet + IPv4 (valid header checksum) + UDP (valid checksum). */
export function ipv4Frame(opts: Ipv4FrameOptions): Buffer {
  const src = ipv4ToBuffer(opts.src, 'src');
  const dst = ipv4ToBuffer(opts.dst, 'dst');
  const proto = opts.proto ?? IPPROTO_UDP;
  checkUint('proto', proto, 0xff);
  const ttl = opts.ttl ?? 64;
  checkUint('ttl', ttl, 0xff);

  const l4 =
    proto === IPPROTO_UDP
      ? udpSegment(opts, ipv4PseudoHeader(src, dst, proto))
      : opts.payload ?? Buffer.alloc(0);

  const ip = Buffer.alloc(IPV4_HLEN);
  ip[0] = 0x45; // version 4, IHL 5 (no options)
  ip.writeUInt16BE(IPV4_HLEN + l4.length, 2);
  ip.writeUInt16BE(0x4000, 6); // DF, so nothing expects fragmentation
  ip[8] = ttl;
  ip[9] = proto;
  src.copy(ip, 12);
  dst.copy(ip, 16);
  ip.writeUInt16BE(internetChecksum(ip), 10);

  return Buffer.concat([ethernetHeader(opts, DEFAULT_DST_MAC, ETH_P_IP), ip, l4]);
}

/** Ethernet + IPv6 + UDP (UDP checksum is mandatory over IPv6). */
export function ipv6Frame(opts: Ipv6FrameOptions): Buffer {
  const src = ipv6ToBuffer(opts.src, 'src');
  const dst = ipv6ToBuffer(opts.dst, 'dst');
  const nextHeader = opts.nextHeader ?? IPPROTO_UDP;
  checkUint('nextHeader', nextHeader, 0xff);
  const hopLimit = opts.hopLimit ?? 64;
  checkUint('hopLimit', hopLimit, 0xff);

  const l4 =
    nextHeader === IPPROTO_UDP
      ? udpSegment(opts, (udpLength) => {
          const pseudo = Buffer.alloc(40);
          src.copy(pseudo, 0);
          dst.copy(pseudo, 16);
          pseudo.writeUInt32BE(udpLength, 32);
          pseudo[39] = nextHeader;
          return pseudo;
        })
      : opts.payload ?? Buffer.alloc(0);

  const ip = Buffer.alloc(IPV6_HLEN);
  ip.writeUInt32BE(0x60000000, 0); // version 6, no traffic class, no flow label
  ip.writeUInt16BE(l4.length, 4);
  ip[6] = nextHeader;
  ip[7] = hopLimit;
  src.copy(ip, 8);
  dst.copy(ip, 24);

  return Buffer.concat([ethernetHeader(opts, DEFAULT_DST_MAC, ETH_P_IPV6), ip, l4]);
}

/** Broadcast ARP request: "who has targetIp? tell senderIp". */
export function arpFrame(opts: ArpFrameOptions = {}): Buffer {
  const senderIp = ipv4ToBuffer(opts.senderIp ?? '10.0.0.1', 'senderIp');
  const targetIp = ipv4ToBuffer(opts.targetIp ?? '10.0.0.2', 'targetIp');
  const senderMac = macToBuffer(opts.srcMac ?? DEFAULT_SRC_MAC, 'srcMac');

  const arp = Buffer.alloc(28);
  arp.writeUInt16BE(1, 0); // hardware type: Ethernet
  arp.writeUInt16BE(ETH_P_IP, 2);
  arp[4] = 6; // hardware address length
  arp[5] = 4; // protocol address length
  arp.writeUInt16BE(1, 6); // request
  senderMac.copy(arp, 8);
  senderIp.copy(arp, 14);
  // target hardware address stays zero: that is what the request asks for
  targetIp.copy(arp, 24);

  return Buffer.concat([ethernetHeader(opts, BROADCAST_MAC, ETH_P_ARP), arp]);
}

/**
 * An IPv4 address as 4 bytes in network order: the blocklist key, and
 * `iphdr.saddr` as the program reads it.
 */
export function ipv4ToBeU32Buffer(addr: string): Buffer {
  return ipv4ToBuffer(addr, 'addr');
}

/**
 * `struct policy_key` (8 bytes): prefixlen as a host-order u32 (little-endian
 * on x86 and arm64), then the address in network order. "10.0.0.0/8"; a bare
 * address means /32. Host bits are kept as given: the LPM trie compares only
 * the first prefixlen bits.
 */
export function ipv4Prefix(prefix: string): Buffer {
  const [addr = '', len, ...rest] = prefix.split('/');
  if (rest.length > 0 || (len !== undefined && !/^\d{1,2}$/.test(len))) {
    throw new TypeError(`not an IPv4 prefix: ${JSON.stringify(prefix)}`);
  }
  const prefixlen = len === undefined ? 32 : Number(len);
  if (prefixlen > 32) {
    throw new RangeError(`prefix length ${prefixlen} is over 32 in ${JSON.stringify(prefix)}`);
  }
  const key = Buffer.alloc(8);
  if (endianness() === 'LE') key.writeUInt32LE(prefixlen, 0);
  else key.writeUInt32BE(prefixlen, 0);
  ipv4ToBuffer(addr, 'prefix').copy(key, 4);
  return key;
}

function ethernetHeader(opts: EthernetOptions, defaultDst: string, ethertype: number): Buffer {
  const eth = Buffer.alloc(ETH_HLEN);
  macToBuffer(opts.dstMac ?? defaultDst, 'dstMac').copy(eth, 0);
  macToBuffer(opts.srcMac ?? DEFAULT_SRC_MAC, 'srcMac').copy(eth, 6);
  eth.writeUInt16BE(ethertype, 12);
  return eth;
}

interface UdpOptions {
  payload?: Buffer;
  srcPort?: number;
  dstPort?: number;
}

function udpSegment(opts: UdpOptions, pseudoHeader: (udpLength: number) => Buffer): Buffer {
  const payload = opts.payload ?? Buffer.from('mimd test');
  const srcPort = opts.srcPort ?? 40000;
  const dstPort = opts.dstPort ?? 9;
  checkUint('srcPort', srcPort, 0xffff);
  checkUint('dstPort', dstPort, 0xffff);
  const length = UDP_HLEN + payload.length;
  if (length > 0xffff) throw new RangeError(`UDP payload of ${payload.length} bytes is too long`);

  const udp = Buffer.alloc(length);
  udp.writeUInt16BE(srcPort, 0);
  udp.writeUInt16BE(dstPort, 2);
  udp.writeUInt16BE(length, 4);
  payload.copy(udp, UDP_HLEN);
  const sum = internetChecksum(Buffer.concat([pseudoHeader(length), udp]));
  // 0 on the wire means "no checksum"; a computed 0 is sent as all ones.
  udp.writeUInt16BE(sum === 0 ? 0xffff : sum, 6);
  return udp;
}

function ipv4PseudoHeader(src: Buffer, dst: Buffer, proto: number) {
  return (udpLength: number): Buffer => {
    const pseudo = Buffer.alloc(12);
    src.copy(pseudo, 0);
    dst.copy(pseudo, 4);
    pseudo[9] = proto;
    pseudo.writeUInt16BE(udpLength, 10);
    return pseudo;
  };
}

/** RFC 1071 ones' complement sum, over a buffer whose checksum field is zero. */
function internetChecksum(data: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < data.length; i += 2) sum += data.readUInt16BE(i);
  if (data.length % 2 === 1) sum += (data[data.length - 1] ?? 0) << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return ~sum & 0xffff;
}

function ipv4ToBuffer(addr: string, field: string): Buffer {
  if (!isIPv4(addr)) {
    throw new TypeError(`${field}: not an IPv4 address: ${JSON.stringify(addr)}`);
  }
  return Buffer.from(addr.split('.').map(Number));
}

function ipv6ToBuffer(addr: string, field: string): Buffer {
  if (!isIPv6(addr) || addr.includes('%')) {
    throw new TypeError(`${field}: not an IPv6 address: ${JSON.stringify(addr)}`);
  }
  let text = addr;
  const tail: number[] = [];
  // An embedded IPv4 tail ("::ffff:10.0.0.1") stands for the last two groups.
  const lastColon = text.lastIndexOf(':');
  const last = text.slice(lastColon + 1);
  if (last.includes('.')) {
    tail.push(...ipv4ToBuffer(last, field));
    text = `${text.slice(0, lastColon + 1)}0:0`;
  }
  const [head = '', rear] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const rearGroups = rear === undefined || rear === '' ? [] : rear.split(':');
  const zeros = rear === undefined ? 0 : 8 - headGroups.length - rearGroups.length;
  const groups = [...headGroups, ...Array<string>(zeros).fill('0'), ...rearGroups];

  const buf = Buffer.alloc(16);
  groups.forEach((group, i) => buf.writeUInt16BE(parseInt(group, 16), i * 2));
  if (tail.length > 0) Buffer.from(tail).copy(buf, 12);
  return buf;
}

function macToBuffer(mac: string, field: string): Buffer {
  if (!/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)) {
    throw new TypeError(`${field}: not a MAC address: ${JSON.stringify(mac)}`);
  }
  return Buffer.from(mac.split(':').map((octet) => parseInt(octet, 16)));
}

function checkUint(field: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${field} must be an integer in 0..${max}, got ${value}`);
  }
}
