#!/usr/bin/env node
// Compile contracts/src/*.sol with the pinned solc-js and write one deterministic JSON
// artifact per deployable contract.
//
//   node contracts/compile.mjs [--out DIR]      (default DIR: contracts/artifacts)
//
// Output is byte-for-byte reproducible (sorted keys, 2-space indent, trailing newline) so
// contracts/check.sh can diff a fresh build against the committed artifacts.

import { createRequire } from "node:module";
import { readFileSync, readdirSync, writeFileSync, mkdirSync, existsSync, unlinkSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const SRC_DIR = join(HERE, "src");
const NODE_MODULES = join(HERE, "node_modules");
const DEFAULT_OUT = join(HERE, "artifacts");

const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: "cancun",
};

function fail(message) {
  process.stderr.write(`compile.mjs: ${message}\n`);
  process.exit(1);
}

function parseArgs(argv) {
  let out = DEFAULT_OUT;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === "--out") {
      if (i + 1 >= argv.length) fail("--out needs a directory");
      out = resolve(argv[++i]);
    } else if (arg.startsWith("--out=")) {
      out = resolve(arg.slice("--out=".length));
    } else if (arg === "-h" || arg === "--help") {
      process.stdout.write("usage: node contracts/compile.mjs [--out DIR]\n");
      process.exit(0);
    } else {
      fail(`unknown argument ${JSON.stringify(arg)} (usage: node contracts/compile.mjs [--out DIR])`);
    }
  }
  return { out };
}

function loadSolc() {
  if (!existsSync(join(NODE_MODULES, "solc"))) {
    fail(`solc is not installed in ${NODE_MODULES}; run: npm --prefix contracts ci`);
  }
  const require = createRequire(join(HERE, "package.json"));
  return require("solc");
}

// Recursively sort object keys (arrays keep their order) for a canonical serialisation.
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value !== null && typeof value === "object") {
    const sorted = {};
    for (const key of Object.keys(value).sort()) sorted[key] = canonical(value[key]);
    return sorted;
  }
  return value;
}

function findImport(path) {
  // Only npm packages are imported by name; everything under src/ is passed in directly.
  if (path.startsWith("@openzeppelin/")) {
    const file = join(NODE_MODULES, path);
    if (existsSync(file)) return { contents: readFileSync(file, "utf8") };
  }
  return { error: `import not found: ${path}` };
}

function main() {
  const { out } = parseArgs(process.argv.slice(2));
  const solc = loadSolc();

  const sourceFiles = readdirSync(SRC_DIR).filter((f) => f.endsWith(".sol")).sort();
  if (sourceFiles.length === 0) fail(`no .sol files in ${SRC_DIR}`);
  const sources = {};
  for (const file of sourceFiles) {
    sources[`src/${file}`] = { content: readFileSync(join(SRC_DIR, file), "utf8") };
  }

  const input = {
    language: "Solidity",
    sources,
    settings: {
      optimizer: SETTINGS.optimizer,
      evmVersion: SETTINGS.evmVersion,
      viaIR: false,
      outputSelection: {
        "*": {
          "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object", "evm.methodIdentifiers", "metadata"],
        },
      },
    },
  };

  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImport }));

  const errors = [];
  for (const diag of output.errors ?? []) {
    const text = (diag.formattedMessage ?? diag.message).trimEnd();
    if (diag.severity === "error") errors.push(text);
    else process.stderr.write(`${text}\n`);
  }
  if (errors.length > 0) {
    fail(`solc ${solc.version()} reported ${errors.length} error(s):\n${errors.join("\n")}`);
  }

  const artifacts = {};
  for (const sourcePath of Object.keys(output.contracts ?? {}).sort()) {
    if (!sourcePath.startsWith("src/")) continue;
    for (const [name, contract] of Object.entries(output.contracts[sourcePath])) {
      const bytecode = contract.evm.bytecode.object;
      if (!bytecode) continue; // abstract contracts and interfaces are not deployable
      if (artifacts[name]) fail(`two deployable contracts named ${name}`);
      const metadata = JSON.parse(contract.metadata);
      const usedSources = {};
      for (const [path, info] of Object.entries(metadata.sources)) {
        usedSources[path] = { keccak256: info.keccak256, license: info.license ?? null };
      }
      artifacts[name] = canonical({
        contractName: name,
        abi: contract.abi,
        bytecode: `0x${bytecode}`,
        deployedBytecode: `0x${contract.evm.deployedBytecode.object}`,
        compiler: { name: "solc-js", version: solc.version() },
        settings: SETTINGS,
        sources: usedSources,
        methodIdentifiers: contract.evm.methodIdentifiers,
      });
    }
  }
  if (Object.keys(artifacts).length === 0) fail("no deployable contracts compiled");

  mkdirSync(out, { recursive: true });
  if (out === DEFAULT_OUT) {
    // Drop artifacts of contracts that no longer exist (only in our own folder).
    for (const file of readdirSync(out)) {
      if (file.endsWith(".json") && !artifacts[file.slice(0, -5)]) unlinkSync(join(out, file));
    }
  }
  for (const name of Object.keys(artifacts).sort()) {
    const file = join(out, `${name}.json`);
    writeFileSync(file, `${JSON.stringify(artifacts[name], null, 2)}\n`);
    process.stdout.write(`wrote ${file}\n`);
  }
}

main();
