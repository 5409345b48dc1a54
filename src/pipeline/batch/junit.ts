import type { BatchReport } from './report.js';
import { headline, type PairResult } from './results.js';

/**
 * The report as JUnit XML, the one test format every CI system shows
 * (GitLab's test reports, Jenkins' junit step, GitHub Actions' test
 * reporters, Buildkite's test analytics): one testsuite per kernel, one
 * testcase per patch set. A refusal or failure is a <failure> whose type is
 * klpforge's code and whose text is the message with every reason, so the CI
 * page says why without opening a log. A verified or built pair passes.
 */
export function junitXml(report: BatchReport): string {
  const byKernel = new Map<string, PairResult[]>(report.kernels.map((k) => [k, []]));
  for (const r of report.results) byKernel.get(r.kernel)?.push(r);
  const suites = [...byKernel]
    .filter(([, results]) => results.length > 0)
    .map(([kernel, results]) => suite(kernel, results, report.startedAt));
  const all = report.results;
  const failures = all.filter(failed).length;
  const time = seconds(report.wallSeconds);
  return [
    '<?xml version="1.0" encoding="UTF-8"?>',
    `<testsuites name="klpforge batch" tests="${all.length}" failures="${failures}" errors="0" time="${time}">`,
    ...suites,
    '</testsuites>',
    '',
  ].join('\n');
}

function suite(kernel: string, results: readonly PairResult[], timestamp: string): string {
  const time = seconds(results.reduce((t, r) => t + r.seconds, 0));
  return [
    `  <testsuite name="${attr(kernel)}" tests="${results.length}" failures="${results.filter(failed).length}" errors="0" skipped="0" time="${time}" timestamp="${attr(timestamp.replace(/\.\d+Z$/, ''))}">`,
    ...results.map(testcase),
    '  </testsuite>',
  ].join('\n');
}

function testcase(r: PairResult): string {
  const open = `    <testcase classname="klpforge.${attr(r.kernel)}" name="${attr(r.patchset)}" time="${seconds(r.seconds)}"`;
  const out = r.module
    ? `      <system-out>${text(`${r.status}${r.cached ? ' (cached)' : ''}: ${r.module.path} sha256 ${r.module.sha256}`)}</system-out>`
    : '';
  if (!failed(r)) return out ? `${open}>\n${out}\n    </testcase>` : `${open}/>`;
  const body = [
    `${r.status}: ${r.message ?? ''}`,
    ...(r.details ? [r.details] : []),
    ...r.reasons.map((x) => `  ${x.object ? `${x.object}: ` : ''}${x.code}: ${x.message}`),
    `exit code ${r.exitCode}`,
  ].join('\n');
  return [
    `${open}>`,
    `      <failure message="${attr(`${r.status}: ${headline(r)}`)}" type="${attr(r.code ?? r.status)}">${text(body)}</failure>`,
    '    </testcase>',
  ].join('\n');
}

const failed = (r: PairResult): boolean => r.status === 'refused' || r.status === 'failed';

const seconds = (s: number): string => s.toFixed(3);

/** XML 1.0 allows no control characters but tab, LF and CR, escaped or not: compiler output can carry them. */

const stripControls = (s: string): string => s.replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/g, '?');

const text = (s: string): string => stripControls(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

const attr = (s: string): string => text(s).replace(/"/g, '&quot;').replace(/\n/g, '&#10;').replace(/\r/g, '&#13;').replace(/\t/g, '&#9;');
