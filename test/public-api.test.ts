// The package's surface: `import … from "wanlab"` gives the names the notebooks, the scripts and
// the README use and no more; the rest is behind "wanlab/server", "wanlab/client" and
// "wanlab/internals". Every entry resolves through the package's own name (package.json
// "exports", types included), and the layers the entries sit on only look down.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, test } from "node:test";
import { root } from "./helpers.js";

/** The public entry's values: a name added to src/index.ts must be added here (and documented). */
const publicValues = [
  "CancelledError", "ParamError",
  "compare", "connect", "connectClient",
  "display", "displayConfig", "doctor", "frameStrip", "grid", "inspect", "open", "plot",
  "readServerFile", "resolveParams", "runtimeDir",
];

const subpaths = ["./server", "./client", "./internals"];

/** import() through the package's own name, as node resolves it from inside the package (a
 * specifier tsc does not resolve at build time: dist/ is what it is building). */
const load = (specifier: string): Promise<Record<string, any>> => import(specifier);
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
  main: string; types: string; exports: Record<string, string | { types: string; default: string }>;
};

/** The type names an entry's declaration file exports (`export { a, type B } from …`, `export type { C }`). */
function declaredNames(dts: string): Set<string> {
  const names = new Set<string>();
  for (const m of readFileSync(dts, "utf8").matchAll(/export (?:type )?\{([^}]*)\}/g)) {
    for (const part of m[1]!.split(",")) {
      const words = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/);
      if (words[0]) names.add((words[1] ?? words[0]).trim());
    }
  }
  return names;
}

/** What the user-facing files take from "wanlab": `wan.NAME` and `import { NAME } from "wanlab"`. */
function namesUsedByUsers(): Map<string, string> {
  const files = [
    ...readdirSync(join(root, "notebooks")).filter((f) => f.endsWith(".ipynb") || f.endsWith(".mjs")).map((f) => join(root, "notebooks", f)),
    ...readdirSync(join(root, "scripts")).filter((f) => f.endsWith(".mjs")).map((f) => join(root, "scripts", f)),
    join(root, "scripts", "lib", "wanlab.mjs"),
    join(root, "README.md"),
    ...readdirSync(join(root, "docs")).filter((f) => f.endsWith(".md")).map((f) => join(root, "docs", f)),
  ];
  const used = new Map<string, string>();
  for (const file of files) {
    const text = readFileSync(file, "utf8").replace(/\\"/g, '"');
    for (const m of text.matchAll(/\bwan\.([A-Za-z_]\w*)/g)) used.set(m[1]!, relative(root, file));
    for (const m of text.matchAll(/import\s*\{([^}]*)\}\s*from\s*"wanlab"/g)) {
      for (const part of m[1]!.split(",")) {
        const name = part.trim().replace(/^type\s+/, "").split(/\s+as\s+/)[0]!;
        if (name) used.set(name, relative(root, file));
      }
    }
  }
  return used;
}

/** The compiled modules a module loads, transitively (relative imports only). */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    const js = readFileSync(file, "utf8");
    for (const m of js.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*"(\.[^"]+)"|import\("(\.[^"]+)"\)/g)) {
      visit(resolve(dirname(file), (m[1] ?? m[2])!));
    }
  };
  visit(entry);
  return new Set([...seen].map((f) => relative(join(root, "dist", "src"), f)));
}

describe("the public entry", () => {
  test('`import * as wan from "wanlab"` exports exactly the documented names', async () => {
    const wan = await load("wanlab");
    assert.deepEqual(Object.keys(wan).sort(), [...publicValues].sort());
  });

  test("every name the notebooks, scripts, README and docs use from \"wanlab\" is exported by it (values or types)", async () => {
    const wan = await load("wanlab");
    const types = declaredNames(join(root, pkg.types));
    const used = namesUsedByUsers();
    assert.ok(used.has("open") && used.has("connectClient"), `the scan finds the notebooks' and scripts' names: ${[...used.keys()].join(", ")}`);
    const missing = [...used].filter(([name]) => !(name in wan) && !types.has(name)).map(([name, file]) => `${name} (${file})`);
    assert.deepEqual(missing, []);
  });

  test("main and types point at the public entry; the exports map has the entry and its three subpaths, each with types", () => {
    assert.equal(pkg.main, "./dist/src/index.js");
    assert.equal(pkg.types, "./dist/src/index.d.ts");
    assert.deepEqual(Object.keys(pkg.exports).sort(), [".", ...subpaths, "./package.json"].sort());
    for (const key of [".", ...subpaths]) {
      const target = pkg.exports[key] as { types: string; default: string };
      assert.deepEqual(Object.keys(target), ["types", "default"], `${key}: "types" must come first`);
      assert.ok(existsSync(join(root, target.types)), `${key}: ${target.types} exists`);
      assert.ok(existsSync(join(root, target.default)), `${key}: ${target.default} exists`);
    }
  });
});

describe("the subpaths", () => {
  test('"wanlab/server", "wanlab/client" and "wanlab/internals" resolve through the package\'s own name', async () => {
    const server = await load("wanlab/server");
    assert.equal(typeof server.serve, "function");
    assert.equal(typeof server.runServer, "function");
    assert.equal(typeof server.jobBodySchema, "object");
    const client = await load("wanlab/client");
    assert.equal(typeof client.connect, "function");
    assert.equal(typeof client.ServerError, "function");
    const internals = await load("wanlab/internals");
    assert.equal(typeof internals.openEngine, "function");
    assert.equal(typeof internals.readJournal, "function");
  });

  test('"wanlab/internals" holds every public name as the same object, so tests and tools need one import', async () => {
    const wan = await load("wanlab");
    const internals = await load("wanlab/internals");
    for (const name of publicValues) assert.equal(internals[name], wan[name], name);
    assert.equal(wan.connectClient, (await load("wanlab/client")).connect);
    assert.equal(wan.runtimeDir, (await load("wanlab/server")).runtimeDir);
  });
});

describe("shared types sit below the client, the notebook layer and the engine", () => {
  const dist = join(root, "dist", "src");

  test("the HTTP client does not load the in-process engine (nor the addon)", () => {
    const loaded = closure(join(dist, "client", "index.js"));
    assert.ok(loaded.has("shared/lab.js"), [...loaded].join(", "));
    assert.ok(!loaded.has("engine.js"), `client/index.js loads engine.js: ${[...loaded].join(", ")}`);
    assert.ok(!loaded.has("native.js"), `client/index.js loads native.js: ${[...loaded].join(", ")}`);
  });

  test("the notebook layer does not load the server's schema or app", () => {
    const loaded = new Set([...closure(join(dist, "display", "index.js")), ...closure(join(dist, "lab.js"))]);
    assert.ok(loaded.has("shared/jobs.js") || loaded.has("shared/lab.js"), [...loaded].join(", "));
    for (const server of ["server/schema.js", "server/app.js", "server/index.js", "server/jobs.js"])
      assert.ok(!loaded.has(server), `the notebook layer loads ${server}: ${[...loaded].join(", ")}`);
  });
});

describe("test seams", () => {
  test("production code reads no test setting from the environment (tests inject them: test/serve-launcher.ts)", () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const e of readdirSync(dir, { withFileTypes: true })) {
        const p = join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (e.name.endsWith(".ts") && /WANLAB_TEST_/.test(readFileSync(p, "utf8"))) offenders.push(relative(root, p));
      }
    };
    walk(join(root, "src"));
    assert.deepEqual(offenders, []);
  });

});
