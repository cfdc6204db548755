// What every `parley` command shares: exit codes, the usage error, output in human or JSON form.
export const EXIT = { OK: 0, FAILURE: 1, USAGE: 2, NOT_FOUND: 3, UNREACHABLE: 4, REFUSED: 5 } as const;

export class CliError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
  }
}

export interface Common {
  profile: string;
  server: string;
  json: boolean;
}

export function out(common: Common, human: string, json: unknown): void {
  process.stdout.write(common.json ? `${JSON.stringify(json)}\n` : `${human}\n`);
}
