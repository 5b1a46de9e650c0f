#!/usr/bin/env bash
# Builds a local stand-in for the Dockerfile's base image (node:20-bookworm-slim)
# and imports it into podman's storage under the name given:
#
#   scripts/container-base.sh localhost/mimd-base:test
#   podman build --build-arg NODE_IMAGE=localhost/mimd-base:test ...
#
# For machines that reach Debian's mirror and the npm registry but no image
# registry (test/container/image.test.ts runs it). The stand-in has the layout
# of the official Node images, so the Dockerfile needs no change for it:
#   - Debian bookworm, debootstrap's minbase variant, from the mirror and
#     suites this machine's apt uses (bookworm, -updates, -security);
#   - this machine's Node.js (`command -v node`, 20, 22 or 24), its npm
#     and its headers under /usr/local, as the official images have them;
#   - this machine's CA bundle as NODE_EXTRA_CA_CERTS, so that npm inside the
#     build trusts what npm on this machine trusts (a TLS-inspecting proxy in
#     front of the registry, say). The real image needs nothing of the kind.
#
# The debootstrapped root filesystem is cached as a tarball under
# .cache/container-base/ (git-ignored), keyed by the suites, the mirror and
# ROOTFS_RECIPE: it is downloaded and unpacked packages only, and apt-get
# update in the build refreshes the package lists anyway. Node is added fresh
# every time, so a Node upgrade on the machine reaches the stand-in at once.
# MIMD_CONTAINER_CACHE overrides the cache directory; DEBIAN_MIRROR the mirror.
#
# Needs root (debootstrap, and files owned by root in the image), debootstrap
# and podman. Prints the image's name on stdout, progress on stderr.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SUITE=bookworm
# Bump when the steps that make the cached root filesystem change, so that
# machines with an older tarball make a new one.
ROOTFS_RECIPE=1

usage() {
  echo "usage: $0 <image-name>   (e.g. localhost/mimd-base:test)" >&2
  exit 64
}
[ $# -eq 1 ] && [ -n "$1" ] || usage
image=$1

say() { echo "container-base: $*" >&2; }
die() { say "$*"; exit 1; }

[ "$(id -u)" -eq 0 ] || die "needs root (debootstrap; root-owned files in the image)"
for tool in debootstrap podman tar sha256sum; do
  command -v "$tool" >/dev/null || die "$tool not found (node scripts/setup.mjs --for-tests installs it)"
done

# ---- this machine's Node.js --------------------------------------------------
node_bin=$(readlink -f "$(command -v node)") || die "node not found"
node_version=$("$node_bin" -p process.versions.node)
# The Dockerfile's default base is node:20; the stand-in carries the machine's
# Node.js, which may be any release mimd supports (20, 22, 24), so that a
# machine that moved to a newer Node still tests the image.
case $node_version in 20.* | 22.* | 24.*) ;; *) die "node $node_version at $node_bin: mimd supports Node.js 20, 22 and 24" ;; esac
node_prefix=$(dirname "$(dirname "$node_bin")")
npm_dir=$node_prefix/lib/node_modules/npm
headers=$node_prefix/include/node
[ -f "$npm_dir/bin/npm-cli.js" ] || die "no npm at $npm_dir"
# node-gyp in the build finds them with --nodedir=/usr/local
[ -f "$headers/node_api.h" ] || die "no Node.js headers at $headers"

# ---- the Debian mirror apt uses -------------------------------------------------
# Each bookworm suite apt has lists for, as "site codename"; the base suite first.
apt_suites() {
  apt-get indextargets --format '$(SITE) $(CODENAME)' 'Identifier: Packages' 'Target-Of: deb' 2>/dev/null |
    awk -v s="$SUITE" '$2 == s || $2 == s "-updates" || $2 == s "-security"' |
    sort -u | sort -k2,2
}
suites=$(apt_suites || true)
mirror=${DEBIAN_MIRROR:-$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$suites")}
mirror=${mirror:-http://deb.debian.org/debian}
mirror=${mirror%/}
if [ -n "${DEBIAN_MIRROR:-}" ] || [ -z "$suites" ]; then
  suites="$mirror $SUITE"
fi

# ---- the root filesystem, cached --------------------------------------------------
cache=${MIMD_CONTAINER_CACHE:-$ROOT/.cache/container-base}
mkdir -p "$cache"
key=$( { echo "$ROOTFS_RECIPE $SUITE $mirror"; echo "$suites"; } | sha256sum | cut -c1-16)
rootfs_tar=$cache/$SUITE-minbase-$key.tar

work=$(mktemp -d "$cache/work.XXXXXX")
trap 'rm -rf "$work"' EXIT

if [ ! -s "$rootfs_tar" ]; then
  say "debootstrap $SUITE (minbase) from $mirror into the cache (once per machine)"
  rootfs=$work/rootfs
  debootstrap --variant=minbase --components=main "$SUITE" "$rootfs" "$mirror" >"$work/debootstrap.log" 2>&1 ||
    { tail -n 30 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }

  # apt sources as the official images have them: deb822, every suite apt
  # here uses, from the same sites
  rm -f "$rootfs/etc/apt/sources.list"
  while read -r site codename; do
    [ -n "$site" ] || continue
    printf 'Types: deb\nURIs: %s\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n\n' \
      "$site" "$codename"
  done <<<"$suites" >"$rootfs/etc/apt/sources.list.d/debian.sources"
  # a mirror that is a dated snapshot has Release files past their Valid-Until
  printf 'Acquire::Check-Valid-Until "false";\n' >"$rootfs/etc/apt/apt.conf.d/99stand-in-snapshot"

  # nothing of this host in the image: podman provides these at run time
  : >"$rootfs/etc/resolv.conf"
  : >"$rootfs/etc/hostname"
  chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/*.log "$rootfs"/var/cache/ldconfig/aux-cache

  tar --numeric-owner --xattrs -C "$rootfs" -cf "$work/rootfs.tar" .
  # other keys are older mirrors or script versions: not used again
  rm -f "$cache/$SUITE"-minbase-*.tar
  mv "$work/rootfs.tar" "$rootfs_tar"
  rm -rf "$rootfs"
else
  say "using cached $SUITE root filesystem $(basename "$rootfs_tar")"
fi

# ---- Node.js on top, the official images' layout ----------------------------------
say "adding node $node_version from $node_bin"
add=$work/add
mkdir -p "$add/usr/local/bin" "$add/usr/local/lib/node_modules" "$add/usr/local/include"
cp "$node_bin" "$add/usr/local/bin/node"
cp -a "$npm_dir" "$add/usr/local/lib/node_modules/npm"
cp -a "$headers" "$add/usr/local/include/node"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$add/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$add/usr/local/bin/npx"
changes=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change "ENV NODE_VERSION=$node_version"
  --change 'CMD ["node"]'
)
ca_bundle=/etc/ssl/certs/ca-certificates.crt
if [ -s "$ca_bundle" ]; then
  mkdir -p "$add/usr/local/share/stand-in"
  cp "$ca_bundle" "$add/usr/local/share/stand-in/ca-certificates.crt"
  changes+=(--change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/stand-in/ca-certificates.crt')
fi

cp "$rootfs_tar" "$work/image.tar"
# Appended, not merged: podman refuses a layer with the same path twice, so
# only the paths minbase does not have (its /usr/local holds empty directories).
tar -tf "$rootfs_tar" | sed 's,/$,,' | LC_ALL=C sort -u >"$work/base.list"
(cd "$add" && find . -mindepth 1) | LC_ALL=C sort >"$work/add.list"
LC_ALL=C comm -23 "$work/add.list" "$work/base.list" >"$work/new.list"
tar --numeric-owner --owner=0 --group=0 --no-recursion -C "$add" -rf "$work/image.tar" \
  --verbatim-files-from -T "$work/new.list"
say "importing $image"
podman import --quiet "${changes[@]}" "$work/image.tar" "$image" >/dev/null
echo "$image"
