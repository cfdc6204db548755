// `parley group ...`: group chats from the command line. A group is named by its id (32 hex
// characters, printed by `create`) or by its subject when exactly one group has it.
import { ClientError, GroupClientError, type GroupView, groupChatId, type ParleyClient } from "@parley/client";
import { CliError, type Common, EXIT, out } from "./common.ts";

export const GROUP_USAGE = `  parley group create <subject> <member>... [--description TEXT]   create a group (you are its admin)
  parley group list | info <group>            your groups | members, admins, version
  parley group add|remove|promote|demote <group> <user>...   admins only
  parley group subject <group> <text>         rename (admins); describe <group> <text>: the description
  parley group leave <group>
  parley group invite <group> | revoke <group>   make / revoke an invite code (admins)
  parley group join <code>                    join with an invite code
  parley group send <group> <text>            send to every member (prints the message id)
  parley group history <group> [--limit N] | read <group>
`;

interface GroupCommandIo {
  connect(): Promise<void>;
  drain(): Promise<void>;
  timeoutMs: number;
  limit: number;
  description?: string;
}

function describe(g: GroupView): string {
  const members = g.members.map((m) => (m.role === "member" ? m.user : `${m.user} (${m.role})`)).join(", ");
  const about = g.description ? `\n  ${g.description}` : "";
  return `${g.id}  "${g.subject}"  v${g.version}${g.active ? "" : "  (you are not a member)"}${about}\n  ${members}`;
}

/** A group id, or the subject of exactly one of our groups. */
function resolve(client: ParleyClient, ref: string): GroupView {
  const byId = client.group(ref);
  if (byId) return byId;
  const bySubject = client.groups().filter((g) => g.subject === ref);
  if (bySubject.length === 1) return bySubject[0]!;
  if (bySubject.length > 1)
    throw new CliError(EXIT.USAGE, `${bySubject.length} groups are called "${ref}": use the id`);
  throw new CliError(EXIT.NOT_FOUND, `no group ${ref} on this device (parley group list)`);
}

/** Group and client errors in the CLI's exit codes. */
function cliError(err: unknown): never {
  if (err instanceof CliError) throw err;
  const code = (err as { code?: string }).code ?? "";
  const message = (err as Error).message ?? String(err);
  if (err instanceof GroupClientError || err instanceof ClientError) {
    if (code === "FORBIDDEN" || code === "forbidden") throw new CliError(EXIT.REFUSED, `refused: ${message}`);
    if (code === "NOT_FOUND" || code === "not-found") throw new CliError(EXIT.NOT_FOUND, message);
    if (code === "INVALID" || code === "bad-request") throw new CliError(EXIT.USAGE, message);
    if (code === "DISCONNECTED" || code === "TIMEOUT") throw new CliError(EXIT.UNREACHABLE, message);
  }
  throw err;
}

export async function runGroupCommand(
  client: ParleyClient,
  common: Common,
  positionals: string[],
  io: GroupCommandIo,
): Promise<number> {
  const [sub, ...args] = positionals;
  const need = (min: number, usage: string, max = min) => {
    if (args.length < min || args.length > max) throw new CliError(EXIT.USAGE, `usage: parley group ${usage}`);
  };
  try {
    switch (sub) {
      case "create": {
        need(2, "create <subject> <member>...", 1024);
        await io.connect();
        const g = await client.createGroup(
          args[0]!,
          args.slice(1),
          io.description !== undefined ? { description: io.description } : {},
        );
        out(common, describe(g), g);
        return EXIT.OK;
      }
      case "list": {
        need(0, "list");
        await io.drain().catch(() => {}); // offline: what this device knows
        const groups = client.groups();
        out(common, groups.map(describe).join("\n") || "no groups", groups);
        return EXIT.OK;
      }
      case "info": {
        need(1, "info <group>");
        await io.drain().catch(() => {});
        const g = resolve(client, args[0]!);
        out(common, describe(g), g);
        return EXIT.OK;
      }
      case "add":
      case "remove":
      case "promote":
      case "demote": {
        need(2, `${sub} <group> <user>...`, 1024);
        await io.drain();
        const g = resolve(client, args[0]!);
        const users = args.slice(1);
        const changed = await {
          add: () => client.addGroupMembers(g.id, users),
          remove: () => client.removeGroupMembers(g.id, users),
          promote: () => client.promoteGroupAdmins(g.id, users),
          demote: () => client.demoteGroupAdmins(g.id, users),
        }[sub]();
        out(common, describe(changed), changed);
        return EXIT.OK;
      }
      case "subject": {
        need(2, "subject <group> <text>");
        await io.drain();
        const changed = await client.setGroupSubject(resolve(client, args[0]!).id, args[1]!);
        out(common, describe(changed), changed);
        return EXIT.OK;
      }
      case "describe": {
        need(2, "describe <group> <text>");
        await io.drain();
        const changed = await client.setGroupDescription(resolve(client, args[0]!).id, args[1]!);
        out(common, describe(changed), changed);
        return EXIT.OK;
      }
      case "leave": {
        need(1, "leave <group>");
        await io.drain();
        const changed = await client.leaveGroup(resolve(client, args[0]!).id);
        out(common, `left "${changed.subject}"`, changed);
        return EXIT.OK;
      }
      case "invite": {
        need(1, "invite <group>");
        await io.drain();
        const code = await client.createGroupInvite(resolve(client, args[0]!).id);
        out(common, code, { code });
        return EXIT.OK;
      }
      case "revoke": {
        need(1, "revoke <group>");
        await io.drain();
        const changed = await client.revokeGroupInvite(resolve(client, args[0]!).id);
        out(common, "invite revoked", changed);
        return EXIT.OK;
      }
      case "join": {
        need(1, "join <code>");
        await io.connect();
        const g = await client.joinGroup(args[0]!);
        out(common, describe(g), g);
        return EXIT.OK;
      }
      case "send": {
        need(2, "send <group> <text>");
        await io.drain();
        const g = resolve(client, args[0]!);
        const id = client.queueGroupText(g.id, args[1]!);
        await client.waitForStatus(id, "sent", io.timeoutMs);
        out(common, id, { id, group: g.id, status: "sent" });
        return EXIT.OK;
      }
      case "history": {
        need(1, "history <group> [--limit N]");
        const g = resolve(client, args[0]!);
        const page = client.store.history(groupChatId(g.id), { limit: io.limit });
        const msgs = [...page.messages].reverse();
        const me = client.accountName!;
        const lines = msgs.map((m) => `${m.sender === me ? "me" : m.sender}: ${m.body ?? ""}`);
        out(
          common,
          lines.join("\n"),
          msgs.map((m) => ({ id: m.id, from: m.sender, text: m.body, status: m.status })),
        );
        return EXIT.OK;
      }
      case "read": {
        need(1, "read <group>");
        await io.drain();
        const n = client.markGroupRead(resolve(client, args[0]!).id);
        out(common, `marked ${n} message(s) read`, { read: n });
        return EXIT.OK;
      }
      default:
        throw new CliError(EXIT.USAGE, `usage:\n${GROUP_USAGE}`);
    }
  } catch (err) {
    cliError(err);
  }
}
