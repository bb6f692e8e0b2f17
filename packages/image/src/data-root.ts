/**
 * Where images live. A module of its own (no imports): the CLI needs the default on every
 * command, and should not load the image store and its schemas to learn it.
 */

/** Where nsinit keeps images when neither `--data-root` nor `NSINIT_DATA_ROOT` says otherwise. */
export const DEFAULT_DATA_ROOT = '/var/lib/nsinit';

/** The data root: `NSINIT_DATA_ROOT` when set and not empty, else {@link DEFAULT_DATA_ROOT}. */
export function defaultDataRoot(env: NodeJS.ProcessEnv = process.env): string {
  const v = env.NSINIT_DATA_ROOT;
  return v !== undefined && v !== '' ? v : DEFAULT_DATA_ROOT;
}
