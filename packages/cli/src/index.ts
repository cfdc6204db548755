export { EXIT, formatMessage, main, run } from "./main.ts";
