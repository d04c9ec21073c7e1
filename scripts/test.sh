#!/usr/bin/env bash
# Set up and test, from nothing: scripts/setup.sh creates .venv at the repository root when it is missing,
# installs the project into it (so that .venv/bin/crmservice exists), the bridge's requirements (through
# requirements-dev.txt) and Azurite from npm; then Firebird 3 and Chromium from Debian, then
# runs ruff, mypy, the import contract and the whole test suite. Any failure, and pytest collecting no test, fails the run.
set -euo pipefail
cd "$(dirname "$0")/.."

# .venv (Python 3.11), the project and requirements-dev.txt in it, Azurite from npm: shared with scripts/demo.sh.
bash scripts/setup.sh
# Firebird 3 for the NET Genium bridge's tests (Debian's package; they start a private server of
# their own with its own config, port and databases, so whether the package's service runs does not matter),
# and Chromium for the status page's browser test (tests/e2e/test_status_page_browser.py drives Debian's
# package through playwright; playwright's own browser download is never used). One apt-get update for both.
MISSING=()
if ! dpkg -s firebird3.0-server >/dev/null 2>&1 || ! command -v isql-fb >/dev/null; then
  MISSING+=(firebird3.0-server firebird3.0-utils)
fi
[ -x /usr/bin/chromium ] || MISSING+=(chromium)
if [ "${#MISSING[@]}" -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${MISSING[@]}" >/dev/null
fi

echo "== ruff"
.venv/bin/ruff check .
echo "== mypy (crm_core, sandbox, function_app)"
.venv/bin/mypy
echo "== import contract (pyproject.toml [tool.importlinter], docs/DESIGN.md section 2)"
.venv/bin/lint-imports --no-cache --no-logo
echo "== pytest"
# Two worker processes (pytest-xdist), each test file on one of them: most tests wait on emulators,
# Azurite or Firebird, so two share the machine's cores well. PYTEST_WORKERS=0 runs in one process.
.venv/bin/python -m pytest -n "${PYTEST_WORKERS:-2}" --dist loadfile "$@"
