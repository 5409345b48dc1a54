import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * The Debian archive this machine's apt is configured with, read from
 * /etc/apt/sources.list (one-line format) and /etc/apt/sources.list.d/
 * (*.list and deb822 *.sources). The sandbox rootfs is bootstrapped from it
 * because it is the one archive a locked-down build machine can reach, and
 * because it gives the sandbox the same release (so the same gcc) as the host.
 */

export interface AptSource {
  uri: string;
  suites: string[];
  components: string[];
  /** A keyring file named by signed-by / Signed-By, when it is a path (deb822 also allows inline keys). */
  signedBy?: string;
  /** File it came from, for messages. */
  file: string;
}

export interface DebianArchive {
  mirror: string;
  /** The release suite itself (bookworm), never -updates, -security or -backports. */
  suite: string;
  components: string[];
  keyring?: string;
}

/** Parses one-line sources (`deb [opts] URI SUITE COMPONENT...`); deb-src and comments are skipped. */
export function parseOneLineSources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const m = /^deb\s+(?:\[([^\]]*)\]\s+)?(\S+)\s+(\S+)\s*(.*)$/.exec(line);
    if (!m) continue;
    const options = new Map(
      (m[1] ?? '')
        .trim()
        .split(/\s+/)
        .filter(Boolean)
        .map((o) => {
          const eq = o.indexOf('=');
          return [o.slice(0, eq).toLowerCase(), o.slice(eq + 1)] as const;
        }),
    );
    const signedBy = options.get('signed-by');
    out.push({ uri: m[2]!, suites: [m[3]!], components: m[4]!.split(/\s+/).filter(Boolean), ...(signedBy ? { signedBy } : {}), file });
  }
  return out;
}

/** Parses deb822 sources: stanzas separated by blank lines, `Field: value` with indented continuation lines. */
export function parseDeb822Sources(text: string, file: string): AptSource[] {
  const out: AptSource[] = [];
  for (const stanza of text.split(/\n[ \t]*\n/)) {
    const fields = new Map<string, string>();
    let last: string | undefined;
    for (const line of stanza.split('\n')) {
      if (line.startsWith('#')) continue;
      if (/^[ \t]/.test(line) && last) {
        fields.set(last, `${fields.get(last)}\n${line.trim()}`);
        continue;
      }
      const m = /^([\w-]+):\s*(.*)$/.exec(line);
      if (m) {
        last = m[1]!.toLowerCase();
        fields.set(last, m[2]!.trim());
      }
    }
    const words = (name: string): string[] => (fields.get(name) ?? '').split(/\s+/).filter(Boolean);
    if (!words('types').includes('deb') || fields.get('enabled')?.toLowerCase() === 'no') continue;
    const signedBy = fields.get('signed-by');
    for (const uri of words('uris')) {
      out.push({
        uri,
        suites: words('suites'),
        components: words('components'),
        ...(signedBy && !signedBy.includes('\n') ? { signedBy } : {}),
        file,
      });
    }
  }
  return out;
}

/** Every enabled `deb` source of the machine, in apt's reading order. */
export async function readAptSources(root = '/etc/apt'): Promise<AptSource[]> {
  const out: AptSource[] = [];
  const main = path.join(root, 'sources.list');
  if (existsSync(main)) out.push(...parseOneLineSources(await readFile(main, 'utf8'), main));
  const dir = path.join(root, 'sources.list.d');
  const names = existsSync(dir) ? (await readdir(dir)).sort() : [];
  for (const name of names) {
    const file = path.join(dir, name);
    // apt reads only these two suffixes; `.disabled`, `.save` and the like are ignored as apt ignores them.
    if (name.endsWith('.list')) out.push(...parseOneLineSources(await readFile(file, 'utf8'), file));
    else if (name.endsWith('.sources')) out.push(...parseDeb822Sources(await readFile(file, 'utf8'), file));
  }
  return out;
}

/** A release suite name (bookworm, trixie, sid, stable), as opposed to bookworm-updates or bookworm/updates. */
const RELEASE_SUITE = /^[a-z]+$/;

/**
 * The first source that is a Debian release with `main`: third-party repos
 * (nodesource's `nodistro`, vendor suites with dashes) and the -updates and
 * -security pockets are not something debootstrap can start from.
 */
export function pickDebianArchive(sources: readonly AptSource[]): DebianArchive | undefined {
  for (const s of sources) {
    const suite = s.suites.find((x) => RELEASE_SUITE.test(x));
    if (!suite || !s.components.includes('main') || /security/.test(s.uri)) continue;
    return {
      mirror: s.uri,
      suite,
      components: s.components,
      ...(s.signedBy && existsSync(s.signedBy) ? { keyring: s.signedBy } : {}),
    };
  }
  return undefined;
}
