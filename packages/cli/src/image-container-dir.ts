/**
 * Where a container made from an image keeps its bundle. A module of its own: `delete` asks
 * whether a container has one on every call, without loading the image stack.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { validateId } from '@tsc/libcontainer';

/** `<dataRoot>/containers/<id>`: the bundle of an image container. */
export function imageContainerDir(dataRoot: string, id: string): string {
  validateId(id);
  return join(dataRoot, 'containers', id);
}

/** True when `<dataRoot>/containers/<id>` exists (a record, or the remains of a crashed run). */
export function hasImageContainer(dataRoot: string, id: string): boolean {
  return existsSync(imageContainerDir(dataRoot, id));
}
