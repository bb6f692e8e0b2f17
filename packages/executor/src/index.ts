/**
 * @tsc/executor — the static C executor and the TypeScript side of it: build a
 * syscall {@link Program}, spawn the executor from a sealed memfd, send the
 * program and follow its messages.
 */
export {
  DataRef,
  decodeMessage,
  type ExecutorMessage,
  Label,
  type OnError,
  type OpOptions,
  Program,
  type ProgramArg,
  type ProgramArgs,
  Reg,
} from './program.js';
export {
  EXECUTOR_PATH,
  ExecutorProcess,
  executorImage,
  ProgramError,
  type SpawnOptions,
  type StdioSpec,
  spawnExecutor,
} from './run.js';
