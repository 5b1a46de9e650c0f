#!/usr/bin/env node
// Prints, in load order (dependencies first), the module files (paths relative
// to the module directory) that the named modules need. Modules listed in
// modules.builtin are left out: they are part of vmlinuz.
//
//   node module-closure.mjs <dir>/lib/modules/<ver> virtio_pci 9pnet_virtio 9p
//
// Why not depmod: Debian's packages ship no modules.dep (depmod makes it on
// install), and depmod over a whole kernel reads all ~4,000 modules (20 s for
// the .ko.xz of 6.12 and later). Each module names its own dependencies in its
// .modinfo section; `modinfo -F depends` (kmod) reads that for the dozen we need.
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

const [dir, ...wanted] = process.argv.slice(2);
// the kernel treats - and _ in module names alike
const nameOf = (file) => path.basename(file).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');

const files = new Map();
for (const rel of fs.readdirSync(path.join(dir, 'kernel'), { recursive: true })) {
  if (/\.ko(\.\w+)?$/.test(rel)) files.set(nameOf(rel), path.join('kernel', rel));
}
const builtin = new Set();
try {
  for (const line of fs.readFileSync(path.join(dir, 'modules.builtin'), 'utf8').split('\n')) if (line) builtin.add(nameOf(line));
} catch {}

function dependsOf(rel) {
  const r = spawnSync('modinfo', ['-F', 'depends', path.join(dir, rel)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`modinfo ${rel}: ${r.stderr || r.error}`);
  return r.stdout.trim().split(',').filter(Boolean).map(nameOf);
}

const order = [];
const seen = new Set();
function visit(name) {
  if (seen.has(name)) return;
  seen.add(name);
  if (builtin.has(name)) return;
  const rel = files.get(name);
  if (!rel) throw new Error(`module ${name} is neither in ${dir}/kernel nor built in`);
  for (const dep of dependsOf(rel)) visit(dep);
  order.push(rel);
}
for (const name of wanted) visit(name.replace(/-/g, '_'));
process.stdout.write(order.join('\n') + (order.length ? '\n' : ''));
