"""`aiida-trainspot setup` in a fresh AiiDA configuration folder: creates everything once, then changes nothing."""

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


def test_setup_is_idempotent(tmp_path):
    first = run_setup(tmp_path)
    assert first.returncode == 0, first.stderr
    created = [line for line in first.stdout.splitlines() if line.startswith('created')]
    assert len(created) == 9, first.stdout  # profile, 7 codes, pseudo family (presto makes the computer)
    assert 'core.sqlite_dos, core.zeromq' in first.stdout
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
