// The `parley` command: `parley serve` runs the server; every other command
// acts for one device profile (--profile / PARLEY_PROFILE) against one server
// (--server / PARLEY_SERVER). Scriptable (--json, exit codes) and humane.
import { parseArgs } from "node:util";
import {
  ClientError,
  directChatId,
  downloadAttachment,
  forwardAttachment,
  isMediaError,
  isStoreError,
  type MediaDescriptor,
  openClient,
  type ParleyClient,
  type StoredMessage,
  sendFile,
  sendHistory,
  terminalProgress,
} from "@parley/client";
import QRCode from "qrcode";
import { runChat } from "./chat.ts";
import { CliError, type Common, EXIT, out, runReporting } from "./common.ts";
import { GROUP_USAGE, runGroupCommand } from "./group.ts";

export { EXIT };

const DEFAULT_SERVER = "ws://127.0.0.1:7420/ws";
const DEFAULT_PROFILE = "parley-profile";

const USAGE = `parley: self-hosted end-to-end-encrypted messaging

server:
  parley serve [--port N] [--tcp-port N] [--host ADDR] [--data DIR] [--dev] [--workers N] [--log-level L]

device (options: --profile DIR, --server URL, --json):
  parley register <name> [--code CODE]     register this profile (name: username or +phone)
  parley send <to> <text>                  send; exits once the server has it (prints the message id)
  parley send-file <to> <path> [--caption TEXT]   send a file (encrypted on this device, then uploaded)
  parley forward <to> <sender> <message-id>       forward an attachment (the same blob, no re-upload)
  parley receive [--wait SECONDS]          fetch and print what is queued for this device
  parley read <contact>                    mark the chat read (blue ticks for the sender)
  parley status <message-id>               pending / sent / delivered / read / failed
  parley history <contact> [--limit N]     the chat, oldest first
  parley search <text>                     full-text search over this device's messages
  parley safety-number <contact>           compare this 60-digit number with your contact
  parley chat <contact>                    interactive chat with ticks, typing and presence
  parley link                              on a NEW device: show a QR code to link it to your account
  parley link --accept <code>              on your primary device: link the device showing <code>
  parley devices                           this account's devices (verified device list)
  parley unlink <device>                   on the primary: unlink a device (it gets nothing from now on)
${GROUP_USAGE}
environment: PARLEY_PROFILE, PARLEY_SERVER, PARLEY_PASSPHRASE (profile key from a passphrase)
server settings (flag, environment, default):
`;

const TICKS: Record<string, string> = {
  pending: "🕓",
  sent: "✓",
  delivered: "✓✓",
  read: "✓✓ (read)",
  failed: "✗ failed",
};

export function formatMessage(m: StoredMessage, me: string): string {
  const when = new Date(m.serverAt ?? m.sentAt).toISOString().replace("T", " ").slice(0, 19);
  const who = m.sender === me ? "me" : m.sender;
  const body = m.kind === "placeholder" ? "⏳ waiting for this message (decryption retried)" : (m.body ?? "");
  const tick = m.sender === me ? ` ${TICKS[m.status] ?? m.status}` : "";
  return `[${when}] ${who}: ${body}${tick}`;
}

function messageJson(m: StoredMessage) {
  return {
    id: m.id,
    chat: m.chatId,
    from: m.sender,
    device: m.senderDevice,
    text: m.body,
    kind: m.kind,
    status: m.status,
    sentAt: m.sentAt,
    serverAt: m.serverAt,
  };
}

async function open(common: Common): Promise<ParleyClient> {
  try {
    return await openClient({
      dir: common.profile,
      serverUrl: common.server,
      ...(process.env.PARLEY_PASSPHRASE ? { passphrase: process.env.PARLEY_PASSPHRASE } : {}),
    });
  } catch (err) {
    if (isStoreError(err)) throw new CliError(EXIT.FAILURE, `cannot open profile ${common.profile}: ${err.message}`);
    throw err;
  }
}

function requireRegistered(client: ParleyClient, common: Common): void {
  if (!client.isRegistered) {
    throw new CliError(EXIT.USAGE, `profile ${common.profile} is not registered: run \`parley register <name>\` first`);
  }
}

async function connect(client: ParleyClient): Promise<void> {
  try {
    await client.start();
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    if (/not-registered|unauthorized/.test(msg))
      throw new CliError(EXIT.REFUSED, `the server refused this device: ${msg}`);
    throw new CliError(EXIT.UNREACHABLE, `cannot reach the server: ${msg}`);
  }
}

/** Connects, lets the queued backlog arrive (until the server says the queue is empty), then returns. */
async function drain(client: ParleyClient, extraSeconds = 0): Promise<void> {
  const empty = new Promise<void>((resolve) => client.once("queue-empty", () => resolve()));
  await connect(client);
  await Promise.race([empty, new Promise((r) => setTimeout(r, 10_000))]);
  if (extraSeconds > 0) await new Promise((r) => setTimeout(r, extraSeconds * 1000));
}

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  if (command === undefined || command === "help" || command === "--help" || command === "-h") {
    const { CONFIG_HELP } = await import("@parley/server");
    process.stdout.write(`${USAGE}${CONFIG_HELP}\n`);
    return command === undefined ? EXIT.USAGE : EXIT.OK;
  }
  if (command === "serve") return (await import("./serve.ts")).serve(rest);

  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: true,
    options: {
      profile: { type: "string" },
      server: { type: "string" },
      json: { type: "boolean", default: false },
      code: { type: "string" },
      wait: { type: "string" },
      limit: { type: "string" },
      timeout: { type: "string" },
      caption: { type: "string" },
      description: { type: "string" },
      accept: { type: "string" },
      "history-messages": { type: "string" },
      "no-download": { type: "boolean", default: false },
    },
  });
  const common: Common = {
    profile: values.profile ?? process.env.PARLEY_PROFILE ?? DEFAULT_PROFILE,
    server: values.server ?? process.env.PARLEY_SERVER ?? DEFAULT_SERVER,
    json: values.json ?? false,
  };
  const need = (n: number, usage: string) => {
    if (positionals.length !== n) throw new CliError(EXIT.USAGE, `usage: parley ${usage}`);
  };
  const number = (v: string | undefined, name: string, dflt: number) => {
    if (v === undefined) return dflt;
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0) throw new CliError(EXIT.USAGE, `--${name} must be a non-negative number`);
    return n;
  };

  const client = await open(common);
  try {
    switch (command) {
      case "register": {
        need(1, "register <name> [--code CODE]");
        let r: Awaited<ReturnType<ParleyClient["register"]>>;
        try {
          r = await client.register(positionals[0]!, values.code ?? "");
        } catch (err) {
          if (err instanceof ClientError && err.code === "ALREADY_REGISTERED")
            throw new CliError(EXIT.USAGE, err.message);
          if (err instanceof ClientError) throw new CliError(EXIT.REFUSED, `registration refused: ${err.message}`);
          throw new CliError(EXIT.UNREACHABLE, `cannot reach the server: ${(err as Error).message}`);
        }
        if (r.status === "code-sent") {
          out(common, `a verification code was sent; run: parley register ${positionals[0]} --code <CODE>`, r);
        } else out(common, `registered ${r.user} (device ${r.device}) in ${common.profile}`, r);
        return EXIT.OK;
      }
      case "send": {
        need(2, "send <to> <text>");
        requireRegistered(client, common);
        const [to, text] = positionals as [string, string];
        const id = client.queueText(to, text);
        try {
          await connect(client);
          await client.waitForStatus(id, "sent", number(values.timeout, "timeout", 30) * 1000);
        } catch (err) {
          const failed = client.store.getMessage(client.accountName!, id)?.status === "failed";
          if (failed) throw new CliError(EXIT.NOT_FOUND, `cannot send to ${to}: no such user`);
          if (err instanceof ClientError)
            throw new CliError(EXIT.FAILURE, `message ${id} is queued but not yet acknowledged: ${err.message}`);
          if (err instanceof CliError && err.exitCode === EXIT.UNREACHABLE) {
            throw new CliError(
              EXIT.UNREACHABLE,
              `${err.message}; message ${id} is queued and will be sent by the next parley command that connects`,
            );
          }
          throw err;
        }
        out(common, id, { id, status: client.store.getMessage(client.accountName!, id)?.status });
        return EXIT.OK;
      }
      case "receive": {
        need(0, "receive [--wait SECONDS] [--json] [--no-download]");
        requireRegistered(client, common);
        const me = client.accountName!;
        const downloads: Promise<void>[] = [];
        client.on("message", ({ message, media }) => {
          out(common, formatMessage(message, me), messageJson(message));
          if (media && !values["no-download"]) downloads.push(fetchAttachment(client, common, message, media));
        });
        await drain(client, number(values.wait, "wait", 0));
        await Promise.all(downloads);
        return EXIT.OK;
      }
      case "send-file": {
        need(2, "send-file <to> <path> [--caption TEXT]");
        requireRegistered(client, common);
        const [to, path] = positionals as [string, string];
        await connect(client);
        let id: string;
        try {
          id = await sendFile(client, to, path, {
            ...(values.caption !== undefined ? { caption: values.caption } : {}),
            onProgress: terminalProgress({ label: path.split("/").pop() ?? path }),
          });
        } catch (err) {
          if (isMediaError(err))
            throw new CliError(err.code === "BAD_INPUT" || err.code === "IO" ? EXIT.USAGE : EXIT.FAILURE, err.message);
          throw err;
        }
        await client.waitForStatus(id, "sent", number(values.timeout, "timeout", 60) * 1000).catch(() => {
          const failed = client.store.getMessage(client.accountName!, id)?.status === "failed";
          throw new CliError(
            failed ? EXIT.NOT_FOUND : EXIT.UNREACHABLE,
            failed ? `cannot send to ${to}: no such user` : "the server did not acknowledge the message",
          );
        });
        out(common, id, { id, status: "sent" });
        return EXIT.OK;
      }
      case "forward": {
        need(3, "forward <to> <sender> <message-id>");
        requireRegistered(client, common);
        const [to, sender, messageId] = positionals as [string, string, string];
        let id: string;
        try {
          id = forwardAttachment(client, sender, messageId, to);
        } catch (err) {
          throw new CliError(EXIT.NOT_FOUND, (err as Error).message);
        }
        await connect(client);
        await client.waitForStatus(id, "sent", number(values.timeout, "timeout", 30) * 1000);
        out(common, id, { id, status: "sent" });
        return EXIT.OK;
      }
      case "read": {
        need(1, "read <contact>");
        requireRegistered(client, common);
        await drain(client);
        const n = client.markRead(positionals[0]!);
        out(common, `marked ${n} message(s) read`, { read: n });
        return EXIT.OK;
      }
      case "status": {
        need(1, "status <message-id>");
        requireRegistered(client, common);
        await drain(client).catch(() => {}); // offline: answer from the local store
        const m = client.store.getMessage(client.accountName!, positionals[0]!);
        if (!m) throw new CliError(EXIT.NOT_FOUND, `no message ${positionals[0]} sent from this profile`);
        out(common, m.status, { id: m.id, status: m.status, receipts: client.store.listReceipts(m.id) });
        return EXIT.OK;
      }
      case "history": {
        need(1, "history <contact> [--limit N] [--json]");
        requireRegistered(client, common);
        const page = client.store.history(directChatId(positionals[0]!), {
          limit: number(values.limit, "limit", 50) || 50,
          ...(values.description !== undefined ? { description: values.description } : {}),
        });
        const msgs = [...page.messages].reverse();
        if (common.json) out(common, "", msgs.map(messageJson));
        else for (const m of msgs) process.stdout.write(`${formatMessage(m, client.accountName!)}\n`);
        return EXIT.OK;
      }
      case "search": {
        need(1, "search <text>");
        requireRegistered(client, common);
        const hits = client.store.search(positionals[0]!);
        if (common.json)
          out(
            common,
            "",
            hits.map((h) => ({ ...messageJson(h.message), snippet: h.snippet })),
          );
        else
          for (const h of hits)
            process.stdout.write(`${h.message.chatId.slice(2)}  ${h.message.sender}: ${h.snippet}\n`);
        return EXIT.OK;
      }
      case "safety-number": {
        need(1, "safety-number <contact>");
        requireRegistered(client, common);
        let number: string;
        try {
          number = client.safetyNumber(positionals[0]!);
        } catch (err) {
          throw new CliError(EXIT.NOT_FOUND, (err as Error).message);
        }
        const grouped = number.match(/.{5}/g)!.join(" ");
        out(common, grouped, { contact: positionals[0], safetyNumber: number });
        return EXIT.OK;
      }
      case "link": {
        if (values.accept !== undefined) {
          need(0, "link --accept <code>");
          requireRegistered(client, common);
          await connect(client);
          let device: number;
          try {
            device = await client.acceptLink(values.accept);
          } catch (err) {
            if (err instanceof ClientError) throw new CliError(EXIT.REFUSED, `cannot link: ${err.message}`);
            throw err;
          }
          const sent = await sendHistory(client, device, {
            maxPerChat: number(values["history-messages"], "history-messages", 10_000),
          });
          await client.flushOutbox();
          out(common, `linked device ${device}; sent ${sent} message(s) of history`, { device, history: sent });
          return EXIT.OK;
        }
        need(0, "link [--accept <code>]");
        if (client.isRegistered)
          throw new CliError(EXIT.USAGE, `profile ${common.profile} is already a device of ${client.accountName}`);
        let request: Awaited<ReturnType<ParleyClient["createLinkRequest"]>>;
        try {
          request = await client.createLinkRequest();
        } catch (err) {
          throw new CliError(EXIT.UNREACHABLE, `cannot reach the server: ${(err as Error).message}`);
        }
        if (process.stdout.isTTY && !common.json) {
          process.stdout.write(await QRCode.toString(request.code, { type: "terminal", small: true }));
          process.stdout.write("Scan this on your phone, or run on your primary device:\n");
        }
        out(common, `  parley link --accept ${request.code}`, { code: request.code });
        const { user, device } = await request.linked.catch((err: Error) => {
          throw new CliError(EXIT.REFUSED, `linking failed: ${err.message}`);
        });
        out(common, `linked as ${user} (device ${device}); receiving history…`, { user, device });
        const imported = new Promise<number>((resolve) => client.once("history-imported", (e) => resolve(e.count)));
        await connect(client);
        const count = await Promise.race([
          imported,
          new Promise<number>((r) => setTimeout(() => r(-1), number(values.wait, "wait", 120) * 1000)),
        ]);
        if (count >= 0) out(common, `imported ${count} message(s) of history`, { history: count });
        else out(common, "no history arrived (it can come later with `parley receive`)", { history: null });
        return EXIT.OK;
      }
      case "devices": {
        need(0, "devices");
        requireRegistered(client, common);
        await connect(client);
        const devices = await client.ownDevices().catch((err: Error) => {
          throw new CliError(EXIT.REFUSED, err.message);
        });
        if (common.json)
          out(
            common,
            "",
            devices.map((d) => ({ device: d.id, current: d.current, primary: d.id === 1 })),
          );
        else
          for (const d of devices)
            process.stdout.write(
              `device ${d.id}${d.id === 1 ? " (primary)" : ""}${d.current ? " ← this device" : ""}\n`,
            );
        return EXIT.OK;
      }
      case "unlink": {
        need(1, "unlink <device>");
        requireRegistered(client, common);
        const device = number(positionals[0], "device", 0);
        await connect(client);
        try {
          await client.unlinkDevice(device);
        } catch (err) {
          throw new CliError(
            err instanceof ClientError && err.code === "not-found" ? EXIT.NOT_FOUND : EXIT.REFUSED,
            `cannot unlink: ${(err as Error).message}`,
          );
        }
        out(common, `unlinked device ${device}`, { unlinked: device });
        return EXIT.OK;
      }
      case "group":
        requireRegistered(client, common);
        return await runGroupCommand(client, common, positionals, {
          connect: () => connect(client),
          drain: () => drain(client),
          timeoutMs: number(values.timeout, "timeout", 30) * 1000,
          limit: number(values.limit, "limit", 50) || 50,
          ...(values.description !== undefined ? { description: values.description } : {}),
        });
      case "chat": {
        need(1, "chat <contact>");
        requireRegistered(client, common);
        await connect(client);
        await runChat(client, positionals[0]!);
        return EXIT.OK;
      }
      default:
        throw new CliError(EXIT.USAGE, `unknown command ${command}; see \`parley help\``);
    }
  } finally {
    await client.stop().catch(() => {});
    client.store.close();
  }
}

/** Downloads an attachment into the profile's media folder, with a progress bar on a terminal. */
async function fetchAttachment(
  client: ParleyClient,
  common: Common,
  message: StoredMessage,
  media: MediaDescriptor,
): Promise<void> {
  try {
    const saved = await downloadAttachment(client, message.sender, message.id, {
      onProgress: terminalProgress({ label: media.fileName }),
    });
    out(common, `  saved ${media.fileName} (${saved.size} bytes) to ${saved.path}`, {
      id: message.id,
      file: saved.path,
      size: saved.size,
    });
  } catch (err) {
    const reason = isMediaError(err) ? `${err.code}: ${err.message}` : String(err);
    process.stderr.write(`parley: could not download ${media.fileName} from ${message.sender}: ${reason}\n`);
    process.exitCode = EXIT.FAILURE;
  }
}

export async function run(argv: string[]): Promise<void> {
  await runReporting(() => main(argv));
}
