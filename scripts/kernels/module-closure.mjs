#!/usr/bin/env node
// Prints, in load order (dependencies first), the module files (paths relative to
// the module directory) that the named modules need, from the kernel's own
// modules.dep. Modules in modules.builtin are left out: they are in vmlinuz.
//
//   node module-closure.mjs /lib/modules/<ver> virtio_pci 9pnet_virtio 9p
import * as fs from 'node:fs';
import * as path from 'node:path';

const [dir, ...wanted] = process.argv.slice(2);
const nameOf = (file) => path.basename(file).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');

const deps = new Map();
for (const line of fs.readFileSync(path.join(dir, 'modules.dep'), 'utf8').split('\n')) {
  const [file, rest] = line.split(':');
  if (!file) continue;
  deps.set(nameOf(file), { file, needs: (rest ?? '').trim().split(/\s+/).filter(Boolean).map(nameOf) });
}
const builtin = new Set();
try {
  for (const line of fs.readFileSync(path.join(dir, 'modules.builtin'), 'utf8').split('\n')) if (line) builtin.add(nameOf(line));
} catch {}

const order = [];
const seen = new Set();
function visit(name) {
  if (seen.has(name)) return;
  seen.add(name);
  if (builtin.has(name)) return;
  const entry = deps.get(name);
  if (!entry) throw new Error(`module ${name} is neither in modules.dep nor built in`);
  // modules.dep lists every dependency, transitive ones too; visiting them first gives a valid order
  for (const dep of entry.needs) visit(dep);
  order.push(entry.file);
}
for (const name of wanted) visit(name.replace(/-/g, '_'));
process.stdout.write(order.join('\n') + (order.length ? '\n' : ''));
