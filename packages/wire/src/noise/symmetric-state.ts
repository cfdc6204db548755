/** Noise SymmetricState (spec §5.2): chaining key ck, handshake hash h, and a CipherState. */
import { CipherState } from "./cipher-state.ts";
import { concatBytes, HASH_LEN, type NoiseCipherName, type NoiseCryptoSuite } from "./suite.ts";

const EMPTY = new Uint8Array(0);

export class SymmetricState {
  readonly suite: NoiseCryptoSuite;
  readonly cipherName: NoiseCipherName;
  readonly cipherState: CipherState;
  private chainingKey: Uint8Array;
  private hash: Uint8Array;

  /** InitializeSymmetric(protocol_name). */
  constructor(suite: NoiseCryptoSuite, cipherName: NoiseCipherName, protocolName: string) {
    this.suite = suite;
    this.cipherName = cipherName;
    const name = new TextEncoder().encode(protocolName);
    if (name.length <= HASH_LEN) {
      this.hash = new Uint8Array(HASH_LEN);
      this.hash.set(name);
    } else {
      this.hash = suite.sha256(name);
    }
    this.chainingKey = this.hash.slice();
    this.cipherState = new CipherState(suite, cipherName);
  }

  get handshakeHash(): Uint8Array {
    return this.hash.slice();
  }

  mixKey(inputKeyMaterial: Uint8Array): void {
    const [ck, tempKey] = this.suite.hkdf2(this.chainingKey, inputKeyMaterial);
    this.chainingKey = ck;
    this.cipherState.initializeKey(tempKey);
  }

  mixHash(data: Uint8Array): void {
    this.hash = this.suite.sha256(concatBytes(this.hash, data));
  }

  encryptAndHash(plaintext: Uint8Array): Uint8Array {
    const ciphertext = this.cipherState.encryptWithAd(this.hash, plaintext);
    this.mixHash(ciphertext);
    return ciphertext;
  }

  decryptAndHash(ciphertext: Uint8Array): Uint8Array {
    const plaintext = this.cipherState.decryptWithAd(this.hash, ciphertext);
    this.mixHash(ciphertext);
    return plaintext;
  }

  /** Split(): the initiator→responder and responder→initiator CipherStates. */
  split(): [CipherState, CipherState] {
    const [k1, k2] = this.suite.hkdf2(this.chainingKey, EMPTY);
    return [new CipherState(this.suite, this.cipherName, k1), new CipherState(this.suite, this.cipherName, k2)];
  }
}
