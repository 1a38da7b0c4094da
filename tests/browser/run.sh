#!/usr/bin/env bash
# Browser tests of authd and the SPA client (examples/spa) in Debian's headless Chromium, and of
# the SPA calling the hapi example (examples/hapi) on a third origin.
# Installs what they need (Debian's chromium, playwright-core via npm ci: never a Playwright
# browser download; the hapi example and the Node verifier kit it links, built), builds the
# release binary unless it is fresh, runs the tests.
# Screenshots and authd logs land in target/browser-artifacts/.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "browser: installing Debian's chromium"
  ok=""
  for attempt in 1 2 3 4 5 6 7 8 9 10; do
    # The dpkg lock may be held by another install: wait and try again.
    if { apt-get update -qq || true; } && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; then
      ok=1; break
    fi
    echo "browser: apt-get install chromium failed (attempt $attempt), retrying"; sleep 15
  done
  [[ -n "$ok" ]] || { echo "browser: could not install chromium" >&2; exit 1; }
fi

command -v node >/dev/null || { echo "browser: node is missing (apt-get install nodejs npm)" >&2; exit 1; }
# The tests run in tests/browser: a relative AUTHD_BIN is relative to where run.sh was started.
if [[ -n "${AUTHD_BIN:-}" ]]; then AUTHD_BIN="$(realpath "$AUTHD_BIN")"; export AUTHD_BIN; fi
cd "$here"
# Never let playwright try to download a browser of its own.
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
if [[ ! -d node_modules/playwright-core ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
# hapi.test.mjs runs examples/hapi: its dependencies, and clients/node's, with the kit's dist/
# built (npm does not build a file: dependency). Each step only when missing or out of date.
bash "$root/examples/hapi/setup.sh"

if [[ -z "${AUTHD_BIN:-}" ]]; then
  # Cargo decides whether the binary is fresh (a no-op when it is): a stale one would test
  # another server than the one in the tree.
  echo "browser: building the release binary (if stale)"
  (cd "$root" && cargo build --release --bin authd)
fi

rm -rf "$root/target/browser-artifacts"
mkdir -p "$root/target/browser-artifacts"
echo "browser: running the tests (artifacts in target/browser-artifacts/)"
node --test --test-concurrency=1 --test-reporter=spec "$here"/*.test.mjs
