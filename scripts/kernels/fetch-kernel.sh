#!/usr/bin/env bash
# Fetches one Debian kernel for the matrix and prints the directory that holds it:
#   <dir>/vmlinuz, <dir>/version, <dir>/modules/<name>.ko (uncompressed), <dir>/load-order
#
#   scripts/kernels/fetch-kernel.sh SUITE [META]     e.g. bookworm, or sid linux-image-amd64
#
# Why a private apt configuration: the machine's own sources list only its own
# suite, and changing them would change what `apt-get install` does on the host.
# Each suite gets its own lists and archive cache under the cache directory, read
# from the mirror the host already uses.
#
# Why the meta-package: the versioned name (linux-image-6.1.0-41-amd64) changes
# with every ABI bump; linux-image-amd64 in a suite always depends on the current one.
#
# Why the generic flavour (linux-image-amd64) and not -cloud: the cloud kernels
# build no 9p at all (bookworm's cloud config: CONFIG_NET_9P and CONFIG_9P_FS
# unset), and the guest reads the host's files over 9p. The generic flavour
# has 9p, 9pnet_virtio and virtio_pci as modules in all four suites.
set -euo pipefail
suite=${1:?suite}
meta=${2:-linux-image-amd64}
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"

apt_dir=$(private_apt "$suite")
# Lists older than a day are refreshed: a suite's kernel moves on, and the old .deb
# disappears from the mirror soon after.
if [ -z "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null)" ]; then
  log "$suite: reading package lists"
  apt_private "$apt_dir" update >&2
fi

# What the meta-package resolves to, kept until the lists change: parsing a
# suite's lists costs seconds, on every run.
resolved="$apt_dir/resolved"
if [ ! -s "$resolved" ] || [ -n "$(find "$apt_dir/lists" -maxdepth 1 -name '*_Packages*' -newer "$resolved")" ]; then
  pkg=$(apt_private_cache "$apt_dir" depends "$meta" | sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*\).*/\1/p' | head -n1)
  [ -n "$pkg" ] || die "$suite: $meta depends on no linux-image-<version> package"
  ver=$(apt_private_cache "$apt_dir" show "$pkg" | sed -n 's/^Version: //p' | head -n1)

  # Since 7.x the image package is only a shell: vmlinuz is in linux-binary-<abi>,
  # modules.order and modules.builtin in linux-base-<abi>,
  # the modules in linux-modules-<abi>, all exact dependencies of it.
  parts=("$pkg=$ver")
  for part in $(apt_private_cache "$apt_dir" show "$pkg=$ver" | sed -n 's/^Depends: //p' | head -n1 | tr ',' '\n' |
    sed -n 's/^ *\(linux-\(binary\|modules\|base\)-[^ ]*\) (= \([^)]*\)).*/\1=\3/p'); do
    parts+=("$part")
  done
  echo "$pkg $ver ${parts[*]}" >"$resolved.tmp" && mv "$resolved.tmp" "$resolved"
fi
read -r pkg ver parts_line <"$resolved"
read -r -a parts <<<"$parts_line"
out="$KERNEL_CACHE/kernels/$pkg-$ver"
if [ -s "$out/load-order" ] && [ -s "$out/vmlinuz" ]; then
  echo "$out"
  exit 0
fi

debs="$KERNEL_CACHE/debs"
mkdir -p "$debs"
files=()
for part in "${parts[@]}"; do
  name=${part%%=*} version=${part#*=}
  file="$debs/${name}_${version//:/%3a}_amd64.deb"
  if [ ! -s "$file" ]; then
    log "$suite: downloading $name $version"
    if ! (cd "$debs" && apt_private "$apt_dir" download "$part" >&2); then
      # The mirror drops a kernel's .deb soon after its successor arrives, while
      # our lists may be up to a day old: read them again and start over, once.
      [ -z "${MIMD_KERNELS_REFRESHED:-}" ] || die "$suite: cannot download $part"
      log "$suite: $part is gone from the mirror; reading the lists again"
      apt_private "$apt_dir" update >&2
      rm -f "$resolved"
      MIMD_KERNELS_REFRESHED=1 exec bash "$0" "$@"
    fi
  fi
  [ -s "$file" ] || die "$suite: no $file after download"
  files+=("$file")
done

tmp=$(mktemp -d "$KERNEL_CACHE/kernels/.extract.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
# Everything is extracted (one pass through the package either way), the few
# modules the guest loads are kept, the rest is removed with $tmp.
log "$suite: extracting $pkg"
for file in "${files[@]}"; do dpkg-deb -x "$file" "$tmp"; done
moddir=$(find "$tmp" -mindepth 3 -maxdepth 4 -type d -path '*/lib/modules/*' -name '[0-9]*' | head -n1)
[ -d "$moddir/kernel" ] || die "$suite: no lib/modules/<version>/kernel in $pkg"
kver=$(basename "$moddir")
needed=$(node "$here/module-closure.mjs" "$moddir" $GUEST_MODULES)
printf '%s\n' $needed >"$tmp/order"
mkdir -p "$tmp/out/modules"
# boot/vmlinuz-<version> up to 6.x, lib/modules/<version>/vmlinuz in 7.x
cp "$(find "$tmp" -name 'vmlinuz*' -type f | head -n1)" "$tmp/out/vmlinuz"
echo "$kver" >"$tmp/out/version"
: >"$tmp/out/load-order"
while read -r rel; do
  name=$(basename "$rel"); name=${name%%.ko*}
  # busybox insmod reads plain .ko only on some builds: decompress here, once.
  case "$rel" in
    *.ko.xz) xz -dc "$moddir/$rel" >"$tmp/out/modules/$name.ko" ;;
    *.ko.zst) zstd -qdc "$moddir/$rel" >"$tmp/out/modules/$name.ko" ;;
    *.ko.gz) gzip -dc "$moddir/$rel" >"$tmp/out/modules/$name.ko" ;;
    *) cp "$moddir/$rel" "$tmp/out/modules/$name.ko" ;;
  esac
  echo "$name" >>"$tmp/out/load-order"
done < <(grep . "$tmp/order" || true)
# an empty load-order is fine (all built in) but must exist with content for the cache check
[ -s "$tmp/out/load-order" ] || echo "# all built in" >"$tmp/out/load-order"
rm -rf "$out"
mv "$tmp/out" "$out"
# The kernel directory is the cache from now on: the packages (up to 120 MB
# each) would only take disk space.
rm -f "${files[@]}"
echo "$out"
