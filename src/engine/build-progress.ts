/**
 * Progress of an engine build on stderr, for command lines: a cli-progress bar on a
 * terminal, otherwise a line at each quarter (logs and CI stay readable).
 */
import cliProgress from "cli-progress";
import type { BuildProgress } from "./build.js";
import { formatBytes } from "./report.js";

export type BuildProgressReporter = ((p: BuildProgress) => void) & { stop(): void };

export function buildProgressBar(label: string, stream: NodeJS.WriteStream = process.stderr): BuildProgressReporter {
  let bar: cliProgress.SingleBar | null = null;
  let quarter = 0; // the first line is at 25%
  const report = (p: BuildProgress) => {
    if (stream.isTTY) {
      const payload = { label, done: formatBytes(p.done), size: formatBytes(p.total) };
      if (!bar) {
        bar = new cliProgress.SingleBar({ stream, hideCursor: true, format: "{bar} {percentage}% | {done} / {size} | {label}" }, cliProgress.Presets.shades_classic);
        bar.start(p.total, p.done, payload);
      } else bar.update(p.done, payload);
      if (p.done >= p.total) stop();
      return;
    }
    const q = p.total === 0 ? 4 : Math.floor((4 * p.done) / p.total);
    if (q > quarter) {
      stream.write(`${label}: ${q * 25}% (${formatBytes(p.done)} of ${formatBytes(p.total)})\n`);
      quarter = q;
    }
  };
  const stop = () => {
    bar?.stop();
    bar = null;
  };
  return Object.assign(report, { stop });
}
