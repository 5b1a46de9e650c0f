// Kernel maps for unit tests of the swap path: an inner map whose identity is
// all that matters (the queue puts it into a slot and never looks inside).
import type { KernelMap, MapShape } from '../../daemon/src/domain/ports';

/** A method the code under test must not call: calling it fails the test. */
export const notUsed = (what: string) => (): never => {
  throw new Error(`must not call ${what}`);
};

/** An inner map that only has an id; every method throws. */
export class IdentityMap implements KernelMap {
  readonly keySize = 4;
  readonly valueSize = 1;
  constructor(readonly id: number) {}
  lookup = notUsed('lookup on an inner map');
  update = notUsed('update on an inner map');
  delete = notUsed('delete on an inner map');
  nextKey = notUsed('nextKey on an inner map');
  definition = notUsed('definition on an inner map') as () => MapShape;
  writeEntries = notUsed('writeEntries on an inner map');
  readAll = notUsed('readAll on an inner map');
  pin = notUsed('pin on an inner map');
  close = notUsed('close on an inner map');
}
