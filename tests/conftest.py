"""Shared fixtures: aiida-core's test profile (SQLite, no broker), carbon frames, the pw.x code and pseudos."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from ase.build import bulk, graphene

from aiida_trainspot.dataset import Frame

pytest_plugins = ['aiida.tools.pytest_fixtures']


def frame_of(atoms, **kwargs) -> Frame:
    """Return the unlabelled frame of ``atoms``."""
    return Frame(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc, **kwargs)


@pytest.fixture
def carbon_frames() -> list[Frame]:
    """Return diamond (2 atoms), a rattled and compressed 8-atom diamond cell, and graphene, unlabelled."""
    cubic = bulk('C', 'diamond', a=3.567 * 0.98, cubic=True)
    cubic.rattle(0.05, seed=3)
    return [frame_of(bulk('C', 'diamond', a=3.567)), frame_of(cubic), frame_of(graphene(vacuum=6.0))]


@pytest.fixture
def labelled_frames() -> list[Frame]:
    """Return 12 labelled frames of various sizes, splits and origins, with random labels from a fixed seed."""
    rng = np.random.default_rng(42)
    frames = []
    for index in range(12):
        atoms = bulk('C', 'diamond', a=3.567) * (1, 1, 1 + index % 3)
        atoms.rattle(0.05, seed=index)
        frames.append(
            frame_of(
                atoms,
                energy=float(rng.normal()),
                forces=rng.normal(size=(len(atoms), 3)),
                stress=rng.normal(size=(3, 3)) * 1e-2,
                origin='input' if index < 4 else 'rattle',
                iteration=index // 4,
                split=('train', 'valid', 'test', '')[index % 4],
                info={'index': index},
            )
        )
    return frames


@pytest.fixture(scope='session')
def pw_executable() -> str:
    """Return the path of Debian's pw.x."""
    path = shutil.which('pw.x')
    if path is None:
        pytest.fail('pw.x is missing: run the README test command, which installs quantum-espresso')
    return path


@pytest.fixture
def pw_code(aiida_code_installed, pw_executable):
    """Return an installed pw.x code on localhost, set up as `aiida-trainspot setup` does."""
    from aiida_trainspot.environment.codes import OPENMPI_AS_ROOT

    return aiida_code_installed(
        default_calc_job_plugin='quantumespresso.pw',
        filepath_executable=pw_executable,
        label='pw',
        prepend_text=f'export OMP_NUM_THREADS=1\n{OPENMPI_AS_ROOT}',
        with_mpi=True,
    )


@pytest.fixture
def pseudo_family(aiida_profile):
    """Return the pseudopotential family built from Debian's UPF files."""
    from aiida_trainspot.environment.pseudos import ensure_pseudo_family

    family, _ = ensure_pseudo_family()
    return family


def local_code(aiida_code_installed, executable: str, plugin: str, missing: str, warm: bool = False):
    """Return the program ``executable`` on ``PATH`` as a localhost code of ``plugin`` (one OpenMP thread).

    ``warm``: the code starts warm, as ``aiida-trainspot setup`` sets up the runners and the MACE training.
    """
    from aiida_trainspot.environment.codes import WARM_START

    path = shutil.which(executable)
    assert path is not None, f'`{executable}` is missing: {missing}'
    prepend = '\n'.join(['export OMP_NUM_THREADS=1', *([WARM_START] if warm else [])])
    return aiida_code_installed(default_calc_job_plugin=plugin, filepath_executable=path, prepend_text=prepend)


RUNNER_MISSING = 'run `pip install -e .`: the console script is missing'


@pytest.fixture
def ase_label_code(aiida_code_installed):
    """Return the reference-calculator runner (``trainspot-ase-label``) as a code on localhost."""
    return local_code(aiida_code_installed, 'trainspot-ase-label', 'trainspot.ase_reference', RUNNER_MISSING)


@pytest.fixture
def md_code(aiida_code_installed):
    """Return the MD runner (``trainspot-md``) as a code on localhost."""
    return local_code(aiida_code_installed, 'trainspot-md', 'trainspot.md', RUNNER_MISSING, warm=True)


@pytest.fixture
def evaluate_code(aiida_code_installed):
    """Return the committee-evaluation runner (``trainspot-evaluate``) as a code on localhost."""
    return local_code(aiida_code_installed, 'trainspot-evaluate', 'trainspot.evaluate', RUNNER_MISSING, warm=True)


@pytest.fixture
def mace_train_code(aiida_code_installed):
    """Return ``mace_run_train``, started warm by ``trainspot-mace-train``, as a code on localhost."""
    return local_code(aiida_code_installed, 'trainspot-mace-train', 'trainspot.mace_train', RUNNER_MISSING, warm=True)


@pytest.fixture
def lammps_code(aiida_code_installed):
    """Return Debian's ``lmp`` as a ``lammps.raw`` code on localhost, set up as ``aiida-trainspot setup`` does."""
    return local_code(aiida_code_installed, 'lmp', 'lammps.raw', 'the bootstrap installs the Debian package lammps')
