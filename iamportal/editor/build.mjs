// Bundles main.js into static/editor/policy-editor.js (run: npm ci && npm run build).
//
// One change to what is bundled: style-mod, which holds the editor's styles,
// puts them in a <style> element in a document, which the page's
// Content-Security-Policy refuses; constructed stylesheets (adoptedStyleSheets)
// are allowed, and it already uses them inside shadow roots. This build has it
// use them in documents too, wherever the browser supports them.
import { readFile, writeFile } from "node:fs/promises";
import path from "node:path";
import * as esbuild from "esbuild";

const constructedSheets = {
  name: "style-mod-constructed-sheets",
  setup(build) {
    build.onLoad({ filter: /style-mod[\\/]src[\\/]style-mod\.js$/ }, async (args) => {
      const source = await readFile(args.path, "utf8");
      const patched = source.replace("if (!root.head && root.adoptedStyleSheets", "if (root.adoptedStyleSheets");
      if (patched === source) throw new Error("style-mod changed: review the stylesheet patch");
      return { contents: patched, loader: "js" };
    });
  },
};

const result = await esbuild.build({
  metafile: true,
  entryPoints: ["main.js"],
  bundle: true,
  minify: true,
  format: "iife",
  target: "es2020",
  legalComments: "none",
  outfile: "../../static/editor/policy-editor.js",
  plugins: [constructedSheets],
});

// The licences of what the bundle holds, beside it.
const packages = new Map();
for (const input of Object.keys(result.metafile.inputs)) {
  const match = input.match(/node_modules\/((?:@[^/]+\/)?[^/]+)\//);
  if (match) packages.set(match[1], path.join("node_modules", match[1]));
}
const notices = [];
for (const [name, dir] of [...packages].sort()) {
  const meta = JSON.parse(await readFile(path.join(dir, "package.json"), "utf8"));
  let text = "";
  for (const file of ["LICENSE", "LICENSE.md", "LICENSE.txt", "license"]) {
    try {
      text = await readFile(path.join(dir, file), "utf8");
      break;
    } catch {}
  }
  notices.push(`${name} ${meta.version} (${meta.license})\n\n${text.trim()}\n`);
}
await writeFile(
  "../../static/editor/policy-editor.licenses.txt",
  "The policy editor bundles these packages:\n\n" + notices.join("\n" + "-".repeat(72) + "\n\n"),
);
