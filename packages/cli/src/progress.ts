/**
 * Per-blob progress lines like `docker pull`/`docker push`: on a terminal, one live line per
 * layer (cli-progress MultiBar) with a bar, bytes and speed; otherwise plain lines, one per
 * status change (no byte counts, which would flood logs).
 */
import { MultiBar, type SingleBar } from 'cli-progress';

/** `1.2MB`, `523kB`, `12B` (Docker's decimal units). */
export function humanSize(n: number): string {
  if (n < 1000) return `${n}B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let v = n / 1000;
  let i = 0;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)}${units[i]}`;
}

function bar(current: number, total: number, width = 50): string {
  if (total <= 0) return '';
  const done = Math.min(width, Math.floor((current / total) * width));
  return `[${'='.repeat(Math.max(0, done - 1))}${done > 0 ? '>' : ''}${' '.repeat(width - done)}]`;
}

interface Line {
  id: string;
  status: string;
  current: number;
  total: number;
  showBytes: boolean;
  started: number;
  startBytes: number;
  bar?: SingleBar;
}

/** A set of progress lines keyed by id (a layer's short digest). */
export class ProgressDisplay {
  readonly #out: NodeJS.WriteStream;
  readonly #tty: boolean;
  readonly #quiet: boolean;
  readonly #lines = new Map<string, Line>();
  #multi: MultiBar | undefined;

  constructor(options: { out?: NodeJS.WriteStream; quiet?: boolean; tty?: boolean } = {}) {
    this.#out = options.out ?? process.stdout;
    this.#quiet = options.quiet ?? false;
    this.#tty = options.tty ?? (this.#out.isTTY === true && process.env.TERM !== 'dumb');
  }

  /** A line of its own (headers, warnings): above the bars on a terminal. */
  print(text: string): void {
    if (this.#quiet) return;
    if (this.#multi) this.#multi.log(`${text}\n`);
    else this.#out.write(`${text}\n`);
  }

  /**
   * Sets a line's status; `bytes` shows a bar, the byte count and the speed (on a terminal).
   * Plain output prints only when the status text changes.
   */
  update(id: string, status: string, bytes?: { current: number; total: number }): void {
    if (this.#quiet) return;
    let line = this.#lines.get(id);
    const isNew = !line;
    // Bars redraw at most 10 times a second; a state that lasts less (a fast download) would
    // never be seen. So the old state is drawn once more, as it ended, before a line changes state.
    if (this.#multi && line && line.status !== status) this.#multi.update();
    if (!line) {
      line = { id, status: '', current: 0, total: 0, showBytes: false, started: Date.now(), startBytes: 0 };
      this.#lines.set(id, line);
    }
    const changed = line.status !== status;
    if (changed && bytes) {
      line.started = Date.now();
      line.startBytes = bytes.current;
    }
    line.status = status;
    line.showBytes = bytes !== undefined;
    if (bytes) {
      line.current = bytes.current;
      line.total = bytes.total;
    }
    if (!this.#tty) {
      if (changed) this.#out.write(`${id}: ${status}\n`);
      return;
    }
    if (!this.#multi) {
      this.#multi = new MultiBar({
        stream: this.#out,
        format: (_o, _p, payload: { line: Line }) => this.#render(payload.line),
        hideCursor: true,
        clearOnComplete: false,
        stopOnComplete: false,
        autopadding: false,
        linewrap: false,
        fps: 10,
      });
    }
    if (isNew) line.bar = this.#multi.create(1, 0, { line });
    line.bar?.update(line.total > 0 ? Math.min(line.current / line.total, 1) : 0, { line });
  }

  #render(l: Line): string {
    if (!l.showBytes) return `${l.id}: ${l.status}`;
    const secs = (Date.now() - l.started) / 1000;
    const speed = secs > 0.2 ? `  ${humanSize(Math.round((l.current - l.startBytes) / secs))}/s` : '';
    return `${l.id}: ${l.status} ${bar(l.current, l.total)}  ${humanSize(l.current)}/${humanSize(l.total)}${speed}`;
  }

  /** Draws the final state and releases the terminal. */
  stop(): void {
    if (this.#multi) {
      this.#multi.update();
      this.#multi.stop();
      this.#multi = undefined;
    }
  }
}
