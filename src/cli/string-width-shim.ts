/**
 * What the yargs bundle (scripts/bundle-yargs.ts) has in place of each copy of `string-width`: yargs, cliui and
 * wrap-ansi measure every word of a help text with it, and importing it built an `Intl.Segmenter` (ICU data) and
 * Unicode property regular expressions, ~30 ms of every command but --version, most of which never print help.
 * A string of printable ASCII is one column a character in every version of string-width (8.x takes this very
 * shortcut itself), so it is answered here; anything else (`…`, a Japanese locale's headings, escape codes, a
 * newline) goes to the real copy the caller would have imported, loaded the first time it is needed.
 */

export type StringWidth = (text: string, options?: object) => number;

// Space to tilde: no control characters (string-width counts them as 0), no escape codes, nothing wide or ambiguous.
const PRINTABLE_ASCII = /^[\x20-\x7e]*$/;

/** string-width's function, answering printable ASCII itself and calling `load()` once for the rest. */
export function asciiFirst(load: () => StringWidth): StringWidth {
  let real: StringWidth | undefined;
  return (text, options) => {
    if (typeof text === 'string' && PRINTABLE_ASCII.test(text)) return text.length;
    real ??= load();
    return real(text, options);
  };
}
