#!/usr/bin/env bash
# Compiles rln.circom to build/rln.r1cs and build/rln.sym with full constraint simplification
# (--O2), using the circom compiler's WebAssembly build from npm (circom2, run by Node.js under
# WASI). Installs the pinned npm packages first (npm ci) when node_modules is missing or older than
# the lockfile.
set -euo pipefail
cd "$(dirname "$0")"

say() { printf '[circuits] %s\n' "$*" >&2; }

if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  say "Node.js and npm are needed to compile the circuit: install them first"
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  say "installing circom2 and circomlib (npm ci)"
  npm ci --no-audit --no-fund
  touch node_modules
fi

mkdir -p build
say "compiling rln.circom"
# --O2 was circom's default before 2.2 and the network circuit was built with it; circom 2.2
# defaults to --O1, which keeps 6,497 linear constraints. circom2 sees the file system through
# WASI preopens of the working directory and its parents, so paths stay relative to here.
node node_modules/circom2/cli.js rln.circom --r1cs --sym -l node_modules -o build --O2
