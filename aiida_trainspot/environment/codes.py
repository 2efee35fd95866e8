"""The localhost computer and the codes a campaign runs on it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from aiida.common.exceptions import NotExistent
from aiida.orm import Computer, InstalledCode, load_code, load_computer

OPENMPI_AS_ROOT = 'export OMPI_ALLOW_RUN_AS_ROOT=1\nexport OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1'
WARM_START = 'export TRAINSPOT_WARM_START=1'
"""Lets a runner start warm, from a fork server with torch and MACE imported (:mod:`aiida_trainspot.runners.warm`)."""
NICENESS = 'renice -n {niceness} -p $$ > /dev/null'
"""Lowers the priority of a job script and what it runs, so that a DFT job on the same cores comes first."""


@dataclass(frozen=True)
class CodeSpec:
    """A code to set up: label, executable, plugin, whether it runs through MPI, starts warm, is machine learning."""

    label: str
    executable: str
    plugin: str
    with_mpi: bool = False
    description: str = ''
    warm: bool = False
    machine_learning: bool = False


def default_code_specs(bin_folder: Path) -> list[CodeSpec]:
    """Return the codes of a campaign: ``pw.x`` and ``lmp`` from Debian, the trainers from the package's environment."""
    return [
        CodeSpec('pw', shutil.which('pw.x') or '/usr/bin/pw.x', 'quantumespresso.pw', True, 'Quantum ESPRESSO pw.x'),
        CodeSpec(
            'mace_run_train',
            str(bin_folder / 'trainspot-mace-train'),
            'trainspot.mace_train',
            False,
            'MACE training (`mace_run_train`, started warm on this machine)',
            warm=True,
            machine_learning=True,
        ),
        CodeSpec(
            'mtt', str(bin_folder / 'mtt'), 'trainspot.metatrain', False, 'metatrain (mtt train)', machine_learning=True
        ),
        CodeSpec(
            'trainspot-ase-label',
            str(bin_folder / 'trainspot-ase-label'),
            'trainspot.ase_reference',
            False,
            'ASE reference calculators (not DFT)',
        ),
        CodeSpec(
            'trainspot-md',
            str(bin_folder / 'trainspot-md'),
            'trainspot.md',
            False,
            'MD with trained models',
            warm=True,
            machine_learning=True,
        ),
        CodeSpec(
            'trainspot-evaluate',
            str(bin_folder / 'trainspot-evaluate'),
            'trainspot.evaluate',
            False,
            'committee evaluation (MACE, metatomic)',
            warm=True,
            machine_learning=True,
        ),
        CodeSpec('lammps', shutil.which('lmp') or '/usr/bin/lmp', 'lammps.raw', False, 'LAMMPS (Debian `lmp`)'),
    ]


def ensure_localhost(label: str = 'localhost', workdir: Path | None = None) -> tuple[Computer, bool]:
    """Return the local computer ``label`` (direct scheduler, local transport) and whether it was created now.

    An existing computer (``verdi presto`` makes ``localhost``) is kept, except that it gets ``use_login_shell=False``
    unless that was set before: every scheduler poll and submission runs a shell through the transport and blocks
    AiiDA's event loop meanwhile, and a login shell reads the profile scripts each time (0.3-0.5 s on the test machine
    against 0.02 s), which held up every process.
    """
    try:
        computer, created = load_computer(label), False
    except NotExistent:
        computer = Computer(
            label=label,
            hostname='localhost',
            description='This machine, through the direct scheduler',
            transport_type='core.local',
            scheduler_type='core.direct',
            workdir=str(workdir or Path.home() / '.aiida' / 'scratch'),
        ).store()
        computer.configure(safe_interval=0)
        computer.set_minimum_job_poll_interval(1)
        computer.set_default_mpiprocs_per_machine(1)
        created = True
    if computer.transport_type == 'core.local' and 'use_login_shell' not in computer.get_configuration():
        computer.configure(use_login_shell=False)
    return computer, created


def ensure_code(
    spec: CodeSpec, computer: Computer, omp_threads: int = 1, warm_start: bool = True, niceness: int = 0
) -> tuple[InstalledCode, bool]:
    """Return the code of ``spec`` on ``computer`` and whether it was created now; an existing one is kept as is.

    The prepend text sets ``OMP_NUM_THREADS`` (oversubscribed threads slow training tenfold), lets OpenMPI run as
    root, which it refuses by default, for the runners that can (``spec.warm``) when ``warm_start``, lets them start
    warm, and for machine-learning codes, when ``niceness`` > 0, lowers their priority by that much, so that MD and
    training fill the cores DFT leaves free instead of slowing it down.
    """
    try:
        return load_code(f'{spec.label}@{computer.label}'), False
    except NotExistent:
        pass
    if not os.access(spec.executable, os.X_OK):
        raise NotExistent(f'the executable of code `{spec.label}` is missing: {spec.executable}')
    warm = [WARM_START] if spec.warm and warm_start else []
    nice = [NICENESS.format(niceness=niceness)] if spec.machine_learning and niceness > 0 else []
    code = InstalledCode(
        computer=computer,
        filepath_executable=spec.executable,
        label=spec.label,
        description=spec.description,
        default_calc_job_plugin=spec.plugin,
        prepend_text='\n'.join([f'export OMP_NUM_THREADS={omp_threads}', OPENMPI_AS_ROOT, *warm, *nice]),
        with_mpi=spec.with_mpi,
    )
    return code.store(), True
