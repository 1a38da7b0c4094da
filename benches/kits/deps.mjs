// Resolves the Node kit (clients/node/dist, built by `npm run build`) and the packages of
// clients/node/node_modules (`npm ci`) from the benches, which have no node_modules of their own.
// The kit and the bare routes import the same `jose` file, so they share one module instance.
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

const root = new URL("../../clients/node/", import.meta.url);
const require = createRequire(new URL("package.json", root));

export async function dep(name) {
  return import(pathToFileURL(require.resolve(name)).href);
}

export async function kit(sub = "index") {
  return import(new URL(`dist/${sub}.js`, root).href);
}
