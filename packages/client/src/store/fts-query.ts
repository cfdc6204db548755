// Turns what a user typed into a safe FTS5 query for the trigram index. User text is never
// spliced into MATCH syntax: every term becomes a quoted string ("" escapes a quote).
// Trigram indexes cannot match terms shorter than 3 characters, so those become LIKE filters.

export interface SearchPlan {
  /** FTS5 MATCH expression (terms ANDed), or null when every term is too short. */
  readonly match: string | null;
  /** Terms of 1–2 characters, to filter with LIKE (already escaped for ESCAPE '\'). */
  readonly likePatterns: string[];
  /** All terms, for highlighting when FTS5 cannot produce the snippet. */
  readonly terms: string[];
}

const MAX_TERMS = 16;
const MAX_QUERY_CHARS = 512;

export function planSearch(text: string): SearchPlan {
  const terms = text
    .slice(0, MAX_QUERY_CHARS)
    .normalize("NFC")
    .split(/\s+/u)
    .filter((t) => t.length > 0)
    .slice(0, MAX_TERMS);
  const long = terms.filter((t) => [...t].length >= 3);
  const short = terms.filter((t) => [...t].length < 3);
  return {
    match: long.length > 0 ? long.map((t) => `"${t.replaceAll('"', '""')}"`).join(" AND ") : null,
    likePatterns: short.map((t) => `%${t.replace(/[\\%_]/g, (c) => `\\${c}`)}%`),
    terms,
  };
}

export const SNIPPET_OPEN = "«";
export const SNIPPET_CLOSE = "»";
export const SNIPPET_ELLIPSIS = "…";

/**
 * Snippet for the LIKE-only path (FTS5's snippet() needs a MATCH): the text around the first
 * case-insensitive occurrence of a term, with every occurrence in that window marked.
 */
export function simpleSnippet(body: string, terms: readonly string[], radius = 40): string {
  const lower = body.toLowerCase();
  let first = -1;
  for (const t of terms) {
    const i = lower.indexOf(t.toLowerCase());
    if (i >= 0 && (first < 0 || i < first)) first = i;
  }
  if (first < 0) return body.length > radius * 2 ? `${body.slice(0, radius * 2)}${SNIPPET_ELLIPSIS}` : body;
  const start = Math.max(0, first - radius);
  const end = Math.min(body.length, first + radius);
  const window = body.slice(start, end);
  const needles = terms.map((t) => t.toLowerCase()).filter((t) => t.length > 0);
  let out = "";
  let i = 0;
  const windowLower = window.toLowerCase();
  while (i < window.length) {
    const hit = needles.find((n) => windowLower.startsWith(n, i));
    if (hit) {
      out += `${SNIPPET_OPEN}${window.slice(i, i + hit.length)}${SNIPPET_CLOSE}`;
      i += hit.length;
    } else {
      out += window[i];
      i += 1;
    }
  }
  return `${start > 0 ? SNIPPET_ELLIPSIS : ""}${out}${end < body.length ? SNIPPET_ELLIPSIS : ""}`;
}
