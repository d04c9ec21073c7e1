#!/usr/bin/env bash
# The first command of README.md: sets everything up from nothing (scripts/setup.sh: .venv, the
# Python packages, Azurite from npm; needs Python 3.11 and Node 20), then runs `crmservice demo`:
# a scripted day of mail and calendar changes on the whole local service, what became of each mail
# and why, a summary, and the status page until Ctrl+C. Arguments go to `crmservice demo`
# (`bash scripts/demo.sh --once` exits after the summary; `--help` lists the rest).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== setting up (.venv, Python packages, Azurite); the first time takes a few minutes"
bash scripts/setup.sh
exec .venv/bin/crmservice demo "$@"
