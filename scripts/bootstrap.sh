#!/usr/bin/env bash
# Idempotent set-up of this machine for aiida-trainspot (Debian, as root):
# system packages, a virtual environment with the package and its extras, nothing else.
# Sourced by scripts/main-job.sh and scripts/test.sh; safe to run any number of times.
set -euo pipefail

REPO_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TRAINSPOT_VENV="${TRAINSPOT_VENV:-/opt/aiida-trainspot/venv}"
# graphviz: the `dot` binary that `verdi node graph generate` renders with.
APT_PACKAGES=(quantum-espresso quantum-espresso-data libopenblas0-serial lammps openmpi-bin locales graphviz)

log() { printf '[bootstrap] %s\n' "$*"; }

install_system_packages() {
    local missing=()
    for package in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q 'install ok installed' || missing+=("$package")
    done
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then missing+=(python3-venv); fi
    if ((${#missing[@]})); then
        log "installing Debian packages: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
    # PostgreSQL databases for the production profile are created with this locale.
    if ! locale -a 2>/dev/null | grep -qi '^en_US\.utf8$'; then
        sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' /etc/locale.gen && locale-gen >/dev/null
        # A running PostgreSQL only sees locales that existed when it started.
        if command -v pg_lsclusters >/dev/null; then
            pg_lsclusters --no-header 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r version cluster; do
                pg_ctlcluster --skip-systemctl-redirect "$version" "$cluster" restart
            done
        fi
    fi
}

install_python_environment() {
    local stamp_file="$TRAINSPOT_VENV/.trainspot-stamp" stamp
    stamp="$(cat "$REPO_DIR/pyproject.toml" "$REPO_DIR/requirements/constraints.txt" | sha256sum | cut -d' ' -f1)"
    if [[ ! -x "$TRAINSPOT_VENV/bin/python" ]]; then
        log "creating the virtual environment $TRAINSPOT_VENV"
        mkdir -p "$(dirname "$TRAINSPOT_VENV")"
        python3 -m venv "$TRAINSPOT_VENV"
    fi
    local pip=("$TRAINSPOT_VENV/bin/python" -m pip --disable-pip-version-check -q)
    if [[ "$(cat "$stamp_file" 2>/dev/null)" != "$stamp" ]]; then
        log 'installing Python packages (torch 2.13.0 CPU first, so that no CUDA build is pulled)'
        # pip 23 mis-resolves the extra aiida-core[atomic_tools] that aiida-lammps asks for (no pymatgen, or a crash)
        "${pip[@]}" install --upgrade 'pip>=25'
        "${pip[@]}" install 'torch==2.13.0'
        "${pip[@]}" install -c "$REPO_DIR/requirements/constraints.txt" -e "$REPO_DIR[mace,metatrain,docs,dev]"
        echo "$stamp" > "$stamp_file"
    else
        # Dependencies are current: only point the editable install at this checkout.
        "${pip[@]}" install --no-deps -e "$REPO_DIR" >/dev/null
    fi
}

install_system_packages
install_python_environment
export PATH="$TRAINSPOT_VENV/bin:$PATH"
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
log "ready: $(python -c 'import aiida_trainspot, aiida; print(f"aiida-trainspot {aiida_trainspot.__version__}, aiida-core {aiida.__version__}")')"
