// Network interface names to ifindexes, from sysfs (Node has no if_nametoindex).
// sysfs shows the interfaces of the network namespace it was mounted in,
// which for a daemon is its own.
import * as fs from 'node:fs';
import * as path from 'node:path';

export const SYS_CLASS_NET = '/sys/class/net';

export class InterfaceNotFoundError extends Error {
  readonly code = 'ENODEV';
  constructor(readonly interfaceName: string, detail: string) {
    super(`interface ${JSON.stringify(interfaceName)} not found (${detail})`);
    this.name = 'InterfaceNotFoundError';
  }
}

/** Same rule as the kernel's dev_valid_name(); it also keeps the name from escaping sysfs. */
export function isValidInterfaceName(name: string): boolean {
  return name.length > 0 && name.length < 16 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
}

export function interfaceIndex(name: string, sysClassNet: string = SYS_CLASS_NET): number {
  if (!isValidInterfaceName(name)) {
    throw new TypeError(`interface: ${JSON.stringify(name)} is not a valid interface name (1-15 characters, no "/", ":" or spaces)`);
  }
  const file = path.join(sysClassNet, name, 'ifindex');
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') {
      throw new InterfaceNotFoundError(name, `no ${path.join(sysClassNet, name)} in this network namespace`);
    }
    throw new Error(`interface ${JSON.stringify(name)}: cannot read ${file}: ${code ?? String(err)}`, { cause: err });
  }
  const ifindex = Number(text.trim());
  if (!Number.isInteger(ifindex) || ifindex <= 0) {
    throw new Error(`interface ${JSON.stringify(name)}: unexpected ifindex ${JSON.stringify(text.trim())} in ${file}`);
  }
  return ifindex;
}
