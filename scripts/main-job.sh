#!/usr/bin/env bash
# README command 1: set up this machine (idempotent) and run the main job on the embedded default profile.
# Today the main job runs the stages that exist (augment, label with real pw.x, train a MACE committee); it grows
# into the full active-learning campaign.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/bootstrap.sh"
aiida-trainspot setup --profile "${TRAINSPOT_PROFILE:-trainspot}"
python "$REPO_DIR/examples/pipeline_carbon.py" --profile "${TRAINSPOT_PROFILE:-trainspot}"
