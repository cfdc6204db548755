// How a registration's verification code reaches the person registering.
// Pluggable (SMS gateway, e-mail, ...); the default writes the code to the
// server log, which is what a self-hosting admin can relay by hand.
import type { Logger } from "pino";

export interface Verifier {
  /** Sends `code` to whoever controls `name` (a username or phone number). */
  sendCode(name: string, code: string): Promise<void>;
}

export class LogVerifier implements Verifier {
  constructor(private readonly log: Logger) {}

  async sendCode(name: string, code: string): Promise<void> {
    this.log.info({ event: "verification-code", name, code }, `verification code for ${name}: ${code}`);
  }
}
