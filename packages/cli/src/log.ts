import { appendFileSync } from 'node:fs';

/** Where errors and warnings go: stderr, and the `--log` file in text or JSON (runc's format). */
export class Logger {
  constructor(
    private readonly file: string | undefined,
    private readonly format: 'text' | 'json',
  ) {}

  error(msg: string): void {
    this.write('error', msg);
    process.stderr.write(`nsinit: ${msg}\n`);
  }

  warn(msg: string): void {
    this.write('warning', msg);
    process.stderr.write(`nsinit: warning: ${msg}\n`);
  }

  private write(level: string, msg: string): void {
    if (!this.file) return;
    const time = new Date().toISOString();
    const line =
      this.format === 'json'
        ? JSON.stringify({ level, msg, time })
        : `time="${time}" level=${level} msg=${JSON.stringify(msg)}`;
    try {
      appendFileSync(this.file, `${line}\n`);
    } catch {
      // the log is best effort; stderr has the message
    }
  }
}
