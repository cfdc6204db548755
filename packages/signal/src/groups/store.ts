// Where sender-key records live. All methods are async so a store can be
// backed by IndexedDB or SQLite; the in-memory one keeps serialized copies so
// that a caller mutating a loaded record never changes the stored one.

import { SenderKeyRecord } from "./record.ts";

export type SenderKeyAddress = { name: string; deviceId: number };

export interface SenderKeyStore {
  loadSenderKey(sender: SenderKeyAddress, distributionId: string): Promise<SenderKeyRecord | undefined>;
  storeSenderKey(sender: SenderKeyAddress, distributionId: string, record: SenderKeyRecord): Promise<void>;
}

function storeKey(sender: SenderKeyAddress, distributionId: string): string {
  // JSON keeps names containing separators unambiguous.
  return JSON.stringify([sender.name, sender.deviceId, distributionId.toLowerCase()]);
}

export class InMemorySenderKeyStore implements SenderKeyStore {
  private readonly records = new Map<string, Uint8Array>();

  async loadSenderKey(sender: SenderKeyAddress, distributionId: string): Promise<SenderKeyRecord | undefined> {
    const bytes = this.records.get(storeKey(sender, distributionId));
    return bytes === undefined ? undefined : SenderKeyRecord.deserialize(bytes);
  }

  async storeSenderKey(sender: SenderKeyAddress, distributionId: string, record: SenderKeyRecord): Promise<void> {
    this.records.set(storeKey(sender, distributionId), record.serialize());
  }
}
