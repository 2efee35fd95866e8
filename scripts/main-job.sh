#!/usr/bin/env bash
# README command 1: set up this machine (idempotent) and run the main job on the embedded default profile.
# Today the main job labels carbon structures with real pw.x; it grows into the full campaign.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/bootstrap.sh"
aiida-trainspot setup --profile "${TRAINSPOT_PROFILE:-trainspot}"
python "$REPO_DIR/examples/label_carbon.py" --profile "${TRAINSPOT_PROFILE:-trainspot}"
