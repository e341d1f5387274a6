// Builds the card into the integration: one minified ES module, the file Home Assistant serves.
// The output is committed. `node build.mjs --check` builds in memory and fails when the
// committed file differs (script/test runs it), so the bundle always matches src/.
import { readFile, writeFile } from "node:fs/promises";
import { build } from "esbuild";

const OUTFILE = "../custom_components/esphome_pipeline/frontend/esphome-pipeline-card.js";
const check = process.argv.includes("--check");

const result = await build({
  entryPoints: ["src/esphome-pipeline-card.ts"],
  outfile: OUTFILE,
  bundle: true,
  format: "esm",
  target: "es2021",
  minify: true,
  legalComments: "eof",
  charset: "utf8",
  write: false,
  logLevel: "warning",
});
const built = result.outputFiles[0].contents;

if (check) {
  const committed = await readFile(OUTFILE).catch(() => Buffer.alloc(0));
  if (!Buffer.from(built).equals(committed)) {
    console.error(
      `${OUTFILE} differs from what frontend/src builds: run "npm run build" in frontend/ and commit it.`,
    );
    process.exit(1);
  }
  console.log("The committed card bundle matches frontend/src.");
} else {
  await writeFile(OUTFILE, built);
  console.log(`Built ${OUTFILE} (${built.length} bytes).`);
}
