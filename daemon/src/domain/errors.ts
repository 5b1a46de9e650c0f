// Domain errors: each a @fastify/error class with a MIMD_ code and the HTTP
// status it maps to (fastify lib/errors.js). `field` names the input the error
// is about (`entries[3].key`), `errno` carries the kernel's code when the
// kernel refused.
import createError from '@fastify/error';

export interface MimdErrorFields {
  /** the input (body path, URL parameter, header) the error is about */
  field?: string;
  /** the kernel's errno name (EINVAL, ENOMEM, ...) when the kernel refused */
  errno?: string;
  /** seconds, for 503 */
  retryAfter?: number;
}

export type MimdError = Error & MimdErrorFields & { code: string; statusCode: number };

export const BadInputError = createError('MIMD_BAD_INPUT', '%s', 400);
export const NotFoundError = createError('MIMD_NOT_FOUND', '%s', 404);
export const OuterMapFullError = createError('MIMD_OUTER_MAP_FULL', '%s', 409);
export const NoRollbackTargetError = createError('MIMD_NO_ROLLBACK_TARGET', '%s', 409);
/** A swap into an occupied HASH_OF_MAPS slot, on a kernel whose replace is not atomic, with onNonAtomicReplace: refuse. */
export const NonAtomicReplaceError = createError('MIMD_NON_ATOMIC_REPLACE', '%s', 409);
export const PreconditionFailedError = createError('MIMD_PRECONDITION_FAILED', '%s', 412);
/** more entries in one request than api.maxEntries allows */
export const TooManyEntriesError = createError('MIMD_TOO_MANY_ENTRIES', '%s', 413);
export const UnsupportedMediaTypeError = createError('MIMD_UNSUPPORTED_MEDIA_TYPE', '%s', 415);
export const TemplateViolationError = createError('MIMD_TEMPLATE_VIOLATION', '%s', 422);
export const SwapQueueFullError = createError('MIMD_SWAP_QUEUE_FULL', '%s', 503);
export const NotReadyError = createError('MIMD_NOT_READY', '%s', 503);
export const KernelNoSpaceError = createError('MIMD_KERNEL_NO_SPACE', '%s', 507);
export const KernelError = createError('MIMD_KERNEL_ERROR', '%s', 500);
/** mimd could not record a change in its state directory; the kernel was left as it was. */
export const StateWriteError = createError('MIMD_STATE_WRITE_FAILED', '%s', 500);

type ErrorClass = new (message: string, options?: { cause?: unknown }) => Error;

/** Builds a domain error with its extra fields set. */
export function mimdError(kind: ErrorClass, message: string, fields: MimdErrorFields = {}, cause?: unknown): MimdError {
  const err = cause === undefined ? new kind(message) : new kind(message, { cause });
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (err as unknown as Record<string, unknown>)[k] = v;
  return err as MimdError;
}

export function badInput(field: string, message: string): MimdError {
  return mimdError(BadInputError, `${field}: ${message}`, { field });
}

export function templateViolation(field: string, message: string): MimdError {
  return mimdError(TemplateViolationError, `${field}: ${message}`, { field });
}

export function isMimdError(err: unknown): err is MimdError {
  const code = (err as { code?: unknown } | null)?.code;
  return err instanceof Error && typeof code === 'string' && code.startsWith('MIMD_');
}

/**
 * A kernel refusal that got past validation, as a domain error: out of memory
 * or space is 507, anything else 500, both with the errno name.
 */
export function fromKernel(err: unknown, what: string): MimdError {
  // Already a domain error (refused before the kernel was touched): as it is.
  if (isMimdError(err)) return err;
  const code = (err as { code?: unknown }).code;
  const errno = typeof code === 'string' ? code : undefined;
  const text = err instanceof Error ? err.message : String(err);
  if (errno === 'ENOMEM' || errno === 'ENOSPC') return mimdError(KernelNoSpaceError, `${what}: ${text}`, { errno }, err);
  return mimdError(KernelError, `${what}: ${text}`, { errno }, err);
}
