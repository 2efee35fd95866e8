"""Calcfunctions of the ``lammps`` MD driver: the model file LAMMPS reads, and the frames of a finished run."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from aiida import orm
from aiida.engine import calcfunction

from ...data import PESData, PotentialData
from ...exploration.lammps_output import frames_from_lammps_output
from ...exploration.lammps_script import DUMP_FILENAME, THERMO_FILENAME
from ...runners.md_spec import validate_md_spec
from ...runners.models import METATOMIC_ARCHITECTURES

__all__ = ('frames_from_lammps', 'lammps_model')

CONVERSION_TIMEOUT = 3600
"""Seconds a MACE model's conversion for LAMMPS may take."""


def _mace_lammps_file(potential: PotentialData) -> orm.SinglefileData:
    """Return the MACE model of ``potential`` converted by ``mace.cli.create_lammps_model`` (in its own process)."""
    dtype = potential.base.attributes.get('dtype') or 'float64'
    with tempfile.TemporaryDirectory() as folder, potential.model_path() as source:
        model = Path(folder) / potential.filename
        shutil.copyfile(source, model)
        command = [sys.executable, '-m', 'mace.cli.create_lammps_model', str(model), '--dtype', dtype]
        process = subprocess.run(
            command,
            cwd=folder,
            capture_output=True,
            text=True,
            stdin=subprocess.DEVNULL,
            timeout=CONVERSION_TIMEOUT,
            check=False,
        )
        converted = Path(f'{model}-lammps.pt')
        if process.returncode != 0 or not converted.is_file():
            raise ValueError(f'the MACE model could not be converted for LAMMPS: {process.stderr.strip()[-2000:]}')
        return orm.SinglefileData(converted, filename=converted.name)


@calcfunction
def lammps_model(potential: PotentialData) -> orm.SinglefileData:
    """Return the model file LAMMPS reads for ``potential``.

    A MACE model is converted for ``pair_style mace``; a metatomic model is copied as it is (``pair_style metatomic``).
    """
    if potential.architecture == 'mace':
        return _mace_lammps_file(potential)
    if potential.architecture in METATOMIC_ARCHITECTURES:
        with potential.model_path() as path:
            return orm.SinglefileData(path, filename=potential.filename)
    raise ValueError(f'no LAMMPS pair style for the architecture `{potential.architecture}`')


@calcfunction
def frames_from_lammps(retrieved: orm.FolderData, species: orm.List, parameters: orm.Dict) -> PESData:
    """Return the frames a ``lammps.raw`` run of the ``lammps`` driver dumped, unlabelled, origin ``md``.

    ``retrieved`` is the calculation's output folder (with ``frames.dump`` and ``thermo.dat``), ``species`` the
    species list its script was written with (type ``k`` is ``species[k - 1]``) and ``parameters`` its MD spec. The
    energy and forces LAMMPS computed are kept as the driver's predictions (``driver_energy``, ``driver_forces``).
    """
    names = retrieved.base.repository.list_object_names()
    missing = [name for name in (DUMP_FILENAME, THERMO_FILENAME) if name not in names]
    if missing:
        raise ValueError(f'the LAMMPS run retrieved no {missing}: did it finish?')
    frames = frames_from_lammps_output(
        retrieved.base.repository.get_object_content(DUMP_FILENAME),
        retrieved.base.repository.get_object_content(THERMO_FILENAME),
        species.get_list(),
        validate_md_spec(parameters.get_dict()),
    )
    return PESData.from_frames(frames)
