#!/usr/bin/env bash
# The shared set-up of scripts/demo.sh and scripts/test.sh, from nothing: creates .venv at the
# repository root when it is missing (Python 3.11), installs the project into it (so that
# .venv/bin/crmservice exists) with the pinned packages of requirements-dev.txt (the product's,
# the sandbox's and the tests'), and Azurite, pinned in package-lock.json, from npm. Safe to run
# again: each step does nothing when it is done already.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x .venv/bin/python ]; then
  python3.11 -m venv .venv 2>/dev/null || python3 -m venv .venv
fi
.venv/bin/python -c 'import sys; assert sys.version_info[:2] == (3, 11), sys.version' \
  || { echo "scripts/setup.sh: .venv must be Python 3.11" >&2; exit 1; }
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt -e .
# Azurite (the storage emulator the sandbox and the tests start), pinned in package-lock.json.
if ! cmp -s package-lock.json node_modules/.installed-package-lock.json 2>/dev/null; then
  npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json node_modules/.installed-package-lock.json
fi
