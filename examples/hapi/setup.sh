#!/usr/bin/env bash
# Installs the hapi example. It depends on the Node verifier kit as `file:../../clients/node`,
# which npm links but does not build: so first the kit's own dependencies and its `dist/`, then
# the example's dependencies. Each step runs only when it is missing or out of date, so this is
# cheap to run before every start (tests/browser/run.sh does).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
kit="$(cd "$here/../../clients/node" && pwd)"

# Installs the locked dependencies of the package in the current directory unless they are there.
locked_install() {
  if [[ ! -f node_modules/.package-lock.json ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "hapi example: npm ci in $(pwd)"
    npm ci --no-audit --no-fund --loglevel=error
  fi
}

cd "$kit"
locked_install
if [[ ! -f dist/index.js ]] || [[ -n "$(find src package.json tsconfig.json -newer dist/index.js -print -quit)" ]]; then
  echo "hapi example: building the verifier kit (clients/node/dist)"
  npm run build --silent
fi

cd "$here"
locked_install
