// The kernel layer: the only TypeScript that talks to the addon.
export { BpfMap, type MapSpec, type MapInfo, type BatchLookup } from './map';
export { BpfLink } from './link';
export { BpfObject, type MapDef, type OpenOptions, type XdpMode, type TcDirection, XDP_MODES, TC_DIRECTIONS } from './object';
export * from './constants';
export type { NativeError, NativeLinkInfo, NativeProgramDef, NativeTestRunResult, NativeLogLevel } from './native';
import { native, type NativeLogLevel } from './native';

/** Routes libbpf's own messages (warnings, verifier chatter) to a logger. */
export function routeLibbpfLog(fn: ((level: NativeLogLevel, message: string) => void) | null): void {
  native.setLogger(fn);
}

export function possibleCpus(): number {
  return native.possibleCpus();
}

export const libbpfVersion: string = native.libbpfVersion;

/** True for errors thrown by the addon (they carry code, errno and syscall). */
export function isKernelError(err: unknown): err is Error & { code: string; errno: number; syscall: string } {
  return err instanceof Error && typeof (err as { syscall?: unknown }).syscall === 'string' && typeof (err as { errno?: unknown }).errno === 'number';
}
