// Parley against @signalapp/libsignal-client 0.103.0 in the same process.
// How far 1:1 sessions get, step by step (see docs/signal.md):
//  1. ML-KEM-1024 (0x0a) prekeys: libsignal 0.103 rejects them ("bad KEM key type").
//  2. Kyber1024 (0x08) prekeys: the PQXDH handshake agrees byte for byte.
//  3. Messages: libsignal 0.103 requires SPQR (the sparse post-quantum ratchet);
//     Parley does not implement it, so no message decrypts in either direction.

import assert from "node:assert/strict";
import { it } from "node:test";
import * as S from "@signalapp/libsignal-client";
import { toHex } from "../src/crypto/bytes.ts";
import { decodePublicKey } from "../src/curve/index.ts";
import { KEM_TYPE_KYBER1024 } from "../src/keys/kem.ts";
import { decodePreKeySignalMessage, decodeSignalMessage } from "../src/proto/messages.ts";
import { decodeProto } from "../src/proto/protobuf.ts";
import { decryptMessage, encryptMessage, processPreKeyBundle } from "../src/session/cipher.ts";
import { initializeBobSession } from "../src/x3dh/index.ts";
import { describeEachProvider, makeDevice, text } from "./fixtures/sessions/helpers.ts";
import {
  LibsignalDevice,
  libsignalTypeOf,
  parleyTypeOf,
  toLibsignalBundle,
} from "./fixtures/sessions/libsignal-device.ts";

describeEachProvider("interop with libsignal-client 0.103", () => {
  it("libsignal rejects ML-KEM-1024 (0x0a) prekeys", async () => {
    const bob = await makeDevice("bob");
    const bundle = bob.bundle();
    assert.equal(bundle.kyberPreKey!.publicKey[0], 0x0a);
    assert.throws(() => toLibsignalBundle({ ...bundle, kyberPreKey: bundle.kyberPreKey! }), /bad KEM key type/);
  });

  it("PQXDH with Kyber1024: libsignal (initiator) and Parley (responder) derive the same chain key", async () => {
    const bob = await makeDevice("bob", { kemType: KEM_TYPE_KYBER1024 });
    const alice = new LibsignalDevice("alice");
    const bobAddr = S.ProtocolAddress.new("bob", 1);
    const bundle = bob.bundle();
    await alice.processBundle(bobAddr, toLibsignalBundle({ ...bundle, kyberPreKey: bundle.kyberPreKey! }));
    const first = await alice.encrypt(bobAddr, text("hello parley"));
    assert.equal(first.type, S.CiphertextMessageType.PreKey);

    // libsignal's view: its receiving chain for Bob's signed prekey is the raw PQXDH output chain key.
    const record = decodeProto(alice.sessions.records.get("bob.1")!, RECORD);
    const session = decodeProto(record.current!, SESSION);
    assert.equal(session.version, 4);
    const receiver = decodeProto(session.receiverChain!, CHAIN);
    assert.deepEqual(receiver.ratchetKey, bundle.signedPreKey.publicKey);
    const libsignalChainKey = decodeProto(receiver.chainKey!, CHAIN_KEY).key!;

    // Parley's view, from the PreKeySignalMessage libsignal sent.
    const message = decodePreKeySignalMessage(first.body);
    assert.equal(message.fields.kyberCiphertext![0], 0x08);
    const signed = (await bob.stores.signedPreKeys.getSignedPreKey(bundle.signedPreKey.id))!;
    const state = initializeBobSession({
      ourIdentity: await bob.stores.identity.getIdentityKeyPair(),
      ourSignedPreKey: signed.keyPair,
      ourOneTimePreKey: (await bob.stores.preKeys.getPreKey(message.fields.preKeyId!))!.keyPair,
      ourRatchetKey: signed.keyPair,
      ourKyberPreKey: (await bob.stores.kyberPreKeys.getKyberPreKey(message.fields.kyberPreKeyId!))!.keyPair,
      theirIdentityKey: message.fields.identityKey,
      theirBaseKey: decodePublicKey(message.fields.baseKey),
      theirKyberCiphertext: message.fields.kyberCiphertext,
    });
    assert.equal(toHex(state.senderChain!.chainKey.key), toHex(libsignalChainKey));
  });

  it("full sessions stop at SPQR: libsignal 0.103 requires the sparse post-quantum ratchet", async () => {
    // Parley -> libsignal: libsignal's SPQR state demands version >= V1 and
    // rejects a message without a pq_ratchet field ("Minimum version").
    const alice = await makeDevice("alice");
    const bob = new LibsignalDevice("bob");
    const bobAddress = { name: "bob", deviceId: 1 };
    await processPreKeyBundle(bobAddress, await bob.newBundle(), alice.stores);
    const first = await encryptMessage(bobAddress, text("hi libsignal"), alice.stores);
    assert.equal(first.body[0], 0x44);
    await assert.rejects(bob.decrypt(S.ProtocolAddress.new("alice", 1), libsignalTypeOf(first.type), first.body));

    // libsignal -> Parley: the handshake agrees (test above) but libsignal's message
    // keys are salted with the SPQR key, so Parley's MAC check fails, typed.
    const parleyBob = await makeDevice("bob2", { kemType: KEM_TYPE_KYBER1024 });
    const lsAlice = new LibsignalDevice("alice2");
    const bob2 = S.ProtocolAddress.new("bob2", 1);
    const bundle = parleyBob.bundle();
    await lsAlice.processBundle(bob2, toLibsignalBundle({ ...bundle, kyberPreKey: bundle.kyberPreKey! }));
    const m = await lsAlice.encrypt(bob2, text("hello"));
    const inner = decodeSignalMessage(decodePreKeySignalMessage(m.body).fields.message);
    assert.ok(inner.fields.pqRatchet && inner.fields.pqRatchet.length > 0, "libsignal sends an SPQR message");
    await assert.rejects(
      decryptMessage({ name: "alice2", deviceId: 1 }, parleyTypeOf(m.type), m.body, parleyBob.stores),
      {
        code: "BAD_MAC",
      },
    );
    // The failure left nothing behind: no session, prekeys intact.
    assert.equal(await parleyBob.stores.sessions.loadSession({ name: "alice2", deviceId: 1 }), undefined);
    assert.equal(parleyBob.stores.preKeys.size, 3);
  });

  it("identity keys and XEdDSA prekey signatures cross-verify", async () => {
    const bob = await makeDevice("bob", { kemType: KEM_TYPE_KYBER1024 });
    const bundle = bob.bundle();
    const identity = S.PublicKey.deserialize(Uint8Array.from(bundle.identityKey));
    assert.ok(
      identity.verify(Uint8Array.from(bundle.signedPreKey.publicKey), Uint8Array.from(bundle.signedPreKey.signature)),
    );
    assert.ok(
      identity.verify(Uint8Array.from(bundle.kyberPreKey!.publicKey), Uint8Array.from(bundle.kyberPreKey!.signature)),
    );
    const ls = new LibsignalDevice("carol");
    const parts = await ls.newBundle();
    const alice = await makeDevice("alice");
    // processPreKeyBundle verifies libsignal's signatures (it would throw INVALID_SIGNATURE otherwise).
    await processPreKeyBundle({ name: "carol", deviceId: 1 }, parts, alice.stores);
  });
});

const RECORD = { current: { field: 1, type: "bytes" } } as const;
const SESSION = {
  version: { field: 1, type: "uint32" },
  receiverChain: { field: 7, type: "bytes" },
} as const;
const CHAIN = { ratchetKey: { field: 1, type: "bytes" }, chainKey: { field: 3, type: "bytes" } } as const;
const CHAIN_KEY = { index: { field: 1, type: "uint32" }, key: { field: 2, type: "bytes" } } as const;
