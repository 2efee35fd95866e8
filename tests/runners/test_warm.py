"""Warm starts of the console scripts, for real: a fork server of this environment, ``trainspot-md`` with a tiny MACE.

Each test has its own server (its own ``TRAINSPOT_WARM_DIR``) and stops it at the end.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms

from aiida_trainspot.dataset import DatasetReader, DatasetWriter, frame_from_atoms
from aiida_trainspot.runners import warm
from tests.training.conftest import real_mace_run

SCRIPT = shutil.which('trainspot-md')


@pytest.fixture(scope='module')
def model_path(tmp_path_factory) -> Path:
    """Return the file of a tiny MACE model trained on EMT copper (once per session, shared with the training tests)."""
    return real_mace_run(tmp_path_factory.getbasetemp()) / 'mace.model'


@pytest.fixture
def server(tmp_path):
    """Return the environment of jobs that start warm with a server of their own, and stop that server afterwards."""
    folder = tmp_path / 'server'
    folder.mkdir(mode=0o700)
    environment = {**os.environ, warm.ENABLE_VARIABLE: '1', warm.FOLDER_VARIABLE: str(folder), 'OMP_NUM_THREADS': '1'}
    yield environment
    log = server_log(folder)
    if log.exists():
        pid = int(log.read_text().split()[1].rstrip(':'))
        with pytest.raises(ProcessLookupError):
            for _ in range(50):
                os.kill(pid, signal.SIGTERM)
                time.sleep(0.1)


def server_log(folder: Path) -> Path:
    """Return the log of the server whose socket lies in ``folder``."""
    (log,) = folder.glob('*.log') or [folder / 'missing.log']
    return log


def wait_for_server(environment: dict) -> list[str]:
    """Wait until the server of ``environment`` listens; return its log lines."""
    folder = Path(environment[warm.FOLDER_VARIABLE])
    for _ in range(600):
        if list(folder.glob('*.sock')):
            return server_log(folder).read_text().splitlines()
        time.sleep(0.1)
    raise AssertionError(f'no server started in {folder}')


def md_job(folder: Path, model: Path, steps: int = 40) -> list[str]:
    """Write the inputs of an MD job of a Cu4 cluster into ``folder``; return its command line."""
    folder.mkdir()
    cluster = Atoms('Cu4', positions=[[0, 0, 0], [2.5, 0, 0], [1.25, 2.1, 0], [1.25, 0.7, 2.05]], cell=[12, 12, 12])
    with DatasetWriter(folder / 'structures.h5') as writer:
        writer.add(frame_from_atoms(cluster))
    spec = {'temperature': 300, 'timestep': 2.0, 'steps': steps, 'thermalisation': 0, 'stride': 5, 'seed': 7}
    (folder / 'md.json').write_text(json.dumps(spec))
    (folder / 'models.json').write_text(json.dumps([{'architecture': 'mace', 'path': str(model)}] * 2))
    return [SCRIPT, '--structures', 'structures.h5', '--spec', 'md.json', '--models', 'models.json']


def run_job(command: list[str], folder: Path, environment: dict) -> subprocess.CompletedProcess:
    """Run ``command`` in ``folder`` with ``environment``, its streams in files as a scheduler's job script does."""
    with open(folder / 'out.txt', 'w') as stdout, open(folder / 'err.txt', 'w') as stderr:
        return subprocess.run(command, cwd=folder, env=environment, stdout=stdout, stderr=stderr, check=False)


def positions(folder: Path) -> np.ndarray:
    """Return the positions of every frame the MD job in ``folder`` wrote."""
    with DatasetReader(folder / 'frames.h5') as reader:
        return np.array([frame.positions for frame in reader.iter_frames()])


def test_warm_job_equals_cold_job(model_path, server, tmp_path):
    """The first job starts the server and runs cold, the second runs in a forked child: same frames, same output."""
    first = run_job(md_job(tmp_path / 'cold', model_path), tmp_path / 'cold', server)
    assert first.returncode == 0, (tmp_path / 'cold' / 'err.txt').read_text()
    assert 'modules imported' in wait_for_server(server)[0]

    second = run_job(md_job(tmp_path / 'warm', model_path), tmp_path / 'warm', server)
    assert second.returncode == 0, (tmp_path / 'warm' / 'err.txt').read_text()
    lines = wait_for_server(server)
    assert lines[-1].startswith('trainspot-md: child ') and lines[-1].endswith(str(tmp_path / 'warm'))
    np.testing.assert_array_equal(positions(tmp_path / 'warm'), positions(tmp_path / 'cold'))
    summaries = [(tmp_path / name / 'out.txt').read_text().splitlines()[-1] for name in ('cold', 'warm')]
    assert summaries[1].startswith('8 frames from 1 runs in ') and summaries[0].startswith('8 frames from 1 runs in ')


def test_warm_job_keeps_the_exit_status_and_error(model_path, server, tmp_path):
    """A bad spec exits 2 with the runner's message in the job's stderr, warm as cold."""
    run_job(md_job(tmp_path / 'start', model_path), tmp_path / 'start', server)
    wait_for_server(server)
    command = md_job(tmp_path / 'bad', model_path)
    (tmp_path / 'bad' / 'md.json').write_text(json.dumps({'timestep': -1}))
    assert run_job(command, tmp_path / 'bad', server).returncode == 2
    assert '`timestep` must be a positive number' in (tmp_path / 'bad' / 'err.txt').read_text()
    assert wait_for_server(server)[-1].endswith(str(tmp_path / 'bad'))


def test_an_incomplete_request_leaves_the_server_serving(model_path, server, tmp_path):
    """A client that hangs up before sending its job is skipped; the next job is served warm."""
    run_job(md_job(tmp_path / 'start', model_path), tmp_path / 'start', server)
    wait_for_server(server)
    (path,) = Path(server[warm.FOLDER_VARIABLE]).glob('*.sock')
    for partial in (b'', b'\x00\x00'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.connect(str(path))
            socket.send_fds(client, [partial or b'\x00\x00\x00\x10{"scr'], [0, 1, 2])
    assert run_job(md_job(tmp_path / 'next', model_path), tmp_path / 'next', server).returncode == 0
    lines = wait_for_server(server)
    assert sum(line.startswith('incomplete request') for line in lines) == 2
    assert lines[-1].endswith(str(tmp_path / 'next'))


def test_warm_child_has_the_niceness_and_gets_the_signals_of_the_job(model_path, server, tmp_path):
    """A job run at niceness 10 has its forked child at 10; SIGTERM to the job ends the child (no-status code)."""
    run_job(md_job(tmp_path / 'start', model_path), tmp_path / 'start', server)
    wait_for_server(server)
    folder = tmp_path / 'long'
    command = md_job(folder, model_path, steps=100000)
    with open(folder / 'err.txt', 'w') as stderr:
        niced = ['nice', '-n', '10', *command]
        job = subprocess.Popen(niced, cwd=folder, env=server, stdout=subprocess.DEVNULL, stderr=stderr)
        for _ in range(300):
            lines = wait_for_server(server)
            if lines[-1].endswith(str(folder)):
                break
            time.sleep(0.1)
        child = int(lines[-1].split()[2])
        assert os.getpriority(os.PRIO_PROCESS, child) == os.getpriority(os.PRIO_PROCESS, 0) + 10
        time.sleep(1.0)
        job.send_signal(signal.SIGTERM)
        assert job.wait(timeout=30) == warm.EXIT_NO_STATUS
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)
    assert 'without an exit status' in (folder / 'err.txt').read_text()


def test_changed_module_stops_the_server_and_the_job_runs_cold(model_path, server, tmp_path):
    """After an imported file changes, the server declines the job and stops; the job runs cold and succeeds."""
    run_job(md_job(tmp_path / 'start', model_path), tmp_path / 'start', server)
    wait_for_server(server)
    source = Path(warm.TARGETS['trainspot-md'].split(':')[0].replace('.', '/') + '.py')
    source = Path(__import__('aiida_trainspot').__file__).parent.parent / source
    times = os.stat(source)
    os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns + 1_000_000_000))
    try:
        result = run_job(md_job(tmp_path / 'after', model_path), tmp_path / 'after', server)
    finally:
        os.utime(source, ns=(times.st_atime_ns, times.st_mtime_ns))
    assert result.returncode == 0 and (tmp_path / 'after' / 'frames.h5').exists()
    log = server_log(Path(server[warm.FOLDER_VARIABLE])).read_text()
    assert log.splitlines()[-1] == f'imported files changed ({source}): stopping'


def test_open_folder_turns_warm_start_off(model_path, tmp_path):
    """A socket folder others may enter is refused: the job says so and runs cold."""
    folder = tmp_path / 'open'
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    environment = {**os.environ, warm.ENABLE_VARIABLE: '1', warm.FOLDER_VARIABLE: str(folder)}
    result = run_job(md_job(tmp_path / 'job', model_path), tmp_path / 'job', environment)
    assert result.returncode == 0
    assert 'warm start off' in (tmp_path / 'job' / 'err.txt').read_text()
    assert not list(folder.iterdir())
