// Argument checks for the kernel layer: each names the field and what was
// expected, so a bad call fails in TypeScript, before C++ sees it.
import { BPF_OBJ_NAME_MAX } from './constants';

export function assertUint(field: string, value: unknown, max = 0xffffffff): asserts value is number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
    throw new TypeError(`${field}: expected an integer from 0 to ${max}, got ${String(value)}`);
  }
}

export function assertCount(field: string, value: unknown): asserts value is number {
  assertUint(field, value);
  if (value === 0) throw new TypeError(`${field}: expected at least 1, got 0`);
}

export function assertBuffer(field: string, value: unknown): asserts value is Buffer {
  if (!Buffer.isBuffer(value)) throw new TypeError(`${field}: expected a Buffer`);
}

export function assertNonEmptyString(field: string, value: unknown): asserts value is string {
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw new TypeError(`${field}: expected a non-empty string without NUL bytes`);
  }
}

export function assertName(field: string, value: unknown): asserts value is string {
  assertNonEmptyString(field, value);
  if (value.length > BPF_OBJ_NAME_MAX || !/^[A-Za-z0-9_.]+$/.test(value)) {
    throw new TypeError(
      `${field}: expected at most ${BPF_OBJ_NAME_MAX} characters of [A-Za-z0-9_.], got ${JSON.stringify(value)}`,
    );
  }
}

export function assertOneOf<T extends string>(field: string, value: unknown, allowed: readonly T[]): asserts value is T {
  if (typeof value !== 'string' || !(allowed as readonly string[]).includes(value)) {
    throw new TypeError(`${field}: expected one of ${allowed.join(', ')}, got ${JSON.stringify(value)}`);
  }
}
