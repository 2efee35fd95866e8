#!/usr/bin/env bash
# README command 2: set up this machine (idempotent) and run the whole test suite, lint and the docs build.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/bootstrap.sh"
cd "$REPO_DIR"

echo '[test] ruff'
ruff check aiida_trainspot tests benchmarks examples scripts docs
ruff format --check aiida_trainspot tests benchmarks examples scripts docs

echo '[test] pytest (kernels, AiiDA layer, real programs, services)'
python -m pytest --cov --cov-report=term -p no:cacheprovider "$@"

echo '[test] docs (warnings are errors)'
python -m sphinx -W --keep-going -q -b html docs/source "${TMPDIR:-/tmp}/aiida-trainspot-docs"
