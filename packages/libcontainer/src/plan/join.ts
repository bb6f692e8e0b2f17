import { Program, type Reg } from '@tsc/executor';
import { joinOrder, namespaceKind } from '@tsc/namespaces';
import { AT, CLOSE_RANGE, O, PR } from '@tsc/syscall';
import { isRootless } from '../state.js';
import { execCandidates } from './init.js';

export { joinOrder, NS_FILES } from '@tsc/namespaces';

/** What to exec once inside. */
export interface JoinExec {
  args: readonly string[];
  env: readonly string[];
  /** Absolute path, or a name looked up in PATH from env. */
  path?: string;
}

/**
 * A program that joins the namespaces `types` of process `pid` and runs a
 * command there as a child it waits for (the executor exits with the
 * command's status). The child dies with the executor (PDEATHSIG).
 */
export function planJoin(pid: number, types: readonly string[], syncFd: number, run: JoinExec): Program {
  const p = new Program();
  p.syscall('close_range', [syncFd + 1, 0xffffffff, 0], { what: 'close inherited fds' });
  p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'make the executor non-dumpable' });
  planSetns(p, pid, joinSequence(types, isRootless()));
  p.clone(0, 'wait', { what: 'fork into the container' });
  p.syscall('prctl', [PR.SET_PDEATHSIG, 9, 0, 0, 0], { what: 'die with the executor' });
  p.syscall('close_range', [3, 0xffffffff, CLOSE_RANGE.CLOEXEC], { what: 'mark fds close-on-exec' });
  const argv = p.stringArray(run.args);
  const envp = p.stringArray(run.env);
  const cands = run.path ? [run.path] : execCandidates(run.args[0] ?? '', run.env);
  cands.forEach((c, i) => {
    p.syscall('execve', [c, argv, envp], {
      what: `exec ${c}`,
      onError: i === cands.length - 1 ? 'fail' : 'ignore',
    });
  });
  return p;
}

/**
 * The order to join a container's namespaces in. An ordinary user (rootless) may join the others
 * only with the capabilities it gets in the container's user namespace: that one goes first.
 * Root keeps config order with mount last, so it can still join namespaces that an ancestor user
 * namespace owns. Unknown kinds are dropped.
 */
export function joinSequence(types: readonly string[], userFirst: boolean): string[] {
  return userFirst
    ? joinOrder(types)
    : types.filter((t) => namespaceKind(t)).sort((a, b) => Number(a === 'mount') - Number(b === 'mount'));
}

/**
 * Join the namespaces `types` (in that order) of process `pid`: every
 * /proc/<pid>/ns file is opened first, since joining the mount namespace
 * changes what later paths mean.
 */
export function planSetns(p: Program, pid: number, types: readonly string[]): void {
  const fds: Reg[] = types.map((t) => {
    const r = p.reg();
    const path = `/proc/${pid}/ns/${namespaceKind(t)?.file}`;
    p.syscall('openat', [AT.FDCWD, path, O.RDONLY | O.CLOEXEC, 0], { what: `open ${path}`, out: r });
    return r;
  });
  types.forEach((t, i) => {
    p.syscall('setns', [fds[i] as Reg, namespaceKind(t)?.flag ?? 0], {
      what: `join the container's ${t} namespace`,
    });
    p.syscall('close', [fds[i] as Reg], { what: 'close namespace fd', onError: 'ignore' });
  });
}
