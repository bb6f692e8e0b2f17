import { Program } from '@tsc/executor';
import { AT, CLONE, PR } from '@tsc/syscall';
import { ContainerError } from '../errors.js';
import type { Process } from '../spec/index.js';
import { type CompiledFilter, checkConsole, planExec, planProcess } from './init.js';
import { joinSequence, planSetns } from './join.js';
import { planConsole } from './terminal.js';

/** What `exec` needs to enter a running container. */
export interface ExecContext {
  /** Host pid of the container's init: its namespaces are joined. */
  initPid: number;
  /** The container's namespace types (every one of them is joined). */
  namespaces: readonly string[];
  process: Process;
  /** The executor's sync fd (the highest fd it keeps). */
  syncFd: number;
  /** fds 3 .. 3+N-1 passed on to the process. */
  preserveFds: number;
  capLastCap: number;
  /** Whether setgroups(2) is allowed in the container's user namespace. Default true. */
  setgroups?: boolean;
  /**
   * Join the user namespace first (joinOrder): an unprivileged caller (rootless) may join the
   * others only with the capabilities it has there. Default false: root joins in config order
   * with mount last, so it can still join a namespace an ancestor user namespace owns.
   */
  userFirst?: boolean;
  /** The container's compiled seccomp filter: exec'd processes get it too. */
  seccomp?: CompiledFilter | undefined;
  /** The executor's fd of the console socket: with process.terminal, the pty master goes there. */
  consoleFd?: number | undefined;
}

/**
 * The program of `nsinit exec`: join every namespace of the container's init
 * (through /proc/<pid>/ns, opened before any setns), fork into the pid
 * namespace as a child of the caller (CLONE_PARENT), then the same process
 * set-up as a container's init: rlimits, no_new_privs, capabilities, user,
 * cwd, and execve. The executor was put into the container's cgroup before it
 * got this program, so the new process is born there.
 */
export function planExecIn(ctx: ExecContext): Program {
  checkConsole(ctx.process, ctx.consoleFd);
  if (ctx.process.apparmorProfile || ctx.process.selinuxLabel) {
    throw new ContainerError(
      'Unsupported',
      'exec: process.apparmorProfile and process.selinuxLabel are not supported for exec yet',
    );
  }
  const p = new Program();
  p.syscall('close_range', [ctx.syncFd + 1, 0xffffffff, 0], { what: 'close inherited fds' });
  p.syscall('prctl', [PR.SET_DUMPABLE, 0, 0, 0, 0], { what: 'make the executor non-dumpable' });
  planSetns(p, ctx.initPid, joinSequence(ctx.namespaces, ctx.userFirst === true));
  p.clone(CLONE.PARENT, 'report', { what: 'fork into the container' });
  p.syscall('setsid', [], { what: 'setsid' });
  // A new pty of the container's devpts: setns into its mount namespace made cwd its root.
  if (ctx.process.terminal && ctx.consoleFd !== undefined) {
    planConsole(p, {
      socketFd: ctx.consoleFd,
      root: AT.FDCWD,
      size: ctx.process.consoleSize,
      uid: ctx.process.user.uid,
    });
  }
  planProcess(p, ctx.process, ctx.capLastCap, { setgroups: ctx.setgroups ?? true, seccomp: ctx.seccomp });
  planExec(p, ctx.process, { fifoFd: undefined, preserveFds: ctx.preserveFds, seccomp: ctx.seccomp });
  return p;
}
