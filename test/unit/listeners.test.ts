// Where the API listens: the socket's directory (0750, the group's) and the
// socket (0660 from the moment it is bound), a stale socket removed, a live
// one or a file of another kind refused; group names looked up in a group file.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { ListenerError, groupId, listenOnSocket, prepareSocket, readTls } from '../../daemon/src/listeners';

// The last overload of t.test takes only the callback.
type Test = Parameters<Parameters<typeof t.test>[0]>[0];

const mode = (file: string) => fs.lstatSync(file).mode & 0o777;

/**
 * A socket path in a directory that does not exist yet, under a short temporary
 * directory of the test's own (a socket path has at most 107 bytes; tap's
 * fixture directories are longer), removed in teardown.
 */
function socketIn(t: Test): { dir: string; sock: string; root: string } {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'mimd-l-'));
  t.teardown(() => fs.rmSync(root, { recursive: true, force: true }));
  const dir = path.join(root, 'run', 'mimd');
  return { root, dir, sock: path.join(dir, 'mimd.sock') };
}

function listening(sock: string): Promise<net.Server> {
  const server = net.createServer((c) => c.end());
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(sock, () => resolve(server));
  });
}

const closed = (server: net.Server) => new Promise<void>((resolve) => server.close(() => resolve()));

function listenerError(t: Test, err: unknown, field: string, message: RegExp): void {
  t.ok(err instanceof ListenerError, 'a ListenerError');
  t.equal((err as ListenerError).field, field);
  t.match((err as Error).message, message);
  t.ok((err as Error).message.startsWith(`${field}: `), 'the message starts with the field');
}

t.test('groupId reads a group file', async (t) => {
  const dir = t.testdir({
    group: 'root:x:0:\nmimd:x:994:alice,bob\n#comment\nodd:x:abc:\nshort\nmimd2:x:995:\n',
  });
  const file = path.join(dir, 'group');
  t.equal(groupId('root', file), 0);
  t.equal(groupId('mimd', file), 994);
  t.equal(groupId('mimd2', file), 995, 'a name that extends another is its own');
  for (const name of ['nobody-here', 'odd', 'short', 'mim']) {
    let err: unknown;
    try {
      groupId(name, file);
    } catch (e) {
      err = e;
    }
    listenerError(t, err, 'api.socket.group', new RegExp(`no group "${name}" in ${file.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  }
  t.equal(groupId('root'), 0, 'the default file is /etc/group');
});

t.test('prepareSocket makes the directory 0750 and returns no gid without a group', async (t) => {
  const { dir, sock } = socketIn(t);
  const previous = process.umask(0o000);
  t.teardown(() => void process.umask(previous));
  t.strictSame(await prepareSocket({ path: sock, group: null, scope: 'admin' }), { gid: null });
  t.ok(fs.statSync(dir).isDirectory());
  t.equal(mode(dir), 0o750, 'the socket directory is 0750, even under umask 0');
  t.notOk(fs.existsSync(sock), 'no socket yet');
});

t.test('prepareSocket narrows a directory that existed wider', async (t) => {
  const { dir, sock } = socketIn(t);
  fs.mkdirSync(dir, { recursive: true });
  fs.chmodSync(dir, 0o777);
  await prepareSocket({ path: sock, group: null, scope: 'admin' });
  t.equal(mode(dir), 0o750);
});

t.test('prepareSocket gives the directory to the group', { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false }, async (t) => {
  const { dir, sock } = socketIn(t);
  const gid = groupId('daemon');
  t.strictSame(await prepareSocket({ path: sock, group: 'daemon', scope: 'read' }), { gid });
  t.equal(fs.statSync(dir).gid, gid);
  t.equal(mode(dir), 0o750);
});

t.test('prepareSocket refuses an unknown group before touching anything', async (t) => {
  const { dir, sock } = socketIn(t);
  let err: unknown;
  try {
    await prepareSocket({ path: sock, group: 'no-such-group-here', scope: 'read' });
  } catch (e) {
    err = e;
  }
  listenerError(t, err, 'api.socket.group', /no group "no-such-group-here" in \/etc\/group/);
  t.notOk(fs.existsSync(dir));
});

t.test('prepareSocket refuses a file of another kind at the socket path, and leaves it', async (t) => {
  const { dir, sock } = socketIn(t);
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(sock, 'precious');
  let err: unknown;
  try {
    await prepareSocket({ path: sock, group: null, scope: 'admin' });
  } catch (e) {
    err = e;
  }
  listenerError(t, err, 'api.socket.path', /exists and is not a socket/);
  t.equal(fs.readFileSync(sock, 'utf8'), 'precious', 'not removed');

  fs.rmSync(sock);
  fs.mkdirSync(sock);
  await t.rejects(prepareSocket({ path: sock, group: null, scope: 'admin' }), { field: 'api.socket.path', message: /is not a socket/ }, 'a directory either');
  fs.rmdirSync(sock);
  fs.symlinkSync('/etc/passwd', sock);
  await t.rejects(prepareSocket({ path: sock, group: null, scope: 'admin' }), { field: 'api.socket.path', message: /is not a socket/ }, 'nor a symlink');
  t.ok(fs.lstatSync(sock).isSymbolicLink(), 'the symlink is left');
});

t.test('prepareSocket refuses when the socket directory is a file', async (t) => {
  const { root, dir, sock } = socketIn(t);
  fs.mkdirSync(path.dirname(dir), { recursive: true });
  fs.writeFileSync(dir, 'a file');
  await t.rejects(prepareSocket({ path: sock, group: null, scope: 'admin' }), { field: 'api.socket.path', message: /is not a directory/ });
  t.equal(fs.readFileSync(path.join(root, 'run', 'mimd'), 'utf8'), 'a file');
});

t.test('prepareSocket removes a stale socket nobody answers on', async (t) => {
  const { dir, sock } = socketIn(t);
  fs.mkdirSync(dir, { recursive: true });
  // A process that bound the socket and died without removing it.
  const crash = spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => process.kill(process.pid, 'SIGKILL'))`]);
  t.equal(crash.signal, 'SIGKILL');
  t.ok(fs.lstatSync(sock).isSocket(), 'the stale socket is there');
  await prepareSocket({ path: sock, group: null, scope: 'admin' });
  t.notOk(fs.existsSync(sock), 'removed');
  const server = await listening(sock);
  t.teardown(() => closed(server));
  t.pass('the path can be bound again');
});

t.test('prepareSocket refuses when something listens on the socket, and leaves it', async (t) => {
  const { dir, sock } = socketIn(t);
  fs.mkdirSync(dir, { recursive: true });
  const server = await listening(sock);
  t.teardown(() => closed(server));
  let err: unknown;
  try {
    await prepareSocket({ path: sock, group: null, scope: 'admin' });
  } catch (e) {
    err = e;
  }
  listenerError(t, err, 'api.socket.path', /another process listens on .*mimd\.sock \(is mimd already running\?\)/);
  t.ok(fs.lstatSync(sock).isSocket(), 'the live socket is left');
  const client = net.connect(sock);
  await new Promise<void>((resolve, reject) => client.once('connect', () => resolve()).once('error', reject));
  client.destroy();
  t.pass('and still answers');
});

t.test('listenOnSocket: the socket is 0660 from the bind on, and the umask is restored', async (t) => {
  const { dir, sock } = socketIn(t);
  await prepareSocket({ path: sock, group: null, scope: 'admin' });
  const umask = process.umask();
  const server = net.createServer((c) => c.end());
  t.teardown(() => closed(server));
  let atBind = -1;
  let umaskDuring = -1;
  await listenOnSocket(sock, null, async () => {
    umaskDuring = process.umask();
    await new Promise<void>((resolve) => server.listen(sock, () => resolve()));
    atBind = mode(sock);
  });
  t.equal(umaskDuring, 0o117, 'bound under umask 0117');
  t.equal(atBind, 0o660, 'never wider than 0660, not even before the chmod');
  t.equal(mode(sock), 0o660);
  t.equal(process.umask(), umask, 'the umask is back');
  t.equal(mode(dir), 0o750);
});

t.test('listenOnSocket restores the umask when listening fails', async (t) => {
  const { sock } = socketIn(t);
  const umask = process.umask();
  await t.rejects(
    listenOnSocket(sock, null, async () => {
      throw new Error('EADDRINUSE');
    }),
    { message: 'EADDRINUSE' },
  );
  t.equal(process.umask(), umask);
});

t.test('listenOnSocket gives the socket to the group', { skip: process.getuid?.() !== 0 ? 'needs root to chown' : false }, async (t) => {
  const { sock } = socketIn(t);
  const { gid } = await prepareSocket({ path: sock, group: 'daemon', scope: 'read' });
  const server = net.createServer();
  t.teardown(() => closed(server));
  await listenOnSocket(sock, gid, () => new Promise<void>((resolve) => server.listen(sock, () => resolve())));
  t.equal(fs.statSync(sock).gid, groupId('daemon'));
  t.equal(mode(sock), 0o660);
});

t.test('readTls reads both files, or names api.tcp.tls', async (t) => {
  const dir = t.testdir({ 'cert.pem': 'CERT', 'key.pem': 'KEY' });
  const tls = readTls({ cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'key.pem') });
  t.equal(tls.cert.toString(), 'CERT');
  t.equal(tls.key.toString(), 'KEY');
  let err: unknown;
  try {
    readTls({ cert: path.join(dir, 'cert.pem'), key: path.join(dir, 'gone.pem') });
  } catch (e) {
    err = e;
  }
  listenerError(t, err, 'api.tcp.tls', /ENOENT.*gone\.pem/);
});
