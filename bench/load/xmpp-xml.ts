// Minimal streaming XML for the XMPP load generator: splits the server's byte
// stream into top-level stanzas (children of <stream:stream>) and pulls single
// attributes out of them with indexOf. Deliberately not a general XML parser:
// it handles what ejabberd sends on a c2s stream (declaration, stream header,
// elements, text, self-closing tags) and nothing else (no comments, CDATA or
// '>' inside attribute values; ejabberd escapes those), which keeps the
// generator's per-stanza cost to a few string scans.

export class XmppSyntaxError extends Error {
  override readonly name = "XmppSyntaxError";
}

export interface StanzaSink {
  /** The opening <stream:stream ...> tag (also after a stream restart). */
  streamOpen(tag: string): void;
  /** One complete top-level element, e.g. "<message ...>...</message>". */
  stanza(xml: string): void;
  /** </stream:stream> */
  streamClose(): void;
}

export class StanzaSplitter {
  /** Unconsumed text: starts at the current stanza's '<' (or at the scan position between stanzas). */
  private rest = "";
  /** Where scanning resumes inside `rest`. */
  private scan = 0;
  /** 0 = before the stream header, 1 = inside the stream between stanzas, > 1 = inside a stanza. */
  private depth = 0;

  constructor(private readonly sink: StanzaSink) {}

  /** After SASL success both sides start a new stream: the next tag is a fresh stream header. */
  restart(): void {
    this.depth = 0;
  }

  push(chunk: string): void {
    const buf = this.rest.length === 0 ? chunk : this.rest + chunk;
    let i = this.scan;
    // Start of the stanza being read in `buf`, or -1 between stanzas.
    let start = this.depth > 1 ? 0 : -1;
    for (;;) {
      const lt = buf.indexOf("<", i);
      if (lt < 0) {
        i = buf.length;
        break;
      }
      const gt = buf.indexOf(">", lt + 1);
      if (gt < 0) {
        i = lt;
        break;
      }
      const next = buf.charCodeAt(lt + 1);
      if (next === 63 /* ? */) {
        i = gt + 1; // <?xml ...?>
        continue;
      }
      if (next === 33 /* ! */) throw new XmppSyntaxError("comments, CDATA and DTDs are not supported");
      if (next === 47 /* / */) {
        this.depth--;
        if (this.depth === 0) {
          this.sink.streamClose();
        } else if (this.depth === 1) {
          const xml = buf.slice(start, gt + 1);
          start = -1;
          this.sink.stanza(xml);
          // a handler may have restarted the stream (depth reset); keep scanning from here either way
        }
        i = gt + 1;
        continue;
      }
      const selfClosing = buf.charCodeAt(gt - 1) === 47; /* / */
      if (this.depth === 0) {
        this.depth = 1;
        this.sink.streamOpen(buf.slice(lt, gt + 1));
      } else if (this.depth === 1) {
        if (selfClosing) {
          this.sink.stanza(buf.slice(lt, gt + 1));
        } else {
          start = lt;
          this.depth = 2;
        }
      } else if (!selfClosing) {
        this.depth++;
      }
      i = gt + 1;
    }
    // Keep what is not consumed: the open stanza from its '<', or the incomplete tag.
    const keep = start >= 0 ? start : Math.min(i, buf.length);
    this.rest = keep >= buf.length ? "" : buf.slice(keep);
    this.scan = i - keep;
  }
}

/**
 * The value of attribute `name` in the first tag at or after `from` (the tag that `from` points
 * into or follows), or undefined. Entities are not decoded: the generator only reads values it
 * wrote itself (ids, JIDs) and numbers.
 */
export function attr(xml: string, name: string, from = 0): string | undefined {
  const tagEnd = xml.indexOf(">", from);
  const end = tagEnd < 0 ? xml.length : tagEnd;
  let at = from;
  for (;;) {
    const hit = xml.indexOf(name, at);
    if (hit < 0 || hit >= end) return undefined;
    const before = xml.charCodeAt(hit - 1);
    const eq = hit + name.length;
    // a whole attribute name: preceded by whitespace, followed by = and a quote
    if ((before === 32 || before === 9 || before === 10 || before === 13) && xml.charCodeAt(eq) === 61 /* = */) {
      const quote = xml[eq + 1];
      if (quote === "'" || quote === '"') {
        const close = xml.indexOf(quote, eq + 2);
        if (close < 0) return undefined;
        return xml.slice(eq + 2, close);
      }
    }
    at = hit + name.length;
  }
}

/** The element name of a stanza ("message", "iq", "stream:features", ...). */
export function elementName(xml: string): string {
  let i = 1;
  while (i < xml.length) {
    const c = xml.charCodeAt(i);
    if (c === 32 || c === 62 /* > */ || c === 47 /* / */ || c === 9 || c === 10 || c === 13) break;
    i++;
  }
  return xml.slice(1, i);
}

const ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", "'": "&apos;", '"': "&quot;" };
export function escapeXml(text: string): string {
  return text.replace(/[&<>'"]/g, (c) => ESCAPES[c]!);
}
