// One lean XMPP client connection for the load generator: a raw TCP socket
// (node:net), stream open, SASL PLAIN, resource bind, session, initial
// presence, optionally XEP-0198 stream management (used only to learn when the
// server has handled a sender's messages in the offline workload). Writes are
// batched: everything a connection sends during one event-loop turn leaves in
// one socket write (flushed in setImmediate), as the Parley generator does.
import { connect as netConnect, type Socket } from "node:net";
import { attr, elementName, escapeXml, StanzaSplitter } from "./xmpp-xml.ts";

export class XmppLoadError extends Error {
  override readonly name = "XmppLoadError";
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export interface XmppLoginOptions {
  host: string;
  port: number;
  /** XMPP domain (the `to` of the stream header). */
  domain: string;
  user: string;
  password: string;
  resource?: string;
  localAddress?: string;
  /** Enable XEP-0198 after bind: the server then answers every <r/> with <a h='handled stanzas'/>. */
  streamManagement?: boolean;
  timeoutMs?: number;
}

const STREAM_HEADER = (domain: string) =>
  `<?xml version='1.0'?><stream:stream to='${escapeXml(domain)}' xmlns='jabber:client' ` +
  "xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>";

/** Connections with output waiting for this turn's flush. */
const dirty: XmppConnection[] = [];
let flushScheduled = false;
function scheduleFlush(conn: XmppConnection): void {
  dirty.push(conn);
  if (flushScheduled) return;
  flushScheduled = true;
  setImmediate(() => {
    flushScheduled = false;
    const list = dirty.splice(0);
    for (const c of list) c.flush();
  });
}

type Phase = "connecting" | "features1" | "auth" | "features2" | "binding" | "online" | "closed";

export class XmppConnection {
  private readonly socket: Socket;
  private readonly splitter: StanzaSplitter;
  private out = "";
  private queued = false;
  private phase: Phase = "connecting";
  /** Messages sent since the last <r/> (stream management only). */
  private unrequested = 0;
  private smEnabled = false;
  /** Stanzas received since stream management was enabled (our side of XEP-0198's h). */
  private received = 0;
  closed = false;
  closeReason = "";
  /** The full JID the server bound for this connection. */
  jid = "";
  /** Cumulative stanzas the server acknowledged (<a h/>), stream management only. */
  handled = 0;
  private stanzaHandler: ((xml: string, name: string) => void) | undefined;
  /** Stanzas that arrived before the owner set its handler (allocated only then). */
  private early: [string, string][] | undefined;
  /**
   * Set by the owner once online: every message after the bind. Stanzas that arrived before it
   * was set are handed over first, in order: the offline messages our initial presence releases
   * can arrive in the same read as the login's last answer, before the owner's `await` resumes
   * (seen under load: 33 of 300 offline messages lost that way).
   */
  set onStanza(handler: (xml: string, name: string) => void) {
    this.stanzaHandler = handler;
    const early = this.early;
    this.early = undefined;
    for (const [xml, name] of early ?? []) handler(xml, name);
  }
  private deliver(xml: string, name: string): void {
    if (this.stanzaHandler) {
      this.stanzaHandler(xml, name);
      return;
    }
    this.early ??= [];
    this.early.push([xml, name]);
  }
  onHandled: (h: number) => void = () => {};
  onClose: (reason: string) => void = () => {};
  private loginResolve: (() => void) | undefined;
  private loginReject: ((e: Error) => void) | undefined;

  private constructor(private readonly options: XmppLoginOptions) {
    this.splitter = new StanzaSplitter({
      streamOpen: () => {},
      stanza: (xml) => this.receive(xml),
      streamClose: () => this.fail("stream closed by the server"),
    });
    this.socket = netConnect({
      host: options.host,
      port: options.port,
      noDelay: true,
      ...(options.localAddress ? { localAddress: options.localAddress } : {}),
    });
    this.socket.setEncoding("latin1"); // the generator reads only ASCII it wrote itself, plus markup
    this.socket.on("data", (chunk: string) => {
      try {
        this.splitter.push(chunk);
      } catch (err) {
        this.fail(err instanceof Error ? err.message : String(err));
      }
    });
    this.socket.on("error", (err) => this.fail(err.message));
    this.socket.on("close", () => this.fail("socket closed"));
  }

  /** Connects and logs in; resolves once the session is established and initial presence is sent. */
  static open(options: XmppLoginOptions): Promise<XmppConnection> {
    const conn = new XmppConnection(options);
    return new Promise<XmppConnection>((resolve, reject) => {
      const timer = setTimeout(() => {
        conn.fail(`login timed out after ${options.timeoutMs ?? 30_000} ms (phase ${conn.phase})`);
      }, options.timeoutMs ?? 30_000);
      conn.loginResolve = () => {
        clearTimeout(timer);
        resolve(conn);
      };
      conn.loginReject = (e) => {
        clearTimeout(timer);
        reject(e);
      };
      conn.socket.once("connect", () => {
        conn.phase = "features1";
        conn.write(STREAM_HEADER(options.domain));
      });
    });
  }

  /** Queues raw XML for this turn's write. */
  write(xml: string): void {
    if (this.closed) return;
    this.out += xml;
    if (!this.queued) {
      this.queued = true;
      scheduleFlush(this);
    }
  }

  /** A stanza counted by stream management (messages), so a later <r/> covers it. */
  writeCounted(xml: string): void {
    this.write(xml);
    if (this.smEnabled) this.unrequested++;
  }

  /** Called by the turn's flush: one socket write with everything queued. */
  flush(): void {
    this.queued = false;
    if (this.closed) return;
    if (this.unrequested > 0) {
      this.out += "<r xmlns='urn:xmpp:sm:3'/>";
      this.unrequested = 0;
    }
    const data = this.out;
    this.out = "";
    if (data.length > 0) this.socket.write(data, "latin1");
  }

  private receive(xml: string): void {
    const name = elementName(xml);
    if (this.phase === "online") {
      if (name === "a") {
        const h = Number(attr(xml, "h"));
        if (Number.isFinite(h)) {
          this.handled = h;
          this.onHandled(h);
        }
        return;
      }
      if (name === "r") {
        this.write(`<a xmlns='urn:xmpp:sm:3' h='${this.received}'/>`);
        return;
      }
      if (name === "stream:error") {
        this.fail(`stream error: ${xml.slice(0, 300)}`);
        return;
      }
      if (this.smEnabled) this.received = (this.received + 1) % 2 ** 32;
      this.deliver(xml, name);
      return;
    }
    if (name === "stream:error") {
      this.fail(`stream error: ${xml.slice(0, 300)}`);
      return;
    }
    if (this.phase === "binding" && name === "message") {
      // Bound, the session iq still unanswered: if ejabberd answers it after handling our initial
      // presence, the offline messages that presence releases come first. They are ours.
      this.deliver(xml, name);
      return;
    }
    const o = this.options;
    switch (this.phase) {
      case "features1":
        if (name !== "stream:features") return;
        if (!xml.includes(">PLAIN<")) {
          this.fail(`server offers no SASL PLAIN: ${xml.slice(0, 300)}`);
          return;
        }
        this.phase = "auth";
        this.write(
          "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>" +
            `${Buffer.from(`\0${o.user}\0${o.password}`, "utf8").toString("base64")}</auth>`,
        );
        return;
      case "auth":
        if (name === "success") {
          this.phase = "features2";
          this.splitter.restart();
          this.write(STREAM_HEADER(o.domain));
        } else if (name === "failure") {
          this.fail(`SASL failure for ${o.user}: ${xml.slice(0, 200)}`, "AUTH");
        }
        return;
      case "features2":
        if (name !== "stream:features") return;
        this.phase = "binding";
        // Bind, session and initial presence in one write: the server handles them in order.
        this.write(
          `<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${escapeXml(o.resource ?? "load")}</resource></bind></iq>` +
            "<iq type='set' id='sess'><session xmlns='urn:ietf:params:xml:ns:xmpp-session'/></iq><presence/>",
        );
        return;
      case "binding":
        if (name === "iq") {
          const id = attr(xml, "id");
          const type = attr(xml, "type");
          if (type === "error") {
            this.fail(`${id} failed: ${xml.slice(0, 300)}`);
            return;
          }
          if (id === "bind") {
            const at = xml.indexOf("<jid>");
            if (at >= 0) this.jid = xml.slice(at + 5, xml.indexOf("</jid>", at));
          } else if (id === "sess") {
            if (o.streamManagement) {
              this.write("<enable xmlns='urn:xmpp:sm:3'/>");
              return;
            }
            this.online();
          }
        } else if (name === "enabled") {
          this.smEnabled = true;
          this.online();
        } else if (name === "failed") {
          this.fail(`stream management refused: ${xml.slice(0, 200)}`);
        }
        // presence echoes and the like before the session result: ignored
        return;
      default:
        return;
    }
  }

  private online(): void {
    this.phase = "online";
    const resolve = this.loginResolve;
    this.loginResolve = undefined;
    this.loginReject = undefined;
    resolve?.();
  }

  private fail(reason: string, code = "XMPP"): void {
    if (this.closed) return;
    this.closed = true;
    this.closeReason = reason;
    this.phase = "closed";
    this.socket.destroy();
    const reject = this.loginReject;
    this.loginResolve = undefined;
    this.loginReject = undefined;
    if (reject) reject(new XmppLoadError(code, reason));
    else this.onClose(reason);
  }

  /** Ends the stream politely and waits (briefly) for the socket to close. */
  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    this.closeReason = "closed by the generator";
    this.phase = "closed";
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.socket.destroy();
        resolve();
      }, 3000);
      this.socket.once("close", () => {
        clearTimeout(timer);
        resolve();
      });
      this.socket.end("</stream:stream>");
    });
  }
}
