# mimd container image.
#
# mimd loads BPF programs, pins maps and attaches XDP to the host's interfaces,
# so the container needs the host's kernel objects, not a sandbox:
#
#   docker run -d --name mimd \
#     --privileged \
#     -v /sys/fs/bpf:/sys/fs/bpf \
#     -v /var/lib/mimd:/var/lib/mimd \
#     --network host \
#     mimd [--config /etc/mimd/override.yaml]
#
# - --privileged, or instead of it only the capabilities mimd uses:
#     --cap-drop ALL --cap-add BPF --cap-add NET_ADMIN --cap-add PERFMON
#     --cap-add SYS_RESOURCE --security-opt seccomp=unconfined
#   SYS_RESOURCE only matters on kernels before 5.11, which charge BPF maps to
#   RLIMIT_MEMLOCK. The seccomp option because default seccomp profiles allow
#   bpf(2) and perf_event_open(2) only with CAP_SYS_ADMIN (podman's on Debian
#   12 does; libbpf then fails with "Couldn't load trivial BPF program", EPERM).
# - -v /sys/fs/bpf:/sys/fs/bpf: pins land on the host's bpffs, so maps and links
#   outlive the container and a restarted mimd finds them.
# - -v /var/lib/mimd:/var/lib/mimd: the state directory (inner templates,
#   version numbers, labels) must outlive the container with the pins, or the
#   next start refuses the pinned outer maps it has no record of.
# - --network host: XDP attaches to interfaces of the network namespace mimd
#   runs in; to filter the host's traffic that must be the host's. The API then
#   listens on the host's loopback, as config/default.yaml says.
# An override file goes in with -v /path/override.yaml:/etc/mimd/override.yaml:ro
# and --config (or -e MIMD_CONFIG=...). Stopping the container sends SIGTERM;
# mimd's onStop decides whether the programs stay attached. With podman, build
# with --format docker: the OCI image format has no HEALTHCHECK.
#
# The base image is a build argument so that a machine without access to an
# image registry can build against a local equivalent (same Debian release, Node
# under /usr/local with its headers): test/container/image.test.ts does that
# with scripts/container-base.sh. Both stages use it: the builder adds the
# compilers, the runtime only the shared libraries the addon links to.
ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: addon, BPF objects, daemon ---------------------------------------
FROM ${NODE_IMAGE} AS builder

# clang for the BPF objects (-target bpf), g++/make/python3 for node-gyp, the
# -dev packages for the headers and link libraries of the addon (-lbpf -lelf -lz)
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang libbpf-dev libelf-dev zlib1g-dev make g++ python3 \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# dependencies first, so source edits do not invalidate this layer
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY binding.gyp ./
COPY addon/ addon/
# the node images ship Node's headers under /usr/local/include/node: node-gyp
# needs no download
RUN npx --no-install node-gyp rebuild --nodedir=/usr/local --jobs max

COPY bpf/ bpf/
RUN make -C bpf

COPY tsconfig.json ./
COPY daemon/ daemon/
RUN npx --no-install tsc -p tsconfig.json

RUN npm prune --omit=dev --no-audit --no-fund

# ---- runtime: Node and the shared libraries the addon links to -----------------
FROM ${NODE_IMAGE}

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libbpf1 libelf1 zlib1g \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
ENV NODE_ENV=production

# the same layout as the repo: the daemon finds the addon, the BPF objects and
# config/default.yaml relative to the directory holding package.json
COPY --from=builder /app/package.json ./
COPY --from=builder /app/node_modules/ node_modules/
COPY --from=builder /app/build/Release/mimd.node build/Release/
COPY --from=builder /app/dist/ dist/
COPY --from=builder /app/bpf/*.bpf.o bpf/
COPY config/ config/

# Healthy = GET /readyz answers 200: the objects are loaded and the programs
# attached. The image has no curl: node asks. It asks where the running mimd
# listens, read from /proc (its sockets; a listening unix socket first, else
# its TCP listener, a wildcard address as loopback), so the check follows any
# configuration without reading it. (JavaScript inside JSON: no double quotes
# and no backslashes in it.)
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "\
const fs = require('fs'), http = require('http'); \
const fail = (why) => { console.error('unhealthy: ' + why); process.exit(1); }; \
const read = (file) => { try { return fs.readFileSync(file, 'utf8'); } catch { return ''; } }; \
const pid = fs.readdirSync('/proc').find((p) => Number(p) > 0 && String(read('/proc/' + p + '/cmdline').split(String.fromCharCode(0))[1]).endsWith('dist/daemon/src/main.js')); \
if (!pid) fail('no mimd process'); \
const inodes = fs.readdirSync('/proc/' + pid + '/fd').map((fd) => { try { return fs.readlinkSync('/proc/' + pid + '/fd/' + fd); } catch { return ''; } }).filter((l) => l.startsWith('socket:[')).map((l) => l.slice(8, -1)); \
const table = (name) => read('/proc/' + pid + '/net/' + name).split(String.fromCharCode(10)).slice(1).map((l) => l.trim().split(/ +/)); \
const unix = table('unix').find((r) => inodes.includes(r[6]) && r[3] === '00010000' && r[5] === '01' && r[7] && !r[7].startsWith('@')); \
const tcp = table('tcp').concat(table('tcp6')).find((r) => inodes.includes(r[9]) && r[3] === '0A'); \
if (!unix && !tcp) fail('mimd ' + pid + ' listens on nothing'); \
const bytes = (hex) => hex.match(/.{8}/g).flatMap((word) => word.match(/../g).reverse()).map((b) => parseInt(b, 16)); \
const address = (hex) => { \
  const b = bytes(hex); \
  if (b.every((x) => x === 0)) return b.length === 4 ? '127.0.0.1' : '::1'; \
  if (b.length === 4) return b.join('.'); \
  return b.reduce((groups, x, i) => (i % 2 ? groups : groups.concat([((x << 8) | b[i + 1]).toString(16)])), []).join(':'); \
}; \
const where = unix ? { socketPath: unix[7] } : { host: address(tcp[1].split(':')[0]), port: parseInt(tcp[1].split(':')[1], 16) }; \
http.get({ ...where, path: '/readyz', timeout: 4000 }, (res) => { \
  res.resume(); \
  if (res.statusCode !== 200) fail('GET /readyz: ' + res.statusCode); \
  process.exit(0); \
}).on('timeout', function () { this.destroy(new Error('no answer within 4 s')); }).on('error', (err) => fail(JSON.stringify(where) + ' ' + err.message)); \
"]

ENTRYPOINT ["node", "dist/daemon/src/main.js"]
