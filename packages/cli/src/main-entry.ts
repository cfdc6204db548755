// Entry point: `parley serve` loads only the server; every other command loads the client SDK.
const argv = process.argv.slice(2);
if (argv[0] === "serve") {
  const [{ serve }, { runReporting }] = await Promise.all([import("./serve.ts"), import("./common.ts")]);
  await runReporting(() => serve(argv.slice(1)));
} else {
  const { run } = await import("./main.ts");
  await run(argv);
}
