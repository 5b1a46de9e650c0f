#!/usr/bin/env bash
# Packs the guest's initramfs for one kernel directory from fetch-kernel.sh:
# busybox (static, so it needs no libraries in the initramfs), the guest's init,
# and the kernel's 9p/virtio modules with their load order. Prints its path.
#
#   scripts/kernels/make-initramfs.sh KERNEL_DIR
set -euo pipefail
kdir=${1:?kernel directory}
here=$(cd "$(dirname "$0")" && pwd)
out="$kdir/initramfs.cpio.gz"
# rebuilt when the init script or busybox is newer than it
if [ -s "$out" ] && [ "$out" -nt "$here/guest-init.sh" ] && [ "$out" -nt /bin/busybox ]; then
  echo "$out"
  exit 0
fi
[ -x /bin/busybox ] || { echo "kernels: /bin/busybox missing (apt-get install busybox-static)" >&2; exit 1; }
file -L /bin/busybox 2>/dev/null | grep -q 'dynamically' &&
  { echo "kernels: /bin/busybox is not static (install busybox-static)" >&2; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/modules"
cp /bin/busybox "$root/bin/busybox"
cp "$here/guest-init.sh" "$root/init"
chmod 755 "$root/init"
cp "$kdir/load-order" "$root/load-order"
cp "$kdir"/modules/*.ko "$root/modules/" 2>/dev/null || true
(cd "$root" && find . | cpio -o -H newc --quiet | gzip -1) >"$out.tmp"
mv "$out.tmp" "$out"
echo "$out"
