// The pin root must be on a mounted bpffs. Outside one, a pin fails with a
// confusing error (and mkdir -p on a plain sysfs /sys/fs/bpf never ends:
// mkdir answers ENOENT and then EEXIST forever), so mimd checks first.
import * as fs from 'node:fs';
import * as path from 'node:path';

/** statfs(2) f_type of bpffs (include/uapi/linux/magic.h). */
const BPF_FS_MAGIC = 0xcafe4a11;

/**
 * Checks that `pinRoot` is (or would be created) on bpffs, then creates it
 * mode 0700 and narrows it to 0700 if it existed wider: pins are the access
 * control (anyone who can open an outer map's pin can swap its slots).
 */
export function preparePinRoot(pinRoot: string): void {
  let existing = pinRoot;
  while (!fs.existsSync(existing)) {
    const parent = path.dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  const type = fs.statfsSync(existing).type;
  if (type !== BPF_FS_MAGIC) {
    throw Object.assign(new Error(`pinRoot: ${existing} is not on a bpffs mount (mount -t bpf bpf /sys/fs/bpf)`), { code: 'ENOTBPFFS' });
  }
  fs.mkdirSync(pinRoot, { recursive: true, mode: 0o700 });
  fs.chmodSync(pinRoot, 0o700);
}
