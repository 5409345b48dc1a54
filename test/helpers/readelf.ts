import { execa } from 'execa';

/**
 * `readelf -aW` with file offsets blanked, so an object and its rewrite
 * compare equal when only the layout moved. Throws if readelf warns: a
 * warning means the file is not quite valid.
 */
export async function readelfNormalized(file: string): Promise<string> {
  const r = await execa('readelf', ['-aW', file], { maxBuffer: 1 << 30, reject: false, lines: false });
  const warnings = String(r.stderr)
    .split('\n')
    .filter((l) => /warning|error/i.test(l));
  if (warnings.length > 0) throw new Error(`readelf reports on ${file}:\n${warnings.slice(0, 5).join('\n')}`);
  if (r.exitCode !== 0) throw new Error(`readelf failed on ${file}: ${r.stderr}`);
  return normalize(String(r.stdout), file);
}

function normalize(text: string, file: string): string {
  return (
    text
      .split(file)
      .join('FILE')
      .replace(/(Start of section headers:\s+)\d+/, '$1N')
      .replace(/(section headers?, starting at offset )0x[0-9a-f]+/, '$1N')
      .replace(/(at offset )0x[0-9a-f]+/g, '$1N')
      // Section header rows: [Nr] Name Type Address Off Size ...: blank the Off column.
      .replace(/^(\s*\[\s*\d+\]\s+\S*\s+[A-Za-z_0-9 ]+?\s+[0-9a-f]{16}\s+)[0-9a-f]{6,}/gm, '$1OFFSET')
  );
}

/** First line where two texts differ, for a readable failure message. */
export function firstDifference(a: string, b: string): string | undefined {
  if (a === b) return undefined;
  const la = a.split('\n');
  const lb = b.split('\n');
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    if (la[i] !== lb[i]) return `line ${i + 1}:\n  original: ${la[i]}\n  rewritten: ${lb[i]}`;
  }
  return 'texts differ';
}
