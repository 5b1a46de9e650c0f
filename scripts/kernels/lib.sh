# Shared by the scripts in scripts/kernels/: the cache location, the modules the
# guest loads, and the private apt configuration. Sourced, not run.

# Outside the repo, so that a fresh clone and `git clean` keep the downloads.
KERNEL_CACHE=${MIMD_KERNEL_CACHE:-/var/cache/mimd-kernels}
mkdir -p "$KERNEL_CACHE/kernels"

# What the guest's init loads (with their dependencies, from each module's modinfo):
# virtio_pci finds the 9p device, 9pnet_virtio is its transport, 9p the filesystem.
GUEST_MODULES="virtio_pci 9pnet_virtio 9p"

# The mirror the host already uses (deb.debian.org here), from its deb822 or one-line sources.
host_mirror() {
  { grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
    grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | awk '{print $2}'
  } | grep -E '/debian/?$' | head -n1 || true
}
MIRROR=${MIMD_DEBIAN_MIRROR:-$(host_mirror)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}

log() { echo "kernels: $*" >&2; }
die() { echo "kernels: $*" >&2; exit 1; }

# Creates (once) the directory of a suite's private apt state and prints it.
private_apt() {
  local suite=$1 dir="$KERNEL_CACHE/apt/$1"
  mkdir -p "$dir/lists/partial" "$dir/archives/partial" "$dir/etc/preferences.d" "$dir/etc/apt.conf.d"
  [ -f "$dir/status" ] || : >"$dir/status"
  echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] ${MIRROR%/} $suite main" >"$dir/sources.list"
  echo "$dir"
}

# Options that point apt at a suite's private state instead of the machine's.
apt_opts() {
  local dir=$1
  echo -o Dir::Etc::SourceList="$dir/sources.list" -o Dir::Etc::SourceParts="$dir/etc/sources.list.d" \
    -o Dir::Etc::Preferences="$dir/etc/preferences" -o Dir::Etc::PreferencesParts="$dir/etc/preferences.d" \
    -o Dir::State::Lists="$dir/lists" -o Dir::State::Status="$dir/status" \
    -o Dir::Cache="$dir" -o Dir::Cache::Archives="$dir/archives" \
    -o Dir::Cache::pkgcache="$dir/pkgcache.bin" -o Dir::Cache::srcpkgcache="$dir/srcpkgcache.bin" \
    -o APT::Architecture=amd64 -o APT::Architectures::=amd64 -o Acquire::Languages=none -o Debug::NoLocking=1 -o APT::Sandbox::User=root
}
apt_private() { local dir=$1; shift; apt-get -q $(apt_opts "$dir") "$@"; }
apt_private_cache() { local dir=$1; shift; apt-cache $(apt_opts "$dir") "$@"; }
