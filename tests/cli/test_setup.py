"""`aiida-trainspot setup` in a fresh AiiDA configuration folder: creates everything once, then changes nothing."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.real


def run_setup(aiida_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, 'AIIDA_PATH': str(aiida_path)}
    command = [str(Path(sys.executable).parent / 'aiida-trainspot'), 'setup', '--profile', 'fresh', *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=False)


def code_settings(aiida_path: Path) -> dict[str, tuple[str, str]]:
    """Return the executable and prepend text of every code of the profile ``fresh`` in ``aiida_path``."""
    script = (
        'import json; from aiida import load_profile, orm; load_profile("fresh"); '
        'codes = orm.InstalledCode.collection; '
        'print(json.dumps({c.label: [c.filepath_executable.name, c.prepend_text] for c in codes.all()}))'
    )
    environment = {**os.environ, 'AIIDA_PATH': str(aiida_path)}
    result = subprocess.run([sys.executable, '-c', script], env=environment, capture_output=True, text=True, check=True)
    return {label: tuple(values) for label, values in json.loads(result.stdout.splitlines()[-1]).items()}


def test_setup_is_idempotent(tmp_path):
    first = run_setup(tmp_path)
    assert first.returncode == 0, first.stderr
    created = [line for line in first.stdout.splitlines() if line.startswith('created')]
    assert len(created) == 9, first.stdout  # profile, 7 codes, pseudo family (presto makes the computer)
    assert 'core.sqlite_dos, core.zeromq' in first.stdout
    codes = code_settings(tmp_path)
    warm = {label for label, (_, prepend) in codes.items() if 'export TRAINSPOT_WARM_START=1' in prepend}
    assert warm == {'trainspot-md', 'trainspot-evaluate', 'mace_run_train'}
    assert codes['mace_run_train'][0] == 'trainspot-mace-train'
    assert all('export OMP_NUM_THREADS=1' in prepend for _, prepend in codes.values())
    niced = {label for label, (_, prepend) in codes.items() if 'renice -n 10 -p $$' in prepend}
    assert niced == {'trainspot-md', 'trainspot-evaluate', 'mace_run_train', 'mtt'}
    second = run_setup(tmp_path)
    assert second.returncode == 0, second.stderr
    assert not [line for line in second.stdout.splitlines() if line.startswith('created')], second.stdout
    assert second.stdout.count('exists') == 10


def test_setup_reports_a_missing_pseudo_folder_clearly(tmp_path):
    (tmp_path / 'upf').mkdir()
    result = run_setup(tmp_path, '--pseudo-folder', str(tmp_path / 'upf'))
    assert result.returncode != 0
    assert 'lacks' in result.stderr and 'C.pbe-n-kjpaw_psl.0.1.UPF' in result.stderr
    assert 'Traceback' not in result.stderr


def test_cold_start_and_niceness_0_leave_the_warm_start_and_renice_out(tmp_path):
    result = run_setup(tmp_path, '--cold-start', '--omp-threads', '2', '--niceness', '0')
    assert result.returncode == 0, result.stderr
    codes = code_settings(tmp_path)
    assert not [label for label, (_, prepend) in codes.items() if 'TRAINSPOT_WARM_START' in prepend]
    assert not [label for label, (_, prepend) in codes.items() if 'renice' in prepend]
    assert all('export OMP_NUM_THREADS=2' in prepend for _, prepend in codes.values())
