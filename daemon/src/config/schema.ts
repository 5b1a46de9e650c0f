// The one schema of mimd's configuration. config/default.yaml supplies the
// top-level values; defaults declared here fill in optional fields of list
// items, because an override file replaces a list as a whole.
//
// `expected` on a schema is the wording the loader uses when a value does not
// match it (TypeBox's own messages name the regex, not the intent).
import { Type, type Static, type TLiteral, type TUnion } from '@sinclair/typebox';

/** Union of string literals; the loader lists the literals when a value is not one of them. */
function OneOf<const T extends string>(values: readonly T[], options: { default?: NoInfer<T>; description?: string } = {}): TUnion<TLiteral<T>[]> {
  return Type.Union(
    values.map((value) => Type.Literal(value)),
    options,
  );
}

function Strict<T extends Parameters<typeof Type.Object>[0]>(properties: T, description?: string) {
  return Type.Object(properties, { additionalProperties: false, description });
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export const XDP_MODES = ['auto', 'generic', 'native', 'offload'] as const;
export const TC_DIRECTIONS = ['ingress', 'egress'] as const;
export const ATTACH_TYPES = ['xdp', 'tc', 'tracepoint', 'raw_tracepoint'] as const;

// dev_valid_name(): 1-15 bytes (IFNAMSIZ - 1), no '/', ':' or whitespace, not "." or "..".
const InterfaceName = Type.String({
  pattern: '^(?!\\.{1,2}$)[^/:\\s]{1,15}$',
  expected: 'an interface name (1-15 characters, no "/", ":" or spaces)',
  description: 'network interface, e.g. eth0 or lo',
});

// The ELF symbol name of the program (libbpf looks programs up by it; it may be
// longer than the 15 characters the kernel keeps).
const ProgramName = Type.String({
  pattern: '^[A-Za-z_][A-Za-z0-9_]{0,127}$',
  expected: 'a BPF program name (a C identifier)',
});

export const XdpAttachSchema = Strict(
  {
    program: ProgramName,
    type: Type.Literal('xdp'),
    interface: InterfaceName,
    mode: OneOf(XDP_MODES, {
      default: 'auto',
      description: 'auto lets the kernel pick native if the driver supports it, else generic',
    }),
  },
  'attach an XDP program to a network interface',
);

export const TcAttachSchema = Strict(
  {
    program: ProgramName,
    type: Type.Literal('tc'),
    interface: InterfaceName,
    direction: OneOf(TC_DIRECTIONS, { default: 'ingress' }),
  },
  'attach a tc (sched_cls) program to a network interface',
);

export const TracepointAttachSchema = Strict(
  {
    program: ProgramName,
    type: Type.Literal('tracepoint'),
    tracepoint: Type.String({
      pattern: '^[A-Za-z0-9_]+/[A-Za-z0-9_]+$',
      expected: 'category/name, e.g. syscalls/sys_enter_getpid',
    }),
  },
  'attach a tracepoint program',
);

export const RawTracepointAttachSchema = Strict(
  {
    program: ProgramName,
    type: Type.Literal('raw_tracepoint'),
    tracepoint: Type.String({
      pattern: '^[A-Za-z0-9_]+$',
      expected: 'a raw tracepoint name, e.g. sys_enter',
    }),
  },
  'attach a raw tracepoint program',
);

/** Discriminated by `type`; the loader reports errors against the variant `type` selects. */
export const AttachSchema = Type.Union([XdpAttachSchema, TcAttachSchema, TracepointAttachSchema, RawTracepointAttachSchema]);

export const INCOMPATIBLE_PIN_ACTIONS = ['refuse', 'replace'] as const;
export const STOP_ACTIONS = ['keep', 'remove'] as const;

export const NON_ATOMIC_REPLACE_ACTIONS = ['warn', 'refuse'] as const;

export const FORMAT_NAMES = ['ipv4', 'ipv6', 'mac', 'be16', 'be32', 'be64', 'hex', 'cidr'] as const;

/**
 * How one outer map's slots, keys and values read in the API, for what BTF
 * cannot say. Paths start at slot, key or value: `key`, `value.addr`,
 * `value.ports[]`.
 */
export const MapCodecSchema = Strict({
  formats: Type.Record(
    Type.String({ pattern: '^(slot|key|value)(\\.[A-Za-z_][A-Za-z0-9_]*(\\[\\])?)*$' }),
    OneOf(FORMAT_NAMES),
    {
      default: {},
      // TypeBox leaves keys that match no pattern allowed; they are typos here.
      additionalProperties: false,
      expected: 'a map of field paths (slot, key or value, then .member...) to formats',
      description: 'per-field formats: ipv4, ipv6, mac, be16, be32, be64, hex, cidr',
    },
  ),
  defaults: Type.Optional(
    Strict({
      key: Type.Optional(Type.Unknown()),
      value: Type.Optional(Type.Unknown()),
    }),
  ),
  // Optional rather than defaulted: defaults inside a record's values are not filled in. Absent means warn.
  onNonAtomicReplace: Type.Optional(
    OneOf(NON_ATOMIC_REPLACE_ACTIONS, {
      description:
        'HASH_OF_MAPS only, on kernels where replacing a key is not atomic (before 6.16): warn (the default) at start, or refuse swaps into occupied slots',
    }),
  ),
});

export const ObjectSchema = Strict({
  name: Type.String({
    pattern: '^[a-z0-9_-]{1,32}$',
    expected: '1-32 characters of a-z, 0-9, _ and -',
    description: 'unique name of the object in mimd (used in pin paths and the API)',
  }),
  path: Type.String({
    minLength: 1,
    pattern: '^[^\\x00]+$',
    expected: 'a path to a BPF object file (.bpf.o)',
    description: 'relative paths resolve against the package root',
  }),
  attach: Type.Array(AttachSchema, { default: [] }),
  maps: Type.Record(Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.]*$' }), MapCodecSchema, {
    default: {},
    expected: 'a map of outer map names to their formats and defaults',
  }),
  onIncompatiblePin: OneOf(INCOMPATIBLE_PIN_ACTIONS, {
    default: 'refuse',
    description:
      'a pinned outer map that differs from the object (type, sizes, flags, inner template): refuse to start, or replace it and carry over the slots that fit',
  }),
});

export const LogSchema = Strict({
  level: OneOf(LOG_LEVELS, { default: 'info' }),
});

export const SCOPES = ['read', 'write', 'admin'] as const;

const AbsolutePath = (expected: string, description?: string) =>
  Type.String({ pattern: '^/[^\\x00]*$', expected, ...(description ? { description } : {}) });

export const TokenSchema = Strict({
  id: Type.String({
    pattern: '^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$',
    expected: 'a token id: 1-64 characters of A-Z, a-z, 0-9, _ . @ -',
    description: 'who holds the token; audit records name it',
  }),
  sha256: Type.String({
    pattern: '^[0-9a-f]{64}$',
    expected: 'the sha256 of the token: 64 lower-case hex digits (`mimd token` prints it)',
  }),
  scope: OneOf(SCOPES, { description: 'read: GET; write: also put, stage, activate, rollback, patch, delete; admin: also reload' }),
  maps: Type.Optional(
    Type.Array(Type.String({ pattern: '^[a-z0-9_-]{1,32}/[A-Za-z_][A-Za-z0-9_.]*$', expected: 'an outer map as object/map, e.g. firewall/blocklist' }), {
      minItems: 1,
      expected: 'a non-empty list of outer maps (object/map) the token is limited to',
    }),
  ),
});

export const SocketSchema = Strict({
  path: AbsolutePath('an absolute path for the unix socket', 'the API socket; its directory is created mode 0750'),
  group: Type.Union([Type.String({ pattern: '^[A-Za-z_][A-Za-z0-9_.-]{0,31}$', expected: 'a group name' }), Type.Null()], {
    expected: 'a group name, or null for the group of the user mimd runs as',
    description: 'members of this group may connect (socket mode 0660, directory 0750)',
  }),
  scope: OneOf(SCOPES, { description: 'what a peer on the socket may do without a token' }),
});

export const TlsSchema = Strict({
  cert: AbsolutePath('an absolute path to a PEM certificate (chain)'),
  key: AbsolutePath('an absolute path to the PEM private key'),
});

export const TcpSchema = Strict({
  host: Type.String({
    minLength: 1,
    expected: 'an address to listen on, e.g. 127.0.0.1',
    description: 'on a non-loopback address TLS is required',
  }),
  port: Type.Integer({ minimum: 0, maximum: 65535, expected: 'a TCP port from 0 to 65535 (0: any free port)' }),
  tls: Type.Optional(TlsSchema),
});

export const RateLimitSchema = Strict({
  max: Type.Integer({ minimum: 1, maximum: 1_000_000, expected: 'changes allowed per principal per window (1 to 1000000)' }),
  windowMs: Type.Integer({ minimum: 100, maximum: 3_600_000, expected: 'the window in milliseconds (100 to 3600000)' }),
});

export const ApiSchema = Strict({
  socket: Type.Union([SocketSchema, Type.Null()], { expected: 'a socket setting (path, group, scope), or null for no socket' }),
  tcp: Type.Union([TcpSchema, Type.Null()], { expected: 'a TCP listener (host, port, tls), or null for none' }),
  tokens: Type.Array(TokenSchema, { default: [], expected: 'a list of tokens (id, sha256, scope, maps)' }),
  bodyLimit: Type.Integer({
    minimum: 1024,
    maximum: 1 << 30,
    expected: 'a request body limit in bytes, from 1024 to 1073741824',
  }),
  maxEntries: Type.Integer({
    minimum: 1,
    maximum: 100_000_000,
    expected: 'the most entries one request may carry (1 to 100000000)',
  }),
  rateLimit: RateLimitSchema,
  requestTimeoutMs: Type.Integer({
    minimum: 1000,
    maximum: 3_600_000,
    expected: 'how long a request may take in milliseconds (1000 to 3600000)',
  }),
});

export const AuditSchema = Strict({
  destination: Type.String({
    pattern: '^(stdout|/[^\\x00]*)$',
    expected: 'stdout, or an absolute path of a file to append to',
    description: 'where the audit records of every change go',
  }),
});

export const SwapQueueSchema = Strict({
  capacity: Type.Integer({
    minimum: 1,
    maximum: 1_000_000,
    expected: 'how many outer-map updates may wait at once (1 to 1000000); beyond it requests get 503',
  }),
  concurrency: Type.Integer({
    minimum: 1,
    maximum: 64,
    expected: 'how many outer-map updates run in the kernel at once (1 to 64)',
  }),
});

export const ConfigSchema = Strict({
  pinRoot: Type.String({
    pattern: '^/[^\\x00]*$',
    expected: 'an absolute path',
    description: 'bpffs directory where mimd pins what it owns',
  }),
  stateDir: Type.String({
    pattern: '^/[^\\x00]*$',
    expected: 'an absolute path',
    description: 'directory where mimd records what the kernel cannot hold (templates, version numbers, labels)',
  }),
  stateFsync: Type.Boolean({
    expected: 'true or false',
    description: 'fsync every slot record before a change is answered (true), or replace records by rename only (false)',
  }),
  onStop: OneOf(STOP_ACTIONS, {
    description: 'keep: programs stay attached and maps pinned when mimd stops; remove: mimd removes everything it owns',
  }),
  log: LogSchema,
  objects: Type.Array(ObjectSchema, { default: [] }),
  api: ApiSchema,
  audit: AuditSchema,
  retain: Type.Integer({
    minimum: 0,
    maximum: 1000,
    expected: 'how many versions to keep per slot besides the active one (0 to 1000)',
  }),
  swapQueue: SwapQueueSchema,
});

export type Config = Static<typeof ConfigSchema>;
export type LogConfig = Static<typeof LogSchema>;
export type ApiConfig = Static<typeof ApiSchema>;
export type TokenConfig = Static<typeof TokenSchema>;
export type Scope = (typeof SCOPES)[number];
export type AuditConfig = Static<typeof AuditSchema>;
export type LogLevel = (typeof LOG_LEVELS)[number];
export type ObjectConfig = Static<typeof ObjectSchema>;
export type MapCodecConfig = Static<typeof MapCodecSchema>;
export type NonAtomicReplaceAction = (typeof NON_ATOMIC_REPLACE_ACTIONS)[number];
export type FormatName = (typeof FORMAT_NAMES)[number];
export type StopAction = (typeof STOP_ACTIONS)[number];
export type AttachConfig = Static<typeof AttachSchema>;
export type AttachType = AttachConfig['type'];
export type XdpAttachConfig = Static<typeof XdpAttachSchema>;
export type TcAttachConfig = Static<typeof TcAttachSchema>;
export type TracepointAttachConfig = Static<typeof TracepointAttachSchema>;
export type RawTracepointAttachConfig = Static<typeof RawTracepointAttachSchema>;
export type XdpMode = (typeof XDP_MODES)[number];
export type TcDirection = (typeof TC_DIRECTIONS)[number];
