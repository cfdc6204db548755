// Versions bound into the Noise prologue: a client and server that disagree on
// either fail the handshake instead of misreading each other's bytes.
/** Version of the framing and stanza grammar. */
export const PROTOCOL_VERSION = 1;
/** Version of the token dictionary (codec/dictionary.ts). Bump on any change to the token tables. */
export const DICTIONARY_VERSION = 1;
