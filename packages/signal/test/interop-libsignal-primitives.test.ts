// Cross-checks against the reference implementation, @signalapp/libsignal-client
// 0.103.0 (AGPL-3.0, a devDependency used by tests only): signatures, key
// encodings, fingerprints, sender-key messages and the 1:1 wire layouts.

import assert from "node:assert/strict";
import { it } from "node:test";
import * as ls from "@signalapp/libsignal-client";
import { getCrypto, toHex, utf8 } from "../src/crypto/index.ts";
import {
  agree,
  decodePublicKey,
  encodePublicKey,
  generateKeyPair,
  publicKeyFromPrivate,
  xeddsaSign,
  xeddsaVerify,
} from "../src/curve/index.ts";
import { compareScannable, createFingerprint } from "../src/fingerprint/index.ts";
import {
  createSenderKeyDistributionMessage,
  groupDecrypt,
  groupEncrypt,
  InMemorySenderKeyStore,
  processSenderKeyDistributionMessage,
  uuidToBytes,
} from "../src/groups/index.ts";
import {
  decodePreKeySignalMessage,
  decodeSenderKeyDistributionMessage,
  decodeSenderKeyMessage,
  decodeSignalMessage,
  encodePreKeySignalMessage,
  encodeSenderKeyDistributionMessage,
  encodeSenderKeyMessage,
  encodeSignalMessage,
  senderKeyMessageSignedParts,
  verifySignalMessageMac,
} from "../src/proto/messages.ts";
import { verifySignedPreKey } from "../src/verify.ts";
import { describeEachProvider } from "./fixtures/primitives/helpers.ts";

/** libsignal's typings want ArrayBuffer-backed arrays. */
const ab = (bytes: Uint8Array): Uint8Array<ArrayBuffer> => new Uint8Array(bytes);

class LsSenderKeyStore extends ls.SenderKeyStore {
  private readonly records = new Map<string, Uint8Array<ArrayBuffer>>();
  async saveSenderKey(sender: ls.ProtocolAddress, distributionId: string, record: ls.SenderKeyRecord): Promise<void> {
    this.records.set(`${sender.toString()}|${distributionId}`, record.serialize());
  }
  async getSenderKey(sender: ls.ProtocolAddress, distributionId: string): Promise<ls.SenderKeyRecord | null> {
    const bytes = this.records.get(`${sender.toString()}|${distributionId}`);
    return bytes === undefined ? null : ls.SenderKeyRecord.deserialize(bytes);
  }
}

class LsSessionStore extends ls.SessionStore {
  private readonly sessions = new Map<string, Uint8Array<ArrayBuffer>>();
  async saveSession(name: ls.ProtocolAddress, record: ls.SessionRecord): Promise<void> {
    this.sessions.set(name.toString(), record.serialize());
  }
  async getSession(name: ls.ProtocolAddress): Promise<ls.SessionRecord | null> {
    const bytes = this.sessions.get(name.toString());
    return bytes === undefined ? null : ls.SessionRecord.deserialize(bytes);
  }
  async getExistingSessions(addresses: ls.ProtocolAddress[]): Promise<ls.SessionRecord[]> {
    return (await Promise.all(addresses.map((a) => this.getSession(a)))).filter((r) => r !== null);
  }
}

class LsIdentityStore extends ls.IdentityKeyStore {
  private readonly known = new Map<string, ls.PublicKey>();
  constructor(
    private readonly identity: ls.IdentityKeyPair,
    private readonly registrationId: number,
  ) {
    super();
  }
  async getIdentityKey(): Promise<ls.PrivateKey> {
    return this.identity.privateKey;
  }
  async getLocalRegistrationId(): Promise<number> {
    return this.registrationId;
  }
  async saveIdentity(name: ls.ProtocolAddress, key: ls.PublicKey): Promise<ls.IdentityChange> {
    const old = this.known.get(name.toString());
    this.known.set(name.toString(), key);
    return old !== undefined && !old.equals(key)
      ? ls.IdentityChange.ReplacedExisting
      : ls.IdentityChange.NewOrUnchanged;
  }
  async isTrustedIdentity(name: ls.ProtocolAddress, key: ls.PublicKey): Promise<boolean> {
    const old = this.known.get(name.toString());
    return old === undefined || old.equals(key);
  }
  async getIdentity(name: ls.ProtocolAddress): Promise<ls.PublicKey | null> {
    return this.known.get(name.toString()) ?? null;
  }
}

class LsPreKeyStore extends ls.PreKeyStore {
  readonly keys = new Map<number, ls.PreKeyRecord>();
  async savePreKey(id: number, record: ls.PreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  async getPreKey(id: number): Promise<ls.PreKeyRecord> {
    const r = this.keys.get(id);
    if (!r) throw new Error("no prekey");
    return r;
  }
  async removePreKey(id: number): Promise<void> {
    this.keys.delete(id);
  }
}

class LsSignedPreKeyStore extends ls.SignedPreKeyStore {
  readonly keys = new Map<number, ls.SignedPreKeyRecord>();
  async saveSignedPreKey(id: number, record: ls.SignedPreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  async getSignedPreKey(id: number): Promise<ls.SignedPreKeyRecord> {
    const r = this.keys.get(id);
    if (!r) throw new Error("no signed prekey");
    return r;
  }
}

class LsKyberPreKeyStore extends ls.KyberPreKeyStore {
  readonly keys = new Map<number, ls.KyberPreKeyRecord>();
  async saveKyberPreKey(id: number, record: ls.KyberPreKeyRecord): Promise<void> {
    this.keys.set(id, record);
  }
  async getKyberPreKey(id: number): Promise<ls.KyberPreKeyRecord> {
    const r = this.keys.get(id);
    if (!r) throw new Error("no kyber prekey");
    return r;
  }
  async markKyberPreKeyUsed(): Promise<void> {}
}

const DIST = "0e6d9d53-7a62-4bd4-a7f0-5a1d3c9c2b11";

describeEachProvider("interop with libsignal-client", () => {
  it("key encodings and agreement are byte-identical", () => {
    for (let i = 0; i < 5; i++) {
      const ours = generateKeyPair();
      const theirs = ls.PrivateKey.deserialize(ab(ours.privateKey));
      assert.deepEqual(new Uint8Array(theirs.getPublicKey().serialize()), encodePublicKey(ours.publicKey));
      assert.deepEqual(new Uint8Array(theirs.getPublicKey().getPublicKeyBytes()), ours.publicKey);
      const other = ls.PrivateKey.generate();
      const otherRaw = decodePublicKey(other.getPublicKey().serialize());
      assert.deepEqual(agree(ours.privateKey, otherRaw), new Uint8Array(theirs.agree(other.getPublicKey())));
      // libsignal's private key serialization is the raw (clamped) 32 bytes.
      assert.deepEqual(publicKeyFromPrivate(new Uint8Array(other.serialize())), otherRaw);
    }
  });

  it("XEdDSA: our signatures verify in libsignal and libsignal's verify here", () => {
    for (let i = 0; i < 20; i++) {
      const msg = getCrypto().randomBytes(i * 13);
      const ours = generateKeyPair();
      const lsPublic = ls.PublicKey.deserialize(ab(encodePublicKey(ours.publicKey)));
      assert.equal(lsPublic.verify(ab(msg), ab(xeddsaSign(ours.privateKey, msg))), true);

      const theirs = ls.PrivateKey.generate();
      const sig = new Uint8Array(theirs.sign(ab(msg)));
      const raw = decodePublicKey(theirs.getPublicKey().serialize());
      assert.equal(xeddsaVerify(raw, msg, sig), true);
      sig[i % 64]! ^= 0x10;
      assert.equal(xeddsaVerify(raw, msg, sig), false);
      assert.equal(theirs.getPublicKey().verify(ab(msg), ab(sig)), false);
    }
  });

  it("verifySignedPreKey accepts libsignal-signed EC and KEM prekeys", () => {
    const identity = ls.IdentityKeyPair.generate();
    const spk = ls.PrivateKey.generate().getPublicKey().serialize();
    const kem = ls.KEMKeyPair.generate().getPublicKey().serialize();
    const ik = new Uint8Array(identity.publicKey.serialize());
    assert.equal(verifySignedPreKey(ik, spk, identity.privateKey.sign(spk)), true);
    assert.equal(verifySignedPreKey(ik, kem, identity.privateKey.sign(kem)), true);
    assert.equal(verifySignedPreKey(ik, kem, identity.privateKey.sign(spk)), false);
    assert.equal(verifySignedPreKey(ik.subarray(1), spk, identity.privateKey.sign(spk)), false);
  });

  it("libsignal-client's KEM keys are pre-standard Kyber1024 (type 0x08), which we recognise and refuse", () => {
    const kem = ls.KEMKeyPair.generate().getPublicKey().serialize();
    assert.equal(kem[0], 0x08);
    assert.equal(kem.length, 1569);
  });

  it("fingerprints are identical for identical keys and ids", () => {
    for (let i = 0; i < 2; i++) {
      const a = ls.IdentityKeyPair.generate().publicKey;
      const b = ls.IdentityKeyPair.generate().publicKey;
      const aId = utf8(`alice-${i}`);
      const bId = utf8(`bob-${i}`);
      const theirs = ls.Fingerprint.new(5200, 2, ab(aId), a, ab(bId), b);
      const ours = createFingerprint(aId, new Uint8Array(a.serialize()), bId, new Uint8Array(b.serialize()));
      assert.equal(ours.displayable, theirs.displayableFingerprint().toString());
      assert.deepEqual(ours.scannable, new Uint8Array(theirs.scannableFingerprint().toBuffer()));
      const bobs = ls.Fingerprint.new(5200, 2, ab(bId), b, ab(aId), a);
      assert.equal(compareScannable(ours.scannable, new Uint8Array(bobs.scannableFingerprint().toBuffer())), true);
    }
  });

  it("sender keys: libsignal -> us, several messages out of order", async () => {
    const address = ls.ProtocolAddress.new("alice", 1);
    const theirStore = new LsSenderKeyStore();
    const skdm = await ls.SenderKeyDistributionMessage.create(address, DIST, theirStore);
    const ourStore = new InMemorySenderKeyStore();
    const sender = { name: "alice", deviceId: 1 };
    await processSenderKeyDistributionMessage(ourStore, sender, new Uint8Array(skdm.serialize()));
    const messages: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) {
      const ct = await ls.groupEncrypt(address, DIST, theirStore, ab(utf8(`from libsignal ${i}`)));
      assert.equal(ct.type(), ls.CiphertextMessageType.SenderKey);
      messages.push(new Uint8Array(ct.serialize()));
    }
    for (const i of [3, 0, 5, 1, 4, 2]) {
      assert.deepEqual(await groupDecrypt(ourStore, sender, messages[i]!), utf8(`from libsignal ${i}`));
    }
    await assert.rejects(groupDecrypt(ourStore, sender, messages[2]!));
  });

  it("sender keys: us -> libsignal, several messages out of order", async () => {
    const sender = { name: "bob", deviceId: 2 };
    const ourStore = new InMemorySenderKeyStore();
    const skdm = await createSenderKeyDistributionMessage(ourStore, sender, DIST);
    const address = ls.ProtocolAddress.new("bob", 2);
    const theirStore = new LsSenderKeyStore();
    await ls.processSenderKeyDistributionMessage(
      address,
      ls.SenderKeyDistributionMessage.deserialize(ab(skdm)),
      theirStore,
    );
    const messages: Uint8Array[] = [];
    for (let i = 0; i < 6; i++) messages.push(await groupEncrypt(ourStore, sender, DIST, utf8(`from parley ${i}`)));
    for (const i of [5, 2, 0, 4, 1, 3]) {
      assert.deepEqual(
        new Uint8Array(await ls.groupDecrypt(address, theirStore, ab(messages[i]!))),
        utf8(`from parley ${i}`),
      );
    }
  });

  it("SenderKeyMessage and SenderKeyDistributionMessage layouts match libsignal", () => {
    const signer = ls.PrivateKey.generate();
    const lsSkm = ls.SenderKeyMessage._new(3, DIST, 123, 45, ab(Uint8Array.of(1, 2, 3)), signer);
    const bytes = new Uint8Array(lsSkm.serialize());
    const decoded = decodeSenderKeyMessage(bytes);
    assert.deepEqual(decoded.fields.distributionId, uuidToBytes(DIST));
    assert.equal(decoded.fields.chainId, 123);
    assert.equal(decoded.fields.iteration, 45);
    const { body, signature } = senderKeyMessageSignedParts(decoded);
    assert.equal(xeddsaVerify(decodePublicKey(signer.getPublicKey().serialize()), body, signature), true);
    // Same fields + libsignal's signature => byte-identical encoding.
    assert.deepEqual(
      encodeSenderKeyMessage(decoded.fields, () => signature),
      bytes,
    );

    const chainKey = getCrypto().randomBytes(32);
    const lsSkdm = ls.SenderKeyDistributionMessage._new(3, DIST, 7, 9, ab(chainKey), signer.getPublicKey());
    const ours = encodeSenderKeyDistributionMessage({
      distributionId: uuidToBytes(DIST),
      chainId: 7,
      iteration: 9,
      chainKey,
      signingKey: new Uint8Array(signer.getPublicKey().serialize()),
    });
    assert.deepEqual(ours, new Uint8Array(lsSkdm.serialize()));
    assert.equal(decodeSenderKeyDistributionMessage(ours).fields.iteration, 9);
  });

  it("SignalMessage / PreKeySignalMessage encodings are byte-identical to libsignal's constructors", () => {
    const macKey = getCrypto().randomBytes(32);
    const ratchet = ls.PrivateKey.generate().getPublicKey();
    const senderIk = ls.IdentityKeyPair.generate().publicKey;
    const receiverIk = ls.IdentityKeyPair.generate().publicKey;
    for (const [version, pq] of [
      [3, new Uint8Array(0)],
      [4, Uint8Array.of(1, 2, 3, 4)],
      [4, new Uint8Array(0)],
    ] as const) {
      const theirs = ls.SignalMessage._new(
        version,
        ab(macKey),
        ratchet,
        7,
        6,
        ab(utf8("body")),
        senderIk,
        receiverIk,
        ab(pq),
      );
      const ours = encodeSignalMessage(
        version,
        {
          ratchetKey: new Uint8Array(ratchet.serialize()),
          counter: 7,
          previousCounter: 6,
          ciphertext: utf8("body"),
          pqRatchet: pq,
        },
        macKey,
        new Uint8Array(senderIk.serialize()),
        new Uint8Array(receiverIk.serialize()),
      );
      assert.deepEqual(ours, new Uint8Array(theirs.serialize()), `version ${version}`);
      assert.equal(ls.SignalMessage.deserialize(ab(ours)).counter(), 7);

      const preKey = ls.PreKeySignalMessage._new(3, 4242, 17, 18, ratchet, senderIk, theirs);
      const decoded = decodePreKeySignalMessage(new Uint8Array(preKey.serialize()));
      assert.equal(decoded.fields.registrationId, 4242);
      assert.equal(decoded.fields.preKeyId, 17);
      assert.equal(decoded.fields.signedPreKeyId, 18);
      assert.deepEqual(encodePreKeySignalMessage(3, decoded.fields), new Uint8Array(preKey.serialize()));
    }
  });

  it("parses the messages of a real libsignal PQXDH session (Kyber 0x08, SPQR)", async () => {
    const aliceAddress = ls.ProtocolAddress.new("alice", 1);
    const bobAddress = ls.ProtocolAddress.new("bob", 1);
    const aliceIdentity = ls.IdentityKeyPair.generate();
    const bobIdentity = ls.IdentityKeyPair.generate();
    const aliceSessions = new LsSessionStore();
    const bobSessions = new LsSessionStore();
    const aliceIds = new LsIdentityStore(aliceIdentity, 11);
    const bobIds = new LsIdentityStore(bobIdentity, 22);
    const preKeys = new LsPreKeyStore();
    const signedPreKeys = new LsSignedPreKeyStore();
    const kyberPreKeys = new LsKyberPreKeyStore();

    const preKey = ls.PrivateKey.generate();
    await preKeys.savePreKey(31, ls.PreKeyRecord.new(31, preKey.getPublicKey(), preKey));
    const spk = ls.PrivateKey.generate();
    const spkSig = bobIdentity.privateKey.sign(spk.getPublicKey().serialize());
    await signedPreKeys.saveSignedPreKey(
      32,
      ls.SignedPreKeyRecord.new(32, Date.now(), spk.getPublicKey(), spk, spkSig),
    );
    const kem = ls.KEMKeyPair.generate();
    const kemSig = bobIdentity.privateKey.sign(kem.getPublicKey().serialize());
    await kyberPreKeys.saveKyberPreKey(33, ls.KyberPreKeyRecord.new(33, Date.now(), kem, kemSig));

    // The server-side check Parley does on upload, on libsignal-made prekeys.
    const bobIk = new Uint8Array(bobIdentity.publicKey.serialize());
    assert.equal(verifySignedPreKey(bobIk, spk.getPublicKey().serialize(), spkSig), true);
    assert.equal(verifySignedPreKey(bobIk, kem.getPublicKey().serialize(), kemSig), true);

    const bundle = ls.PreKeyBundle.new(
      22,
      1,
      31,
      preKey.getPublicKey(),
      32,
      spk.getPublicKey(),
      spkSig,
      bobIdentity.publicKey,
      33,
      kem.getPublicKey(),
      kemSig,
    );
    await ls.processPreKeyBundle(bundle, bobAddress, aliceAddress, aliceSessions, aliceIds);
    const first = await ls.signalEncrypt(ab(utf8("hi bob")), bobAddress, aliceAddress, aliceSessions, aliceIds);
    assert.equal(first.type(), ls.CiphertextMessageType.PreKey);
    const firstBytes = new Uint8Array(first.serialize());

    const parsed = decodePreKeySignalMessage(firstBytes);
    assert.equal(firstBytes[0], 0x44);
    assert.equal(parsed.version, 4);
    assert.equal(parsed.fields.registrationId, 11);
    assert.equal(parsed.fields.preKeyId, 31);
    assert.equal(parsed.fields.signedPreKeyId, 32);
    assert.equal(parsed.fields.kyberPreKeyId, 33);
    assert.equal(parsed.fields.kyberCiphertext?.length, 1569);
    assert.equal(parsed.fields.kyberCiphertext?.[0], 0x08); // serialized WITH the KEM type byte
    assert.deepEqual(parsed.fields.identityKey, new Uint8Array(aliceIdentity.publicKey.serialize()));
    assert.deepEqual(encodePreKeySignalMessage(4, parsed.fields), firstBytes); // same field order, same bytes
    const inner = decodeSignalMessage(parsed.fields.message);
    assert.equal(inner.version, 4);
    assert.equal(inner.fields.counter, 0);

    const plaintext = await ls.signalDecryptPreKey(
      ls.PreKeySignalMessage.deserialize(ab(firstBytes)),
      aliceAddress,
      bobAddress,
      bobSessions,
      bobIds,
      preKeys,
      signedPreKeys,
      kyberPreKeys,
    );
    assert.deepEqual(new Uint8Array(plaintext), utf8("hi bob"));
    const reply = await ls.signalEncrypt(ab(utf8("hi alice")), aliceAddress, bobAddress, bobSessions, bobIds);
    assert.equal(reply.type(), ls.CiphertextMessageType.Whisper);
    const replyBytes = new Uint8Array(reply.serialize());
    const replyParsed = decodeSignalMessage(replyBytes);
    assert.equal(replyBytes[0], 0x44);
    assert.equal(replyParsed.fields.ratchetKey.length, 33);
    assert.ok(replyParsed.fields.pqRatchet !== undefined && replyParsed.fields.pqRatchet.length > 0);
    // Re-encoding reproduces everything but the MAC (whose key we do not have).
    const reencoded = encodeSignalMessage(4, replyParsed.fields, new Uint8Array(32), bobIk, bobIk);
    assert.deepEqual(reencoded.subarray(0, -8), replyBytes.subarray(0, -8));
    assert.equal(verifySignalMessageMac(replyParsed, new Uint8Array(32), bobIk, bobIk), false);
    assert.equal(toHex(replyBytes.subarray(-8)).length, 16); // 8-byte MAC
  });
});
