// Reads config/default.yaml, merges an operator's override file over it,
// validates the result against the one schema and fails fast with the path of
// the bad key, what was expected, and the file and line it came from.
import * as fs from 'node:fs';
import * as path from 'node:path';
import { isMap, isScalar, isSeq, LineCounter, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { Kind, type TSchema } from '@sinclair/typebox';
import { Value } from '@sinclair/typebox/value';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/errors';
import { ConfigSchema, type Config } from './schema';

/** A configuration mimd refuses to start with. main exits 78 (EX_CONFIG) on it, without a stack trace. */
export class ConfigError extends Error {
  readonly code = 'MIMD_CONFIG';
  constructor(
    message: string,
    /** one entry per bad key, each `path: what was expected` */
    readonly problems: readonly string[] = [message],
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export interface LoadOptions {
  /** the embedded defaults; config/default.yaml under the package root by default */
  defaultFile?: string;
  /** where relative object paths resolve; the package root by default */
  baseDir?: string;
}

/** The directory of mimd's package.json, whether this runs from daemon/src or dist/daemon/src. */
export function packageRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (fs.existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`mimd: no package.json above ${__dirname}`);
    dir = parent;
  }
}

export function defaultConfigFile(): string {
  return path.join(packageRoot(), 'config', 'default.yaml');
}

const MAX_REPORTED = 10;

export function loadConfig(overrideFile?: string, options: LoadOptions = {}): Config {
  const defaults = readYaml(options.defaultFile ?? defaultConfigFile(), 'default config');
  const override = overrideFile === undefined ? null : readYaml(path.resolve(overrideFile), 'config file');
  const baseDir = options.baseDir ?? packageRoot();

  const sources = new Sources(defaults, override);
  const merged = override ? deepMerge(defaults.value, override.value) : defaults.value;

  // Defaults first, so that an item missing an optional field validates against its variant.
  const value: unknown = Value.Default(ConfigSchema, structuredClone(merged));
  const problems = schemaProblems(ConfigSchema, value).map((p) => sources.describe(p));
  if (problems.length === 0) {
    problems.push(...semanticProblems(value as Config, baseDir).map((p) => sources.describe(p)));
  }
  if (problems.length > 0) throw configError(problems);

  const config = value as Config;
  for (const object of config.objects) object.path = path.resolve(baseDir, object.path);
  return config;
}

function configError(problems: string[]): ConfigError {
  const lines = problems.slice(0, MAX_REPORTED).map((p) => `config: ${p}`);
  if (problems.length > MAX_REPORTED) lines.push(`config: ... and ${problems.length - MAX_REPORTED} more`);
  return new ConfigError(lines.join('\n'), problems);
}

// ---------------------------------------------------------------------------
// YAML files

interface YamlFile {
  file: string;
  doc: Document;
  lines: LineCounter;
  value: unknown;
}

function readYaml(file: string, what: string): YamlFile {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(`config: cannot read ${what} ${file}: ${code}`);
  }
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: true, uniqueKeys: true });
  const [syntax] = doc.errors;
  if (syntax) {
    const pos = syntax.linePos?.[0];
    const where = pos ? `${file}:${pos.line}:${pos.col}` : file;
    // The first line of a pretty error is the message; the rest is a snippet of the file.
    const message = syntax.message.split('\n')[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? syntax.code;
    throw new ConfigError(`config: ${where}: YAML syntax error: ${message}`);
  }
  // An empty file overrides nothing.
  const value: unknown = doc.contents === null ? {} : doc.toJS();
  return { file, doc, lines, value };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Mappings merge key by key; lists and scalars in the override replace the default's. */
export function deepMerge(base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override)) return override;
  const out: Record<string, unknown> = { ...base };
  for (const [key, value] of Object.entries(override)) {
    out[key] = key in base ? deepMerge(base[key], value) : value;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Problems: a key path and what is wrong with it

type KeyPath = (string | number)[];

interface Problem {
  path: KeyPath;
  message: string;
}

/** objects[0].attach[1].mode */
export function formatPath(keyPath: readonly (string | number)[]): string {
  let out = '';
  for (const segment of keyPath) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_-]*$/.test(segment)) out += out ? `.${segment}` : segment;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out || '(top level)';
}

function parsePointer(pointer: string): KeyPath {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((s) => (/^(0|[1-9][0-9]*)$/.test(s) ? Number(s) : s));
}

function got(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null (an empty value)';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'a mapping';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function literals(schema: TSchema): string[] | null {
  if (schema[Kind] !== 'Union') return null;
  const values: string[] = [];
  for (const variant of schema.anyOf as TSchema[]) {
    if (variant[Kind] !== 'Literal') return null;
    values.push(String(variant.const));
  }
  return values;
}

/** For a union of objects told apart by one literal property: that property and the variant of each value. */
function discriminator(schema: TSchema): { key: string; variants: Map<string, TSchema> } | null {
  if (schema[Kind] !== 'Union') return null;
  const variants = schema.anyOf as TSchema[];
  const first = variants[0];
  if (!first || first[Kind] !== 'Object') return null;
  for (const key of Object.keys(first.properties as object)) {
    const byValue = new Map<string, TSchema>();
    for (const variant of variants) {
      const property = (variant.properties as Record<string, TSchema> | undefined)?.[key];
      if (variant[Kind] !== 'Object' || !property || property[Kind] !== 'Literal') break;
      byValue.set(String(property.const), variant);
    }
    if (byValue.size === variants.length) return { key, variants: byValue };
  }
  return null;
}

function describeMismatch(schema: TSchema, value: unknown): string {
  const options = literals(schema);
  if (options) return `expected one of ${options.join(', ')}, got ${got(value)}`;
  if (typeof schema.expected === 'string') return `expected ${schema.expected}, got ${got(value)}`;
  switch (schema[Kind]) {
    case 'String':
      return `expected a string, got ${got(value)}`;
    case 'Object':
      return `expected a mapping, got ${got(value)}`;
    case 'Array':
      return `expected a list, got ${got(value)}`;
    case 'Literal':
      return `expected ${JSON.stringify(schema.const)}, got ${got(value)}`;
    default:
      return `expected ${schema[Kind]}, got ${got(value)}`;
  }
}

function problemFor(error: ValueError, base: KeyPath): Problem[] {
  const keyPath = [...base, ...parsePointer(error.path)];
  switch (error.type) {
    case ValueErrorType.ObjectAdditionalProperties: {
      const allowed = Object.keys((error.schema.properties as object | undefined) ?? {});
      return [{ path: keyPath, message: `unknown key (allowed here: ${allowed.join(', ')})` }];
    }
    case ValueErrorType.ObjectRequiredProperty:
      return [{ path: keyPath, message: 'missing (required)' }];
    case ValueErrorType.Union: {
      const union = discriminator(error.schema);
      if (union && isPlainObject(error.value)) {
        const variant = union.variants.get(String(error.value[union.key]));
        // Value.Default fills a union member only when it then validates; the
        // variant `type` picks gets its defaults here, so that an error in one
        // field does not also show up as every defaulted field missing.
        if (variant) return schemaProblems(variant, Value.Default(variant, structuredClone(error.value)), keyPath);
        return [
          {
            path: [...keyPath, union.key],
            message: `expected one of ${[...union.variants.keys()].join(', ')}, got ${got(error.value[union.key])}`,
          },
        ];
      }
      // A setting that is a mapping or null (api.tcp): a mapping is checked
      // against the mapping's schema, so the bad key inside it is named.
      const objects = (error.schema.anyOf as TSchema[] | undefined)?.filter((v) => v[Kind] === 'Object') ?? [];
      const [only] = objects;
      if (objects.length === 1 && only && isPlainObject(error.value)) {
        return schemaProblems(only, Value.Default(only, structuredClone(error.value)), keyPath);
      }
      return [{ path: keyPath, message: describeMismatch(error.schema, error.value) }];
    }
    default:
      return [{ path: keyPath, message: describeMismatch(error.schema, error.value) }];
  }
}

function isUnder(keyPath: KeyPath, prefix: KeyPath): boolean {
  return prefix.length <= keyPath.length && prefix.every((segment, i) => keyPath[i] === segment);
}

/** One problem per bad key: TypeBox reports a missing key both as missing and as not a string, say. */
function schemaProblems(schema: TSchema, value: unknown, base: KeyPath = []): Problem[] {
  const problems: Problem[] = [];
  for (const error of Value.Errors(schema, value)) {
    for (const problem of problemFor(error, base)) {
      if (problems.some((p) => isUnder(problem.path, p.path) || isUnder(p.path, problem.path))) continue;
      problems.push(problem);
    }
  }
  return problems;
}

/** Rules one schema cannot say: unique names, files that exist, one XDP program per interface. */
function semanticProblems(config: Config, baseDir: string): Problem[] {
  const problems: Problem[] = [];
  const names = new Map<string, number>();
  const xdpInterfaces = new Map<string, string>();
  config.objects.forEach((object, i) => {
    const first = names.get(object.name);
    if (first !== undefined) {
      problems.push({
        path: ['objects', i, 'name'],
        message: `duplicate object name ${JSON.stringify(object.name)} (also objects[${first}].name)`,
      });
    } else {
      names.set(object.name, i);
    }

    const file = path.resolve(baseDir, object.path);
    try {
      if (!fs.statSync(file).isFile()) throw Object.assign(new Error(), { code: 'not a regular file' });
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code ?? String(err);
      const relative = path.isAbsolute(object.path) ? '' : ` (relative paths resolve against ${baseDir})`;
      problems.push({ path: ['objects', i, 'path'], message: `cannot read ${file}: ${code}${relative}` });
    }

    object.attach.forEach((attach, j) => {
      if (attach.type !== 'xdp') return;
      const owner = xdpInterfaces.get(attach.interface);
      const here = `objects[${i}].attach[${j}]`;
      if (owner) {
        problems.push({
          path: ['objects', i, 'attach', j, 'interface'],
          message: `${attach.interface} already gets an XDP program from ${owner}; an interface runs one XDP program`,
        });
      } else {
        xdpInterfaces.set(attach.interface, here);
      }
    });
  });
  problems.push(...apiProblems(config));
  return problems;
}

/** Loopback addresses: the only ones where TCP may go without TLS. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host) || host === '::ffff:127.0.0.1';
}

function apiProblems(config: Config): Problem[] {
  const problems: Problem[] = [];
  const { api } = config;
  if (api.socket === null && api.tcp === null) {
    problems.push({ path: ['api', 'socket'], message: 'no listener: set api.socket or api.tcp (or both)' });
  }
  if (api.tcp !== null) {
    if (!isLoopback(api.tcp.host) && api.tcp.tls === undefined) {
      problems.push({
        path: ['api', 'tcp', 'tls'],
        message: `missing: ${api.tcp.host} is not a loopback address, and mimd takes bearer tokens over TCP only with TLS there (set tls: { cert, key })`,
      });
    }
    for (const which of ['cert', 'key'] as const) {
      const file = api.tcp.tls?.[which];
      if (file === undefined) continue;
      try {
        fs.accessSync(file, fs.constants.R_OK);
      } catch (err) {
        problems.push({ path: ['api', 'tcp', 'tls', which], message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` });
      }
    }
  }
  const ids = new Map<string, number>();
  const hashes = new Map<string, number>();
  api.tokens.forEach((token, i) => {
    const first = ids.get(token.id);
    if (first !== undefined) problems.push({ path: ['api', 'tokens', i, 'id'], message: `duplicate token id ${JSON.stringify(token.id)} (also api.tokens[${first}].id)` });
    else ids.set(token.id, i);
    const same = hashes.get(token.sha256);
    if (same !== undefined) problems.push({ path: ['api', 'tokens', i, 'sha256'], message: `the same token as api.tokens[${same}]` });
    else hashes.set(token.sha256, i);
  });
  return problems;
}

// ---------------------------------------------------------------------------
// Where a key came from: the override file if it sets the key, else the defaults

class Sources {
  constructor(
    private readonly defaults: YamlFile,
    private readonly override: YamlFile | null,
  ) {}

  describe(problem: Problem): string {
    const where = this.locate(problem.path);
    return `${formatPath(problem.path)}: ${problem.message} (from ${where.file}${where.line ? `, line ${where.line}` : ''})`;
  }

  /**
   * Follows the path through the override while it has the key; where an
   * override mapping lacks a key the merge took it from the defaults, so the
   * walk continues there. Lists are replaced whole, so inside a list from the
   * override the defaults no longer matter.
   */
  private locate(keyPath: KeyPath): { file: string; line: number | null } {
    let file = this.override ?? this.defaults;
    let node = file.doc.contents as YamlNode | null;
    let shadow = this.override ? (this.defaults.doc.contents as YamlNode | null) : null;
    let line = node?.range ? file.lines.linePos(node.range[0]).line : null;

    for (const segment of keyPath) {
      const next = step(node, segment);
      if (next) {
        shadow = isMap(node) ? (step(shadow, segment)?.node ?? null) : null;
        node = next.node;
        line = file.lines.linePos(next.offset).line;
        continue;
      }
      const fallback = isMap(node) ? step(shadow, segment) : null;
      if (!fallback) break;
      file = this.defaults;
      node = fallback.node;
      shadow = null;
      line = file.lines.linePos(fallback.offset).line;
    }
    return { file: file.file, line };
  }
}

/** The child of a YAML node, and the offset of its key (mappings) or item (lists). */
function step(node: YamlNode | null, segment: string | number): { node: YamlNode | null; offset: number } | null {
  if (isMap(node)) {
    const pair = node.items.find((p) => (isScalar(p.key) ? String(p.key.value) : String(p.key)) === String(segment));
    if (!pair) return null;
    const key = pair.key as YamlNode | null;
    const value = pair.value as YamlNode | null;
    const offset = key?.range?.[0] ?? value?.range?.[0];
    return offset === undefined ? null : { node: value, offset };
  }
  if (isSeq(node) && typeof segment === 'number') {
    const item = node.items[segment] as YamlNode | undefined;
    if (!item?.range) return null;
    return { node: item, offset: item.range[0] };
  }
  return null;
}
