/**
 * @tsc/executor — the static C executor and the TypeScript side of it: build a
 * syscall {@link Program}, spawn the executor from a sealed memfd, send the
 * program and follow its messages.
 */
export {
  DataRef,
  type ExecutorMessage,
  Label,
  type OnError,
  type OpOptions,
  Program,
  type ProgramArg,
  type ProgramArgs,
  Reg,
  decodeMessage,
} from './program.js';
export { EXECUTOR_PATH, ExecutorProcess, ProgramError, type SpawnOptions, executorImage, spawnExecutor } from './run.js';
