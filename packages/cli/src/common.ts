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

/** Runs a command and turns its outcome into an exit code and, on failure, one line on stderr. */
export async function runReporting(command: () => Promise<number>): Promise<void> {
  try {
    process.exitCode = await command();
  } catch (err) {
    if (err instanceof CliError) {
      process.stderr.write(`parley: ${err.message}\n`);
      process.exitCode = err.exitCode;
    } else if (
      err instanceof Error &&
      "code" in err &&
      (err as { code: string }).code === "ERR_PARSE_ARGS_UNKNOWN_OPTION"
    ) {
      process.stderr.write(`parley: ${err.message}\n`);
      process.exitCode = EXIT.USAGE;
    } else {
      process.stderr.write(`parley: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exitCode = EXIT.FAILURE;
    }
  }
}
