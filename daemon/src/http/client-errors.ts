// Requests the client did not finish sending: a deadline missed or a
// malformed request, answered on the socket before (or while) fastify has a
// request; and a streamed upload whose body stopped coming. Both are the
// client's doing, never the kernel's: they get codes of their own, and the
// audit record and metrics say what the client was told.
import type { Socket } from 'node:net';
import createError from '@fastify/error';
import { isMimdError, mimdError, type MimdError } from '../domain/errors';

export const ClientAbortedError = createError('MIMD_CLIENT_ABORTED', '%s', 400);
export const RequestTimeoutError = createError('MIMD_REQUEST_TIMEOUT', '%s', 408);
export const BadRequestError = createError('MIMD_BAD_REQUEST', '%s', 400);

const TIMEOUT_MESSAGE = 'the request was not received in time (api.requestTimeoutMs)';
const MALFORMED_MESSAGE = 'malformed HTTP request';

/** What answerClientError told the client on a socket: the request on it ends with the same error. */
const answered = new WeakMap<Socket, 'timeout' | 'malformed'>();

/** Errors before a request exists (a deadline missed, a malformed request line): the usual error shape. */
export function answerClientError(err: Error & { code?: string }, socket: Socket): void {
  const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT';
  // The first answer is the one the client got. HPE_INVALID_EOF_STATE is the
  // connection ending mid-request (after a 408, or a client going away): not
  // a malformed request.
  if (!answered.has(socket) && (timeout || (err.code?.startsWith('HPE_') && err.code !== 'HPE_INVALID_EOF_STATE'))) {
    answered.set(socket, timeout ? 'timeout' : 'malformed');
  }
  if (!socket.writable) {
    socket.destroy();
    return;
  }
  const status = timeout ? 408 : 400;
  const body = JSON.stringify(timeout ? { code: 'MIMD_REQUEST_TIMEOUT', message: TIMEOUT_MESSAGE } : { code: 'MIMD_BAD_REQUEST', message: MALFORMED_MESSAGE });
  socket.end(
    `HTTP/1.1 ${status} ${timeout ? 'Request Timeout' : 'Bad Request'}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/**
 * The error of an upload whose body stream failed: the deadline or malformed
 * request answerClientError already answered on this socket, or else the
 * client went away (ECONNRESET "aborted"). Errors mimd raised itself pass as
 * they are.
 */
export function uploadError(err: unknown, socket: Socket | null): MimdError {
  if (isMimdError(err)) return err;
  const seen = socket === null ? undefined : answered.get(socket);
  if (seen === 'timeout') return mimdError(RequestTimeoutError, `body: ${TIMEOUT_MESSAGE}`, { field: 'body' }, err);
  if (seen === 'malformed') return mimdError(BadRequestError, `body: ${MALFORMED_MESSAGE}`, { field: 'body' }, err);
  return mimdError(ClientAbortedError, 'body: the client closed the connection before the upload ended', { field: 'body' }, err);
}
