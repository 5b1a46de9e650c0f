// Optimistic concurrency over HTTP: a slot's entity tag is its active version,
// `"<version>"`, or `"none"` while the slot holds nothing mimd installed. A
// write sends the tag it last saw in If-Match and gets 412 if the slot moved on.
import { badInput } from '../domain/errors';
import type { Expectation } from '../domain/slots-api';

const VERSION_TAG = /^"([1-9][0-9]{0,15})"$/;
const NONE_TAG = '"none"';

/** The ETag header value for a slot whose active version is `version`. */
export function etag(version: number | null): string {
  return version === null ? NONE_TAG : `"${version}"`;
}

/**
 * If-Match as the service's `expect`: `"3"` is 3, `"none"` is null (the slot
 * must be empty), `*` or no header is undefined (no check). Anything else,
 * a list or a weak tag included, is rejected rather than guessed at: a
 * precondition the client believes in but mimd ignores would be worse.
 */
export function parseIfMatch(header: string | string[] | undefined): Expectation {
  if (header === undefined) return undefined;
  const value = (Array.isArray(header) ? header.join(', ') : header).trim();
  if (value === '*') return undefined;
  if (value === NONE_TAG) return null;
  const match = VERSION_TAG.exec(value);
  const version = match ? Number(match[1]) : NaN;
  if (!Number.isSafeInteger(version)) {
    throw badInput('If-Match', `expected one entity tag, "<version>" or "none", or *, got ${JSON.stringify(value).slice(0, 80)}`);
  }
  return version;
}
