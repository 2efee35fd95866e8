"""Frames from what the ``lammps`` MD driver's script wrote: ``frames.dump`` and ``thermo.dat`` (pure, no AiiDA).

Each dumped step becomes an unlabelled :class:`~aiida_trainspot.dataset.Frame` of origin ``md``: its elements come
back from the atom types through the same species list the script was written with, its positions and cell are
LAMMPS's (LAMMPS orientation: ``a`` along x, ``b`` in the xy plane), a structure periodic in no direction gets no
cell. The energy and forces LAMMPS computed are the *driver's predictions*, kept as the extra columns
``driver_energy`` (eV) and ``driver_forces`` (eV/Å), never as labels. ``info`` holds ``run`` (0: one structure per
job), ``step`` (counted from the start, thermalisation included), ``time_fs`` and ``temperature``, as the ``ase``
driver writes them.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ase.io.lammpsrun import read_lammps_dump_text

from ..dataset import Frame
from ..runners.md_spec import validate_md_spec

__all__ = ('frames_from_lammps_output', 'read_thermo')


def read_thermo(text: str) -> dict[int, tuple[float, float]]:
    """Return ``{step: (potential energy, temperature)}`` of the ``thermo.dat`` text; raise ``ValueError`` if bad."""
    rows = np.loadtxt(io.StringIO(text), comments='#', ndmin=2)
    if rows.size and rows.shape[1] != 3:
        raise ValueError(f'thermo.dat must have 3 columns (step pe temp), got {rows.shape[1]}')
    return {int(step): (float(energy), float(temperature)) for step, energy, temperature in rows}


def frames_from_lammps_output(dump: str, thermo: str, species: Sequence[str], spec: Mapping[str, Any]) -> list[Frame]:
    """Return the frames of the ``dump`` text, with the ``thermo`` values of their steps; ``spec`` is the MD spec.

    Raise ``ValueError`` if the spec is invalid, or if the dump names an atom type outside ``species`` or a step that
    ``thermo.dat`` lacks.
    """
    spec = validate_md_spec(spec)
    if not dump.strip():
        return []
    try:
        images = read_lammps_dump_text(io.StringIO(dump), index=slice(None), specorder=list(species), units='metal')
    except IndexError:
        raise ValueError(f'the dump has an atom type beyond the {len(species)} species {list(species)}') from None
    values = read_thermo(thermo)
    frames = []
    for atoms in images:
        production_step = atoms.info['timestep']
        if production_step not in values:
            raise ValueError(f'thermo.dat has no line for the dumped step {production_step}')
        energy, temperature = values[production_step]
        step = spec['thermalisation'] + production_step
        periodic = atoms.pbc.any()
        frames.append(
            Frame(
                numbers=atoms.numbers.copy(),
                positions=atoms.positions.copy(),
                cell=atoms.cell.array.copy() if periodic else np.zeros((3, 3)),
                pbc=atoms.pbc.copy(),
                origin='md',
                iteration=spec['iteration'],
                info={'run': 0, 'step': step, 'time_fs': step * spec['timestep'], 'temperature': temperature},
                frame_arrays={'driver_energy': np.array(energy)},
                atom_arrays={'driver_forces': atoms.calc.get_forces().copy()},
            )
        )
    return frames
