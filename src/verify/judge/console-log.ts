import { MARKER_TAG, markerPrefix, type GuestStatus } from '../guest/protocol.js';

/** What the guest said about one step, as read back from the serial console. */
export interface ObservedStep {
  readonly id: string;
  /** A `begin` marker was seen: the step started running. */
  began: boolean;
  /** An `end` marker was seen (SKIP steps end without beginning). */
  ended: boolean;
  /** null until ended, and for skipped steps. */
  exitCode: number | null;
  guestStatus: GuestStatus | null;
  /** The step's stdout+stderr, as far as the guest reported it. */
  readonly output: string[];
  /** Set when the guest cut the output short: the real line count. */
  outputTotalLines: number | null;
  /** Console lines that are not markers (kernel messages) printed while the step ran. */
  readonly kernelLog: string[];
}

export interface ConsoleLine {
  /** 1-based line number in the serial log file, so people can find it. */
  readonly lineNo: number;
  readonly text: string;
}

export interface ParsedConsole {
  /** Steps in the order the guest reported them. */
  readonly steps: Map<string, ObservedStep>;
  /** `info` markers: kernel release, taint value. */
  readonly info: Map<string, string>;
  /** The guest reached the end of its script. */
  readonly done: boolean;
  /** Every console line that is not one of this run's markers: boot log, kernel messages, stray shell errors. */
  readonly otherLines: ConsoleLine[];
}

/**
 * Serial output carries terminal control sequences (SeaBIOS clears the
 * screen) and CRLF line ends; neither belongs in a report.
 */
export function cleanConsoleLine(raw: string): string {
  return raw
    .replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '')
    .replace(/\x1b[A-Za-z]/g, '')
    .replace(/[\r\x00]/g, '');
}

/**
 * Reads the guest's report out of the serial log. Markers are found anywhere
 * in a line, since the kernel may prefix its records with a timestamp; lines
 * with another run's nonce are ignored like any other text.
 */
export function parseConsole(text: string, nonce: string): ParsedConsole {
  const prefix = markerPrefix(nonce);
  const steps = new Map<string, ObservedStep>();
  const info = new Map<string, string>();
  const otherLines: ConsoleLine[] = [];
  let done = false;
  let current: ObservedStep | null = null;

  const step = (id: string): ObservedStep => {
    let s = steps.get(id);
    if (!s) {
      s = { id, began: false, ended: false, exitCode: null, guestStatus: null, output: [], outputTotalLines: null, kernelLog: [] };
      steps.set(id, s);
    }
    return s;
  };

  const rawLines = text.split('\n');
  rawLines.forEach((raw, i) => {
    const line = cleanConsoleLine(raw);
    const at = line.indexOf(prefix);
    if (at < 0) {
      if (line.trim() === '') return;
      otherLines.push({ lineNo: i + 1, text: line });
      if (current) current.kernelLog.push(line);
      return;
    }
    const body = line.slice(at + prefix.length);
    const [event, ...rest] = body.split(':');
    switch (event) {
      case 'begin': {
        const s = step(rest[0] ?? '');
        s.began = true;
        current = s;
        break;
      }
      case 'out': {
        const id = rest[0] ?? '';
        // The output line itself may contain ':'; only the step id is split off.
        step(id).output.push(rest.slice(1).join(':'));
        break;
      }
      case 'trunc': {
        const total = Number(rest[1]);
        step(rest[0] ?? '').outputTotalLines = Number.isFinite(total) ? total : null;
        break;
      }
      case 'end': {
        const s = step(rest[0] ?? '');
        s.ended = true;
        const rc = rest[1] === '-' || rest[1] === undefined ? null : Number(rest[1]);
        s.exitCode = rc !== null && Number.isInteger(rc) ? rc : null;
        const st = rest[2];
        s.guestStatus = st === 'PASS' || st === 'FAIL' || st === 'SKIP' ? st : null;
        if (current === s) current = null;
        break;
      }
      case 'info':
        if (rest[0]) info.set(rest[0], rest.slice(1).join(':'));
        break;
      case 'done':
        done = true;
        current = null;
        break;
      default:
        otherLines.push({ lineNo: i + 1, text: line });
    }
  });
  return { steps, info, done, otherLines };
}

export type KernelProblemKind = 'warning' | 'oops' | 'bug' | 'call-trace' | 'panic' | 'general-protection-fault';

export interface KernelProblem {
  readonly kind: KernelProblemKind;
  readonly lineNo: number;
  readonly text: string;
}

const PROBLEM_PATTERNS: ReadonlyArray<readonly [KernelProblemKind, RegExp]> = [
  ['warning', /\bWARNING:/],
  ['oops', /\bOops\b/],
  ['bug', /\bBUG:/],
  ['call-trace', /\bCall Trace\b/],
  ['panic', /\bKernel panic\b/],
  ['general-protection-fault', /\bgeneral protection fault\b/],
];

/**
 * Kernel messages that mean the kernel is unwell, whatever the steps said.
 * Run on non-marker lines only: a check that greps for "WARNING:" prints
 * through markers and must not be mistaken for the kernel complaining.
 */
export function scanKernelLog(lines: readonly ConsoleLine[]): KernelProblem[] {
  const problems: KernelProblem[] = [];
  for (const l of lines) {
    if (l.text.includes(MARKER_TAG + ':')) continue;
    const hit = PROBLEM_PATTERNS.find(([, re]) => re.test(l.text));
    if (hit) problems.push({ kind: hit[0], lineNo: l.lineNo, text: l.text });
  }
  return problems;
}

/** The last `count` non-empty lines of a serial log, for a guest that never finished. */
export function tailLines(text: string, count: number): string[] {
  const lines = text
    .split('\n')
    .map(cleanConsoleLine)
    .filter((l) => l.trim() !== '');
  return lines.slice(-count);
}
