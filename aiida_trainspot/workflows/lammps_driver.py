"""The ``lammps`` MD driver of exploration: one aiida-lammps ``lammps.raw`` calculation per structure and condition.

:func:`get_lammps_builder` returns the builder of one ``LammpsRawCalculation`` that runs the MD spec from one starting
structure with one potential: a classical potential file (an ``orm.SinglefileData`` plus its pair style, e.g.
``tersoff``) or a trained model (a :class:`~aiida_trainspot.data.PotentialData`: MACE through ``pair_style mace``,
metatrain models through ``pair_style metatomic``). The script and data file are written by
:mod:`aiida_trainspot.exploration.lammps_script` from ONE species list: the potential's species for a trained model,
else ``species`` or the structure's elements by atomic number. After the run, the calcfunction
:func:`~aiida_trainspot.calculations.functions.lammps.frames_from_lammps` turns the retrieved dump into a
:class:`~aiida_trainspot.data.PESData` of unlabelled frames. :func:`lammps_inputs_error` is the check a work chain's
validator calls before anything runs.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from aiida import orm
from aiida.engine import ProcessBuilder
from aiida.plugins import CalculationFactory
from ase import Atoms
from ase.data import atomic_numbers

from ..calculations.functions.lammps import lammps_model
from ..data import PotentialData
from ..exploration.lammps_script import (
    DATA_FILENAME,
    DUMP_FILENAME,
    THERMO_FILENAME,
    PairStyle,
    data_file,
    driver_spec_error,
    ensemble_error,
    md_script,
    pair_style_error,
    species_error,
)
from ..runners.md_spec import md_spec_error, validate_md_spec
from ..runners.models import METATOMIC_ARCHITECTURES

__all__ = ('get_lammps_builder', 'lammps_inputs_error', 'lammps_pair_style', 'lammps_species')

INPUT_FILENAME = 'input.in'
DEFAULT_OPTIONS = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}, 'withmpi': False}


def lammps_pair_style(potential: orm.SinglefileData | PotentialData, pair_style: str | None = None) -> PairStyle:
    """Return the pair style of ``potential``; raise ``ValueError`` naming what does not fit.

    A trained model takes its style from its architecture (``pair_style`` must not be given); a classical potential
    file needs ``pair_style``: the style's name, then any ``pair_style`` arguments (``airebo 3.0 1 1``).
    """
    if isinstance(potential, PotentialData):
        if pair_style is not None:
            raise ValueError(f'`pair_style` {pair_style!r} is only for a potential file: a model has its own')
        if potential.architecture == 'mace':
            return PairStyle('mace', f'{potential.filename}-lammps.pt')
        if potential.architecture not in METATOMIC_ARCHITECTURES:
            raise ValueError(f'no LAMMPS pair style for the architecture `{potential.architecture}` of the model')
        if potential.base.attributes.get('has_extensions'):
            raise ValueError('the metatomic model needs an `extensions` folder, which the lammps driver cannot copy')
        return PairStyle('metatomic', potential.filename)
    if not isinstance(potential, orm.SinglefileData):
        raise ValueError(f'the potential must be a SinglefileData or a PotentialData, got {type(potential).__name__}')
    if not pair_style or not pair_style.split():
        raise ValueError(f'a potential file ({potential.filename}) needs its `pair_style`, e.g. `tersoff`')
    name, *arguments = pair_style.split()
    pair = PairStyle(name, potential.filename, ' '.join(arguments))
    message = pair_style_error(pair)
    if message:
        raise ValueError(message)
    return pair


def lammps_species(
    symbols: Sequence[str], potential: orm.SinglefileData | PotentialData, species: Sequence[str] | None = None
) -> list[str]:
    """Return THE species list of a run: the model's, else ``species``, else the elements of ``symbols`` by number."""
    if isinstance(potential, PotentialData):
        if species is not None and list(species) != potential.species:
            raise ValueError(f'`species` {list(species)} differs from the model species {potential.species}')
        return list(potential.species)
    return list(species) if species is not None else sorted(set(symbols), key=atomic_numbers.__getitem__)


def lammps_inputs_error(
    symbols: Sequence[str],
    pbc: Sequence[bool],
    potential: orm.SinglefileData | PotentialData,
    parameters: Mapping[str, Any],
    pair_style: str | None = None,
    species: Sequence[str] | None = None,
) -> str | None:
    """Return a message naming what keeps one structure (``symbols``, ``pbc``) from running, or ``None``.

    Checked: the MD spec, the pair style, the species the potential covers, a pressure or ``npt`` for a structure
    periodic in no direction, and what only the ``ase`` driver does.
    """
    message = md_spec_error(dict(parameters))
    if message:
        return f'`parameters`: {message}'
    try:
        lammps_pair_style(potential, pair_style)
        run_species = lammps_species(symbols, potential, species)
    except ValueError as exception:
        return str(exception)
    return species_error(symbols, run_species) or ensemble_error(parameters, pbc) or driver_spec_error(parameters)


def _as_atoms(structure: Atoms | orm.StructureData) -> Atoms:
    """Return ``structure`` as ``ase.Atoms``."""
    return structure.get_ase() if isinstance(structure, orm.StructureData) else structure


def _text_file(text: str, filename: str) -> orm.SinglefileData:
    """Return an unstored ``SinglefileData`` holding ``text`` as ``filename``."""
    return orm.SinglefileData(io.BytesIO(text.encode('utf-8')), filename=filename)


def get_lammps_builder(
    code: orm.AbstractCode,
    structure: Atoms | orm.StructureData,
    potential: orm.SinglefileData | PotentialData,
    parameters: Mapping[str, Any] | orm.Dict,
    options: Mapping[str, Any] | None = None,
    pair_style: str | None = None,
    species: Sequence[str] | None = None,
    model_file: orm.SinglefileData | None = None,
) -> ProcessBuilder:
    """Return the builder of one ``lammps.raw`` calculation of the MD ``parameters`` from ``structure``.

    ``options`` are the calculation's metadata options (default: one process, no MPI). A MACE model is converted for
    LAMMPS by the calcfunction ``lammps_model`` (a metatomic model copied as a file), so the provenance graph shows
    where the file LAMMPS read came from; pass its output as ``model_file`` to convert a model once for many runs.
    Raise ``ValueError`` with :func:`lammps_inputs_error`'s message.
    """
    parameters = parameters.get_dict() if isinstance(parameters, orm.Dict) else dict(parameters)
    atoms = _as_atoms(structure)
    message = lammps_inputs_error(atoms.get_chemical_symbols(), atoms.pbc, potential, parameters, pair_style, species)
    if message:
        raise ValueError(message)
    spec = validate_md_spec(parameters)
    pair = lammps_pair_style(potential, pair_style)
    run_species = lammps_species(atoms.get_chemical_symbols(), potential, species)
    if not isinstance(potential, PotentialData):
        potential_file = potential
    else:
        potential_file = model_file if model_file is not None else lammps_model(potential)
        if potential_file.filename != pair.filename:
            raise ValueError(
                f'`model_file` {potential_file.filename} is not the LAMMPS file {pair.filename} of the model'
            )

    builder = CalculationFactory('lammps.raw').get_builder()
    builder.code = code
    builder.script = _text_file(md_script(spec, atoms.pbc.tolist(), run_species, pair), INPUT_FILENAME)
    builder.files = {'structure': _text_file(data_file(atoms, run_species), DATA_FILENAME), 'potential': potential_file}
    builder.filenames = orm.Dict({'structure': DATA_FILENAME, 'potential': pair.filename})
    builder.settings = orm.Dict({'additional_retrieve_list': [DUMP_FILENAME, THERMO_FILENAME]})
    builder.metadata.options = {**DEFAULT_OPTIONS, **(options or {})}
    builder.metadata.description = (
        f'LAMMPS {spec["ensemble"]} at {spec["temperature"]:g} K ({pair.name}, types {" ".join(run_species)})'
    )
    return builder
