/** One line of a bench table (also the contract of bench/wire/noise.ts: `runNoiseBench(): Promise<Row[]>`). */
export type Row = Record<string, string | number>;
