// `parley chat <contact>`: an interactive terminal chat. Ticks update in place
// as receipts arrive (✓ sent, ✓✓ delivered, blue ✓✓ read), and the contact's
// typing and presence show on a status line.
import { createInterface } from "node:readline";
import { directChatId, downloadAttachment, type ParleyClient, terminalProgress } from "@parley/client";
import { formatMessage } from "./main.ts";

const BLUE = "\u001b[34m";
const DIM = "\u001b[2m";
const RESET = "\u001b[0m";

export async function runChat(client: ParleyClient, contact: string): Promise<void> {
  const me = client.accountName!;
  const tty = process.stdout.isTTY === true;
  const color = (s: string, c: string) => (tty ? `${c}${s}${RESET}` : s);
  const print = (line: string) => {
    if (tty) process.stdout.write("\r\u001b[K");
    process.stdout.write(`${line}\n`);
    if (tty) rl.prompt(true);
  };
  const render = (line: string) => line.replace("✓✓ (read)", color("✓✓", BLUE));

  const rl = createInterface({ input: process.stdin, output: process.stdout, terminal: tty });
  rl.setPrompt(`${me} > `);

  for (const m of [...client.store.history(directChatId(contact), { limit: 20 }).messages].reverse()) {
    print(render(formatMessage(m, me)));
  }
  print(color(`chatting with ${contact}: type a message and press Enter; /quit to leave`, DIM));

  client.on("message", ({ message, chatId, media }) => {
    if (chatId !== directChatId(contact)) return;
    print(render(formatMessage(message, me)));
    if (media) {
      downloadAttachment(client, message.sender, message.id, {
        onProgress: terminalProgress({ label: media.fileName }),
      })
        .then((saved) => print(color(`  saved ${media.fileName} to ${saved.path}`, DIM)))
        .catch((err: Error) => print(color(`  could not download ${media.fileName}: ${err.message}`, DIM)));
    }
    client.markRead(contact); // the chat is open: what arrives is read
  });
  client.on("status", ({ id, status }) => {
    const m = client.store.getMessage(me, id);
    if (m && m.chatId === directChatId(contact))
      print(
        color(
          `  ${status === "read" ? color("✓✓", BLUE) : status === "delivered" ? "✓✓" : status === "sent" ? "✓" : status}  ${m.body ?? ""}`,
          DIM,
        ),
      );
  });
  client.on("typing", ({ user, state }) => {
    if (user === contact)
      print(color(state === "composing" ? `${contact} is typing…` : `${contact} stopped typing`, DIM));
  });
  client.on("presence", ({ user, online, lastSeen }) => {
    if (user !== contact) return;
    const seen = lastSeen ? `last seen ${new Date(lastSeen).toISOString().replace("T", " ").slice(0, 16)}` : "offline";
    print(color(online ? `${contact} is online` : `${contact}: ${seen}`, DIM));
  });
  client.on("connection", ({ state, reason }) => {
    if (state === "disconnected") print(color(`disconnected (${reason ?? "?"}); reconnecting…`, DIM));
    if (state === "connected") print(color("connected", DIM));
  });

  try {
    client.subscribePresence(contact);
  } catch {
    // offline: presence comes after reconnect
  }
  client.markRead(contact);

  // Typing: "composing" at most every 3 s while keys are pressed, "paused" after 4 s of quiet.
  let lastComposing = 0;
  let pauseTimer: NodeJS.Timeout | undefined;
  if (tty) {
    process.stdin.on("keypress", () => {
      const now = Date.now();
      if (now - lastComposing > 3000) {
        lastComposing = now;
        client.sendTyping(contact, "composing");
      }
      clearTimeout(pauseTimer);
      pauseTimer = setTimeout(() => {
        lastComposing = 0;
        client.sendTyping(contact, "paused");
      }, 4000);
    });
  }

  rl.prompt();
  for await (const line of rl) {
    const text = line.trim();
    if (text === "/quit" || text === "/exit") break;
    if (text === "") {
      rl.prompt();
      continue;
    }
    clearTimeout(pauseTimer);
    lastComposing = 0;
    const id = client.queueText(contact, text);
    const m = client.store.getMessage(me, id);
    if (m && !tty) print(formatMessage(m, me));
    rl.prompt();
  }
  clearTimeout(pauseTimer);
  rl.close();
}
