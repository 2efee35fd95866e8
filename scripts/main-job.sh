#!/usr/bin/env bash
# README command 1: set up this machine (idempotent) and run the main job on the embedded default profile:
# an active-learning campaign on carbon (diamond, graphite, graphene, a C4 cluster) with real pw.x and a committee of
# two tiny MACE models (examples/carbon/campaign.yaml), ending with the path of its report.
set -euo pipefail
REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
source "$REPO_DIR/scripts/bootstrap.sh"
PROFILE="${TRAINSPOT_PROFILE:-trainspot}"
REPORT_DIR="${TRAINSPOT_REPORT_DIR:-$REPO_DIR/campaign-report}"
aiida-trainspot setup --profile "$PROFILE"
aiida-trainspot launch "$REPO_DIR/examples/carbon/campaign.yaml" --profile "$PROFILE" --report-dir "$REPORT_DIR"
