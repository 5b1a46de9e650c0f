// Interface names to ifindexes, against a fake /sys/class/net and the real one.
import t from 'tap';
import { interfaceIndex, InterfaceNotFoundError, isValidInterfaceName } from '../../daemon/src/kernel/netdev';

t.test('reads the ifindex from sysfs', async (t) => {
  const sys = t.testdir({ eth0: { ifindex: '7\n' }, weird: { ifindex: 'x\n' } });
  t.equal(interfaceIndex('eth0', sys), 7);
  t.throws(() => interfaceIndex('weird', sys), /interface "weird": unexpected ifindex "x"/);
});

t.test('a missing interface is an error naming it', async (t) => {
  const sys = t.testdir({});
  const err = t.throws(() => interfaceIndex('eth9', sys)) as unknown;
  t.ok(err instanceof InterfaceNotFoundError);
  t.match(err, { code: 'ENODEV', interfaceName: 'eth9', message: `interface "eth9" not found (no ${sys}/eth9 in this network namespace)` });
});

t.test('names the kernel would refuse never reach the file system', async (t) => {
  for (const name of ['', '.', '..', '../../etc', 'a/b', 'a:1', 'a b', 'sixteen-chars-xx']) {
    t.equal(isValidInterfaceName(name), false, JSON.stringify(name));
    t.throws(() => interfaceIndex(name, '/nonexistent'), TypeError);
  }
  t.equal(isValidInterfaceName('fifteen-chars-x'), true);
});

t.test('lo exists on every host', async (t) => {
  t.equal(typeof interfaceIndex('lo'), 'number');
});
