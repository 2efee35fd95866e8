"""A campaign on the production profile survives daemon crashes; AiiDA's provenance tools work on it afterwards.

A small carbon campaign (real pw.x, a committee of two tiny MACE models, ASE MD) is submitted to the daemon of a
PostgreSQL + RabbitMQ profile. Twice the circus arbiter, the daemon worker and the stats process are killed with
SIGKILL (a hard crash: nothing is checkpointed on the way down) and the daemon is started again: when the first
labels are done and the first committee's training jobs run, and when a pw.x job of the second labelling runs.
Everything asserted is read from the provenance of the finished campaign: it ends on its stopping criterion, no label
is lost and no pw.x run is repeated. Then ``verdi process report``, ``verdi node graph generate`` and an archive
exported and imported into a second (SQLite) profile work on it. About 10 minutes on 2 cores.

Every step that needs the profiles runs in a subprocess with its own AIIDA_PATH (:mod:`campaign_daemon_steps`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.services

BIN = Path(sys.executable).parent
STEPS = Path(__file__).parent / 'campaign_daemon_steps.py'
EXAMPLES = Path(__file__).parents[2] / 'examples' / 'carbon'
DEADLINE = 1800
"""Seconds for the campaign to reach the kill, and again to finish after it: generous for a loaded 2-core machine."""

CAMPAIGN = {
    'protocol': 'fast',
    'structures': ['diamond.xyz', 'graphene.xyz'],
    'codes': {
        'dft': 'pw@localhost',
        'training': 'mace_run_train@localhost',
        'md': 'trainspot-md@localhost',
        'evaluate': 'trainspot-evaluate@localhost',
    },
    'pseudo_family': 'trainspot/debian-pbe',
    'overrides': {
        # a force threshold every explored frame exceeds: the selection takes the cap, so the loop labels again
        'active_learning': {'max_iterations': 1, 'max_selected': 2, 'thresholds': {'forces': 1e-6}, 'seed': 3},
        'augmentation': {
            **{
                name: {'enabled': False}
                for name in ('supercell', 'slabs', 'clusters', 'isolated_atoms', 'substitution')
            },
            'rattle_strain': {'parameters': {'n_configs': 2}},
        },
        'labelling': {
            'overrides': {
                'kpoints_distance': 0.6,
                'pw': {'parameters': {'SYSTEM': {'ecutwfc': 25.0, 'ecutrho': 200.0}}},
            }
        },
        'training': {'mace_hyperparameters': {'max_num_epochs': 4}},
        'exploration': {'temperatures': [500.0], 'parameters': {'steps': 20, 'thermalisation': 4, 'stride': 8}},
    },
}


class Profiles:
    """The commands of the test, each in a subprocess with the temporary AIIDA_PATH."""

    def __init__(self, aiida_path: Path) -> None:
        """Run everything with the AiiDA configuration folder ``aiida_path``."""
        self.environment = {**os.environ, 'AIIDA_PATH': str(aiida_path), 'OMP_NUM_THREADS': '1'}
        self.environment['TRAINSPOT_TEST_DEADLINE'] = str(DEADLINE)

    def run(self, *command: str, timeout: float = 600) -> subprocess.CompletedProcess:
        """Run ``command`` and return what it did."""
        return subprocess.run(
            command, env=self.environment, capture_output=True, text=True, check=False, timeout=timeout
        )

    def verdi(self, profile: str, *arguments: str) -> subprocess.CompletedProcess:
        """Run ``verdi --profile PROFILE ARGUMENTS``."""
        return self.run(str(BIN / 'verdi'), '--profile', profile, *arguments)

    def step(self, step: str, profile: str, *arguments: str) -> dict:
        """Run a step of :mod:`campaign_daemon_steps` and return the JSON it printed."""
        result = self.run(sys.executable, str(STEPS), step, profile, *arguments, timeout=DEADLINE + 600)
        assert result.returncode == 0, f'{step}: {result.stderr[-4000:]}'
        return json.loads(result.stdout.strip().splitlines()[-1])

    def clean_up(self, profiles: tuple[str, ...], campaign: int | None) -> None:
        """Kill the campaign if it still runs, stop the daemon and delete the profiles, whatever failed before."""
        self.run(sys.executable, str(STEPS), 'stop', profiles[0], *([str(campaign)] if campaign else []))
        for profile in profiles:
            self.run(str(BIN / 'verdi'), 'profile', 'delete', '--force', '--delete-data', profile)


def write_campaign(folder: Path) -> Path:
    """Write the campaign file and its structures (primitive diamond and graphene of the carbon example)."""
    for name in CAMPAIGN['structures']:
        shutil.copy(EXAMPLES / name, folder / name)
    path = folder / 'campaign.yaml'
    path.write_text(yaml.safe_dump(CAMPAIGN))
    return path


def assert_survived(crashes: list[dict], facts: dict) -> None:
    """Assert that the kills hit a running campaign at the chosen moments, and that it finished as planned."""
    for crashed in crashes:
        assert 'error' not in crashed, crashed
        assert crashed['killed'] and crashed['restarted']['workers'], crashed
        assert not set(crashed['killed']) & set(crashed['restarted']['workers']), 'new worker processes'
        assert crashed['at_kill']['campaign_state'] in ('waiting', 'running'), crashed['at_kill']
    during_training, during_labelling = (crashed['at_kill'] for crashed in crashes)
    assert during_training['finished_pw'] >= 1 and during_training['training_jobs'], during_training
    assert during_labelling['trained'] and during_labelling['pw_jobs'], during_labelling
    assert facts['ok'], (facts['exit_status'], facts['exit_message'])
    assert facts['summary']['stop_reason'] == 'max_iterations'
    assert facts['num_members'] == 2
    assert facts['mace_trainings'] == 4, 'two committees of two members, each member trained once'


def assert_no_label_lost(facts: dict) -> None:
    """Assert that the final dataset holds every frame every labelling child labelled, and every pw.x label."""
    labelling = {entry['link']: entry for entry in facts['labelling']}
    assert set(labelling) == {'initial_labelling', 'labelling_0'}, labelling
    assert all(entry['ok'] for entry in labelling.values()), labelling
    assert sum(entry['labelled'] for entry in labelling.values()) == facts['dataset_size']
    pw = facts['pw']
    assert facts['dataset_energies'] == pytest.approx(pw['energies'], rel=1e-12), 'every pw.x energy, once'
    assert pw['calcs_ok'] == pw['calcs'] == facts['dataset_size']
    assert pw['cutoffs'] == [[25.0, 200.0]], 'the labelling overrides reach pw.x'
    assert labelling['labelling_0']['frames'] == 2


def assert_no_pw_repeated(facts: dict) -> None:
    """Assert that every frame went to pw.x once: one PwCalculation per PwBaseWorkChain, no input twice."""
    pw = facts['pw']
    assert pw['base_calls'] == [1] * len(pw['base_calls']), pw['base_calls']
    frames = sum(entry['frames'] for entry in facts['labelling'])
    assert len(pw['base_calls']) == frames == sum(entry['pw_base'] for entry in facts['labelling'])
    assert pw['calcs'] == pw['structure_uuids'] == pw['geometries'] == frames
    for entry in facts['labelling']:  # a labelling step run again would make a frame's structure twice
        assert entry['structures_made'] == entry['frames'], entry


def assert_provenance_tools(profiles: Profiles, profile: str, pk: int, tmp_path: Path) -> None:
    """Assert that the process report and the provenance graph of the campaign can be had."""
    report = profiles.verdi(profile, 'process', 'report', str(pk))
    assert report.returncode == 0, report.stderr
    assert re.search(r'the campaign stops after iteration 1: max_iterations', report.stdout), report.stdout[-3000:]
    graph = tmp_path / 'campaign.svg'
    generated = profiles.verdi(profile, 'node', 'graph', 'generate', '-f', 'svg', '-O', str(graph), str(pk))
    assert generated.returncode == 0, generated.stderr
    svg = graph.read_text()
    assert '<svg' in svg and 'TrainsPotWorkChain' in svg and 'PwCalculation' in svg


def assert_archive_round_trip(profiles: Profiles, profile: str, other: str, facts: dict, tmp_path: Path) -> None:
    """Export the campaign, import it into ``other`` (SQLite), and read it back there."""
    archive = tmp_path / 'campaign.aiida'
    created = profiles.verdi(profile, 'archive', 'create', str(archive), '-N', facts['uuid'])
    assert created.returncode == 0, created.stderr
    presto = profiles.run(
        str(BIN / 'verdi'), 'presto', '--profile-name', other, '--non-interactive', '--use-zeromq', timeout=300
    )
    assert presto.returncode == 0, presto.stderr
    imported = profiles.verdi(other, 'archive', 'import', str(archive))
    assert imported.returncode == 0, imported.stderr
    read = profiles.step('readback', other, facts['uuid'])
    assert read['ok'] and read['process_type'] == 'aiida.workflows:trainspot.trainspot'
    assert read['summary'] == facts['summary']
    assert read['dataset_size'] == facts['dataset_size']
    assert read['dataset_checksum'] == facts['dataset_checksum'] and read['dataset_digest'] == facts['dataset_digest']


def test_campaign_survives_a_daemon_crash(tmp_path):
    name = f'trainspot-daemon-{uuid.uuid4().hex[:8]}'
    other = f'{name}-import'
    profiles = Profiles(tmp_path / 'aiida')
    pk = None
    try:
        setup = profiles.run(str(BIN / 'aiida-trainspot'), 'setup', '--production', '--profile', name)
        assert setup.returncode == 0, setup.stderr
        profiles.step('start', name)
        launched = profiles.run(
            str(BIN / 'aiida-trainspot'), 'launch', str(write_campaign(tmp_path)), '--daemon', '--profile', name
        )
        assert launched.returncode == 0, launched.stderr
        pk = int(re.search(r'submitted campaign (\d+)', launched.stdout).group(1))

        crashes = [profiles.step('crash', name, str(pk), when) for when in ('training', 'labelling')]
        finished = profiles.step('finish', name, str(pk))
        assert finished['state'] == 'finished', (finished, crashes)
        facts = profiles.step('facts', name, str(pk))
        print(json.dumps({'crashes': crashes, 'facts': facts}, indent=1))  # shown with -s
        assert_survived(crashes, facts)
        assert_no_label_lost(facts)
        assert_no_pw_repeated(facts)

        assert_provenance_tools(profiles, name, pk, tmp_path)
        assert_archive_round_trip(profiles, name, other, facts, tmp_path)
    finally:
        profiles.clean_up((name, other), pk)
