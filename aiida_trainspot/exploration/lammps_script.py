"""The LAMMPS inputs of the ``lammps`` MD driver: atom types, pair style, data file and script (pure, no AiiDA).

Everything that ties atom types to elements comes from ONE ordered species list: type ``k`` (from 1) is
``species[k - 1]``, its mass, its ``pair_coeff`` entry and, when the trajectory is read back, its element. The script
runs the MD spec of :mod:`aiida_trainspot.runners.md_spec` in LAMMPS ``metal`` units:

- velocities drawn at ``temperature`` (seed ``seed + 1``, as LAMMPS refuses 0), without net momentum (and without
  angular momentum for a structure periodic in no direction);
- ``nvt``: ``fix nve`` + ``fix langevin`` (damping ``1/friction``, seed ``seed + 2``); ``npt``: ``fix npt``
  (Nosé-Hoover, ``taut``/``taup``) whose barostat acts on each periodic box dimension alone (``couple none``), never on
  a non-periodic one (a slab periodic in x and y keeps its z length); a structure periodic in no direction runs ``nvt``
  only;
- non-periodic dimensions are shrink-wrapped with a minimum (``m``): atoms are never lost through them; atoms are
  mapped (``atom_modify map yes``, which ``pair_style mace`` requires);
- ``thermalisation`` steps run first and are not dumped; then the step counter restarts from 0 and every ``stride``-th
  production step is dumped to ``frames.dump`` (ids, types, positions, forces) and printed to ``thermo.dat`` (step,
  potential energy, temperature), so there are ``(steps - thermalisation) // stride`` frames.

Pair styles: ``mace`` (``pair_style mace no_domain_decomposition`` with a model converted for LAMMPS), ``metatomic``
(``pair_style metatomic <model> device cpu``, types given as atomic numbers) and classical styles whose coefficients
read ``pair_coeff * * <file> <element of each type>`` (:data:`CLASSICAL_PAIR_STYLES`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from ase import Atoms
from ase.data import atomic_masses, atomic_numbers, chemical_symbols
from ase.io.lammpsdata import write_lammps_data

from ..runners.md_spec import validate_md_spec

__all__ = (
    'CLASSICAL_PAIR_STYLES',
    'DATA_FILENAME',
    'DUMP_FILENAME',
    'ML_PAIR_STYLES',
    'THERMO_FILENAME',
    'PairStyle',
    'atom_types',
    'data_file',
    'driver_spec_error',
    'ensemble_error',
    'lammps_atoms',
    'md_script',
    'pair_lines',
    'pair_style_error',
    'species_error',
)

DATA_FILENAME = 'structure.data'
DUMP_FILENAME = 'frames.dump'
THERMO_FILENAME = 'thermo.dat'
ML_PAIR_STYLES = ('mace', 'metatomic')
CLASSICAL_PAIR_STYLES = (
    'adp',
    'airebo',
    'airebo/morse',
    'bop',
    'eam/alloy',
    'eam/fs',
    'edip',
    'extep',
    'meam/spline',
    'pace',
    'rebo',
    'sw',
    'sw/mod',
    'tersoff',
    'tersoff/mod',
    'tersoff/mod/c',
    'tersoff/zbl',
    'vashishta',
)
"""Classical pair styles whose coefficients are ``pair_coeff * * <one file> <element of each type>``."""
LAMMPS_WORD = re.compile(r'[A-Za-z0-9_.+\-/]+')
"""A file name or pair-style argument: no space, quote, ``$``, ``#`` or ``&``, so no other command can follow."""
VACUUM = 10.0
"""Å between the atoms of a structure periodic in no direction and the faces of its starting box."""
FS_PER_PS = 1000.0
BAR_PER_GPA = 10000.0


@dataclass(frozen=True)
class PairStyle:
    """The interaction: a pair style, the name of its file in the job folder and the arguments of ``pair_style``.

    ``name`` is ``mace``, ``metatomic`` or one of :data:`CLASSICAL_PAIR_STYLES`; ``arguments`` are extra
    ``pair_style`` arguments of a classical style (e.g. ``3.0 1 1`` for ``airebo``); ``device`` is metatomic's.
    """

    name: str
    filename: str
    arguments: str = ''
    device: str = 'cpu'


def pair_style_error(pair: PairStyle) -> str | None:
    """Return a message naming what LAMMPS cannot be given in ``pair``: an unknown style, file name or argument."""
    known = (*ML_PAIR_STYLES, *CLASSICAL_PAIR_STYLES)
    if pair.name not in known:
        return f'unknown pair style {pair.name!r}: the lammps driver runs {list(known)}'
    if pair.name in ML_PAIR_STYLES and pair.arguments:
        return f'pair style `{pair.name}` takes no extra arguments, got {pair.arguments!r}'
    for field, words in (
        ('filename', [pair.filename]),
        ('arguments', pair.arguments.split()),
        ('device', [pair.device]),
    ):
        bad = [word for word in words if not LAMMPS_WORD.fullmatch(word)]
        if bad:
            return f'pair style `{field}` must be words of letters, digits and `_.+-/`, got {bad}'
    return None


def species_error(symbols: Sequence[str], species: Sequence[str]) -> str | None:
    """Return a message if ``species`` is not a list of distinct elements covering every element of ``symbols``."""
    unknown = [symbol for symbol in species if symbol not in chemical_symbols[1:]]
    if not species or unknown or len(set(species)) != len(species):
        return f'the species list must hold distinct chemical symbols, got {list(species)}'
    missing = sorted(set(symbols) - set(species), key=atomic_numbers.__getitem__)
    if missing:
        return f'the structure has species {missing} that the potential does not cover (its species: {list(species)})'
    return None


def ensemble_error(spec: Mapping[str, Any], pbc: Sequence[bool]) -> str | None:
    """Return a message if ``spec`` asks for a pressure or ``npt`` for a structure periodic in no direction."""
    if any(pbc):
        return None
    if spec.get('ensemble') == 'npt':
        return '`ensemble` npt needs a structure periodic in at least one direction: this one is not, use nvt'
    if spec.get('pressure') is not None:
        return '`pressure` is given for a structure periodic in no direction: there is no cell to scale'
    return None


def driver_spec_error(spec: Mapping[str, Any]) -> str | None:
    """Return a message if ``spec`` asks for what only the ``ase`` driver does (an uncertainty stop, a drive)."""
    if spec.get('uncertainty_stop') is not None:
        return '`uncertainty_stop` needs a committee: the lammps driver runs one potential, use the ase driver'
    if spec.get('drive', 'mean') != 'mean':
        return '`drive` chooses a committee member: the lammps driver runs one potential'
    return None


def atom_types(species: Sequence[str]) -> dict[str, int]:
    """Return the LAMMPS atom type of each element of ``species``: its position in the list, from 1."""
    return {symbol: index for index, symbol in enumerate(species, start=1)}


def pair_lines(species: Sequence[str], pair: PairStyle) -> list[str]:
    """Return the ``mass``, ``pair_style`` and ``pair_coeff`` commands of ``species`` (in that order) for ``pair``."""
    masses = [
        f'mass {index} {atomic_masses[atomic_numbers[symbol]]:.6f}  # {symbol}'
        for symbol, index in atom_types(species).items()
    ]
    elements = ' '.join(species)
    if pair.name == 'mace':
        style, coefficients = 'mace no_domain_decomposition', f'* * {pair.filename} {elements}'
    elif pair.name == 'metatomic':
        numbers = ' '.join(str(atomic_numbers[symbol]) for symbol in species)
        style, coefficients = f'metatomic {pair.filename} device {pair.device}', f'* * {numbers}'
    else:
        style, coefficients = f'{pair.name} {pair.arguments}'.strip(), f'* * {pair.filename} {elements}'
    return [*masses, f'pair_style {style}', f'pair_coeff {coefficients}']


def lammps_atoms(atoms: Atoms) -> Atoms:
    """Return a copy of ``atoms`` in a box LAMMPS can start from; raise ``ValueError`` for a singular periodic cell.

    A structure periodic in no direction gets an orthogonal box with :data:`VACUUM` around its atoms; a partly periodic
    one is centred in its cell along its non-periodic directions.
    """
    placed = atoms.copy()
    placed.pbc = atoms.pbc
    if not atoms.pbc.any():
        placed.positions += VACUUM - placed.positions.min(axis=0)
        placed.cell = np.diag(placed.positions.max(axis=0) + VACUUM)
        return placed
    if abs(atoms.cell.volume) < 1e-6:
        raise ValueError(f'the structure is periodic along {atoms.pbc.tolist()} but its cell is singular')
    if not atoms.pbc.all():
        placed.center(axis=tuple(int(axis) for axis in np.flatnonzero(~atoms.pbc)))
    return placed


def data_file(atoms: Atoms, species: Sequence[str]) -> str:
    """Return the LAMMPS data file (``atom_style atomic``, metal units) of ``atoms`` with types from ``species``."""
    message = species_error(atoms.get_chemical_symbols(), species)
    if message:
        raise ValueError(message)
    buffer = io.StringIO()
    write_lammps_data(buffer, lammps_atoms(atoms), specorder=list(species), units='metal', atom_style='atomic')
    return buffer.getvalue()


def _ensemble_lines(spec: Mapping[str, Any], pbc: Sequence[bool]) -> list[str]:
    """Return the integrator and thermostat (and barostat) commands of ``spec``."""
    temperature = f'{spec["temperature"]:.10g}'
    if spec['ensemble'] == 'nvt':
        damp = 1.0 / spec['friction'] / FS_PER_PS
        return [
            'fix integrate all nve',
            f'fix thermostat all langevin {temperature} {temperature} {damp:.10g} {spec["seed"] + 2} zero yes',
        ]
    pressure = f'{(spec["pressure"] or 0.0) * BAR_PER_GPA:.10g}'
    taup = f'{spec["taup"] / FS_PER_PS:.10g}'
    barostat = ' '.join(
        f'{axis} {pressure} {pressure} {taup}' for axis, periodic in zip('xyz', pbc, strict=True) if periodic
    )
    taut = f'{spec["taut"] / FS_PER_PS:.10g}'
    return [f'fix integrate all npt temp {temperature} {temperature} {taut} {barostat} couple none']


def md_script(spec: Mapping[str, Any], pbc: Sequence[bool], species: Sequence[str], pair: PairStyle) -> str:
    """Return the LAMMPS script of the MD ``spec`` for a structure of periodicity ``pbc`` (see the module).

    Raise ``ValueError`` naming what is wrong: a field of the spec, the pair style, the species list, the ensemble for
    ``pbc``, or a field only the ``ase`` driver has.
    """
    spec = validate_md_spec(spec)
    message = (
        pair_style_error(pair) or species_error([], species) or ensemble_error(spec, pbc) or driver_spec_error(spec)
    )
    if message:
        raise ValueError(message)
    stride = spec['stride']
    production = spec['steps'] - spec['thermalisation']
    rotation = 'no' if any(pbc) else 'yes'
    lines = [
        f'# aiida-trainspot MD: {spec["ensemble"]} at {spec["temperature"]:.10g} K, types {" ".join(species)}',
        'units metal',
        'atom_style atomic',
        'atom_modify map yes',
        f'boundary {" ".join("p" if periodic else "m" for periodic in pbc)}',
        f'read_data {DATA_FILENAME}',
        *pair_lines(species, pair),
        'neighbor 2.0 bin',
        'neigh_modify every 1 delay 0 check yes',
        f'timestep {spec["timestep"] / FS_PER_PS:.10g}',
        'thermo_style custom step time temp pe ke etotal press vol',
        f'thermo {stride}',
        f'velocity all create {spec["temperature"]:.10g} {spec["seed"] + 1} dist gaussian mom yes rot {rotation}',
        *_ensemble_lines(spec, pbc),
    ]
    if spec['thermalisation']:
        lines += [f'run {spec["thermalisation"]}', 'reset_timestep 0']
    lines += [
        'variable frame_step equal step',
        'variable frame_energy equal pe',
        'variable frame_temperature equal temp',
        f'fix frames_thermo all print {stride} "${{frame_step}} ${{frame_energy}} ${{frame_temperature}}" '
        f'file {THERMO_FILENAME} screen no title "# step pe temp"',
        f'dump frames all custom {stride} {DUMP_FILENAME} id type x y z fx fy fz',
        'dump_modify frames sort id delay 1 format float %.10g',
        f'run {production}',
    ]
    return '\n'.join(lines) + '\n'
