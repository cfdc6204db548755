/**
 * Handshake patterns (spec §7), written in initiator-relative form: in "es" the first letter is the
 * initiator's key. XXfallback (spec §10.2, Noise Pipes) is Bob-initiated: the party that could not
 * decrypt the IK message becomes the initiator and Alice's ephemeral from that message becomes the
 * responder's pre-message; its "es"/"se" are therefore swapped relative to the Alice-relative spec text.
 */
export type Token = "e" | "s" | "ee" | "es" | "se" | "ss";
export type PatternName = "NN" | "XX" | "IK" | "XXfallback";

export interface HandshakePatternDef {
  readonly initiatorPreMessage: readonly ("e" | "s")[];
  readonly responderPreMessage: readonly ("e" | "s")[];
  /** Messages in order; even indexes are written by the initiator, odd by the responder. */
  readonly messages: readonly (readonly Token[])[];
}

export const PATTERNS: Readonly<Record<PatternName, HandshakePatternDef>> = {
  NN: { initiatorPreMessage: [], responderPreMessage: [], messages: [["e"], ["e", "ee"]] },
  XX: {
    initiatorPreMessage: [],
    responderPreMessage: [],
    messages: [["e"], ["e", "ee", "s", "es"], ["s", "se"]],
  },
  IK: {
    initiatorPreMessage: [],
    responderPreMessage: ["s"],
    messages: [
      ["e", "es", "s", "ss"],
      ["e", "ee", "se"],
    ],
  },
  XXfallback: {
    initiatorPreMessage: [],
    responderPreMessage: ["e"],
    messages: [
      ["e", "ee", "s", "se"],
      ["s", "es"],
    ],
  },
};
