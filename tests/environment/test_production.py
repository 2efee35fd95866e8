"""The production set-up on this machine's PostgreSQL and RabbitMQ: profile, daemon, a real pw.x labelling."""

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

pytestmark = pytest.mark.services

SUBMIT = textwrap.dedent(
    """
    import sys
    from aiida import load_profile, orm
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client
    from ase.build import bulk
    from aiida_trainspot.data import PESData
    from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain
    import time

    CUTOFFS = {'ecutwfc': 25.0, 'ecutrho': 200.0}
    profile = load_profile(sys.argv[1])
    client = get_daemon_client()
    client.start_daemon(timeout=60)
    try:
        dataset = PESData.from_ase([bulk('C', 'diamond', a=3.567)]).store()
        node = submit(
            AbInitioLabellingWorkChain,
            dataset=dataset,
            code=orm.load_code('pw@localhost'),
            pseudo_family=orm.Str('trainspot/debian-pbe'),
            overrides=orm.Dict({'kpoints_distance': 0.6, 'pw': {'parameters': {'SYSTEM': CUTOFFS}}}),
        )
        deadline = time.time() + 300
        while not node.is_terminated and time.time() < deadline:
            time.sleep(2)
        labelled = node.outputs.labelled_dataset if node.is_finished_ok else None
        print(node.is_finished_ok, labelled.base.attributes.get('num_labelled') if labelled else node.exit_status)
    finally:
        client.stop_daemon(wait=True, timeout=60)  # a busy machine answers slowly: the default is 5 s
    """
)


def verdi(environment, *arguments):
    command = [str(Path(sys.executable).parent / 'verdi'), *arguments]
    return subprocess.run(command, env=environment, capture_output=True, text=True, check=False)


def test_production_profile_runs_pw_through_the_daemon(tmp_path):
    name = f'trainspot-test-{uuid.uuid4().hex[:8]}'
    environment = {**os.environ, 'AIIDA_PATH': str(tmp_path)}
    setup = [str(Path(sys.executable).parent / 'aiida-trainspot'), 'setup', '--production', '--profile', name]
    try:
        result = subprocess.run(setup, env=environment, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stderr
        assert 'core.psql_dos, core.rabbitmq' in result.stdout
        script = tmp_path / 'submit.py'
        script.write_text(SUBMIT)
        run = subprocess.run(
            [sys.executable, str(script), name], env=environment, capture_output=True, text=True, check=False
        )
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.stdout.split()[-2:] == ['True', '1'], run.stdout
    finally:
        verdi(environment, 'profile', 'delete', '--force', '--delete-data', name)
