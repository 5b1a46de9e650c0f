#!/bin/busybox sh
# PID 1 of the test guest (packed into the initramfs as /init by make-initramfs.sh).
# It loads the 9p/virtio modules, mounts the host's root read-only over 9p, gives
# it fresh writable /tmp, /run and the kernel filesystems, and runs the command
# named on the kernel command line (mimd.run=) chrooted into it, so the guest
# uses the host's Node.js, addon and compiled tests as they are.
#
# ttyS0 is the console (kernel log and this script's progress); ttyS1 carries
# only what the command prints, for the host to parse. Whatever happens, the
# guest powers off at the end: the host treats a missing end marker as failure.
/bin/busybox --install -s /bin
export PATH=/bin
mkdir -p /proc /sys /dev /host
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
echo "mimd-init: started on $(uname -r)"

arg() { sed -n "s/.*[ ]$1=\([^ ]*\).*/\1/p" /proc/cmdline; }

finish() {
  echo "mimd-init: $*"
  sync
  poweroff -f
}

for m in $(grep -v '^#' /load-order); do
  insmod "/modules/$m.ko" || finish "insmod $m failed"
done

# msize: bigger 9p messages, far fewer round trips through the emulated virtio
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 hostroot /host ||
  finish "cannot mount the host's root over 9p"
run=$(arg mimd.run)
cwd=$(arg mimd.cwd)
# A checkout under /tmp or /run (CI clones often are) would vanish under the
# fresh mounts below: keep a view of it and put it back on top of them.
case "$cwd" in
  /tmp/* | /run/*)
    mkdir -p /repo
    mount -o bind "/host$cwd" /repo || finish "cannot keep a view of $cwd"
    ;;
esac
mount -t proc proc /host/proc
mount -t sysfs sysfs /host/sys
mount -t devtmpfs devtmpfs /host/dev
mount -t tmpfs -o mode=1777 tmpfs /host/tmp
mount -t tmpfs tmpfs /host/run
if [ -d /repo ] && [ -n "$(ls -A /repo)" ]; then
  mkdir -p "/host$cwd"
  mount -o bind /repo "/host$cwd" || finish "cannot put $cwd back"
fi
mount -t bpf bpf /host/sys/fs/bpf || finish "cannot mount bpffs"
mount -t tracefs tracefs /host/sys/kernel/tracing 2>/dev/null || true
# the guest's kernel image must not look like the host's: drop the host's /lib/modules
mount -t tmpfs tmpfs /host/lib/modules 2>/dev/null || true

echo "mimd-init: running $run in $cwd"
# no echo of \r\n conversions or line discipline tricks on the results port
stty -F /host/dev/ttyS1 raw -echo 2>/dev/null || true
chroot /host /bin/sh -c "cd '$cwd' && exec /bin/sh '$run'" >/host/dev/ttyS1 2>&1 </dev/null
finish "command exited $?"
