#!/usr/bin/env node
// Prints docs/cli.md, the command-line reference, from the option table (src/options/table.ts,
// built to dist/ by `npm run build:ts`): node scripts/docs-cli.mjs > docs/cli.md
// src/options/table.test.ts checks that docs/cli.md equals this output.
import { cliMarkdown } from "../dist/src/options/usage.js";

process.stdout.write(cliMarkdown());
