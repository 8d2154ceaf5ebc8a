import { execFile } from 'node:child_process';
import { readFile } from 'node:fs/promises';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Resident set size of a process, in KiB: VmRSS and the kernel's high-water mark VmHWM. */
async function readRss(pid: number): Promise<{ rss: number; hwm: number } | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    const field = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? Number.NaN);
    return { rss: field('VmRSS'), hwm: field('VmHWM') };
  } catch {
    // Not Linux (or the process is gone): fall back to ps, which has no high-water mark.
    try {
      const { stdout } = await execFileAsync('ps', ['-o', 'rss=', '-p', String(pid)]);
      const rss = Number(stdout.trim());
      return Number.isFinite(rss) && rss > 0 ? { rss, hwm: Number.NaN } : null;
    } catch {
      return null;
    }
  }
}

/**
 * Samples a process's RSS every `intervalMs` while it runs, so each phase of
 * the benchmark can report the peak it caused ({@link phase}) besides the
 * process-lifetime peak (VmHWM).
 */
export class RssSampler {
  #timer: NodeJS.Timeout | null = null;
  #phasePeak = 0;
  #lifetimePeak = 0;
  #hwm = Number.NaN;
  #last = 0;

  constructor(
    private readonly pid: number,
    private readonly intervalMs = 100,
  ) {}

  start(): this {
    const tick = async () => {
      const sample = await readRss(this.pid);
      if (sample) {
        this.#last = sample.rss;
        this.#phasePeak = Math.max(this.#phasePeak, sample.rss);
        this.#lifetimePeak = Math.max(this.#lifetimePeak, sample.rss);
        if (Number.isFinite(sample.hwm)) this.#hwm = sample.hwm;
      }
      if (this.#timer) this.#timer = setTimeout(tick, this.intervalMs);
    };
    this.#timer = setTimeout(tick, 0);
    return this;
  }

  /** Starts a new phase: its peak starts from the current RSS. */
  resetPhase(): void {
    this.#phasePeak = this.#last;
  }

  /** Peak RSS seen since the last {@link resetPhase}, MiB. */
  get phasePeakMiB(): number {
    return this.#phasePeak / 1024;
  }

  /** Latest RSS sample, MiB. */
  get currentMiB(): number {
    return this.#last / 1024;
  }

  /** Lifetime peak: the kernel's VmHWM when available, else the highest sample; MiB. */
  get peakMiB(): number {
    return (Number.isFinite(this.#hwm) ? Math.max(this.#hwm, this.#lifetimePeak) : this.#lifetimePeak) / 1024;
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
  }
}
