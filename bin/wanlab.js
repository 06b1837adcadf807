#!/usr/bin/env node
// The `wanlab` command. The CLI itself is TypeScript compiled to dist/ by `npm run build`.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

const cli = new URL("../dist/src/cli.js", import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error("wanlab: the package is not built yet; run `npm run build` in " + fileURLToPath(new URL("..", import.meta.url)));
  process.exit(1);
}
const { main } = await import(cli.href);
process.exitCode = await main(process.argv.slice(2));
