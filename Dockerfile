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
# - --privileged, or instead of it the capabilities mimd uses:
#     --cap-add BPF --cap-add NET_ADMIN --cap-add PERFMON --cap-add SYS_RESOURCE
#   (Docker's default seccomp profile may still refuse bpf(2) without
#   --privileged; add --security-opt seccomp=unconfined if it does.)
# - -v /sys/fs/bpf:/sys/fs/bpf: pins land on the host's bpffs, so maps and links
#   outlive the container and a restarted mimd finds them.
# - -v /var/lib/mimd:/var/lib/mimd: the state directory (inner templates,
#   version numbers, labels) must outlive the container with the pins, or the
#   next start refuses the pinned outer maps it has no record of.
# - --network host: XDP attaches to interfaces of the network namespace mimd
#   runs in; to filter the host's traffic that must be the host's.
# An override file goes in with -v /path/override.yaml:/etc/mimd/override.yaml:ro
# and --config (or -e MIMD_CONFIG=...).

# ---- build: addon, BPF objects, daemon ---------------------------------------
FROM node:20-bookworm AS builder

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      clang llvm libbpf-dev libelf-dev zlib1g-dev make g++ python3 bpftool \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app

# dependencies first, so source edits do not invalidate this layer
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund

COPY binding.gyp ./
COPY addon/ addon/
# the node image ships Node's headers under /usr/local/include/node
RUN npx --no-install node-gyp rebuild --nodedir=/usr/local --jobs max

COPY bpf/ bpf/
RUN make -C bpf

COPY tsconfig.json ./
COPY daemon/ daemon/
RUN npx --no-install tsc -p tsconfig.json

RUN npm prune --omit=dev

# ---- runtime: Node and the shared libraries the addon links to -----------------
FROM node:20-bookworm-slim

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      libbpf1 libelf1 zlib1g \
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

ENTRYPOINT ["node", "dist/daemon/src/main.js"]
