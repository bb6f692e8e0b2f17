// The subpath: @tsc/image's index would load the image store and its schemas on every command.
import { defaultDataRoot } from '@tsc/image/data-root';
import { defaultRoot } from '@tsc/libcontainer';
import type { Command } from 'commander';
import { Logger } from './log.js';

/** Global flags, as runc has them. */
export interface GlobalOptions {
  root?: string;
  dataRoot?: string;
  log?: string;
  logFormat: 'text' | 'json';
  debug?: boolean;
  systemdCgroup?: boolean;
  rootless?: string;
}

/** What every command gets: global options and the logger. */
export interface Context {
  /** Container state (`--root`, default /run/nsinit). */
  root: string;
  /** Images, layers and writable container layers (`--data-root`, `$NSINIT_DATA_ROOT`, default /var/lib/nsinit). */
  dataRoot: string;
  log: Logger;
}

/** commander's accumulator for a repeatable option (`-e A -e B` → `['A', 'B']`). */
export const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

export function context(cmd: Command): Context {
  const g = cmd.optsWithGlobals() as GlobalOptions;
  return {
    root: g.root ?? defaultRoot(),
    dataRoot: g.dataRoot ?? defaultDataRoot(),
    log: new Logger(g.log, g.logFormat === 'json' ? 'json' : 'text'),
  };
}

/** An error that is the user's to fix: printed as one line, exit 1. */
export class UsageError extends Error {}

export function parseIntArg(name: string) {
  return (v: string): number => {
    if (!/^\d+$/.test(v)) throw new UsageError(`${name}: expected a non-negative integer, got "${v}"`);
    return Number(v);
  };
}
