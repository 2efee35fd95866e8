"""FHI-aims inputs and outputs in our units and sign convention, as pure functions (no AiiDA).

Inputs: ``control.in`` is the keywords of a parameters mapping, the keywords a labelling run needs (forces, the
stress of periodic cells, a k-point grid from a spacing), then the species block of every element present, taken
verbatim from the species defaults that FHI-aims ships (``species_defaults/defaults_2020/{light,intermediate,tight}/``
with files named ``NN_El_default``); ``geometry.in`` is written by ASE.

Outputs: energy, forces and stress are read by ASE's reader of ``aims.out``; what ASE does not tell, whether the run
finished and whether its SCF cycle converged, is read here from the texts FHI-aims prints.

Units: eV, Å, eV/Å, stress in eV/Å³ with ASE's sign (positive when the cell pulls inwards, tensile; the pressure is
``-trace/3``). FHI-aims prints its stress tensor in this convention already (its ``Pressure:`` line is ``-trace/3``).
"""

from __future__ import annotations

import enum
import io
import math
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import kptdensity2monkhorstpack
from ase.data import atomic_numbers
from ase.io.aims import read_aims_output, write_aims

from .structure_checks import check_structure

BASIS_SETTINGS = ('light', 'intermediate', 'tight')
"""Sub-folders of FHI-aims' ``species_defaults/defaults_2020`` that ``basis`` selects."""

RESERVED_KEYWORDS = frozenset(
    {'species', 'compute_forces', 'compute_analytical_stress', 'compute_numerical_stress', 'k_grid'}
)
"""``control.in`` keywords we write ourselves: species blocks, force and stress requests, the k-point grid."""

REQUIRED_KEYWORDS = ('xc',)
"""``control.in`` keywords FHI-aims cannot run without and that have no default we could choose for the user."""

FINISHED_MARKER = 'Have a nice day.'
"""FHI-aims' last words after a run that went to its end."""

SCF_FAILURE_MARKERS = ('SCF cycle not converged', 'SELF-CONSISTENCY CYCLE DID NOT CONVERGE')
"""What FHI-aims prints when the SCF cycle reaches ``sc_iter_limit``: ``*** scf_solver: SCF cycle not converged.`` as
it stops, or the ``* WARNING! SELF-CONSISTENCY CYCLE DID NOT CONVERGE`` block when ``postprocess_anyway`` lets it go
on. Its ``Self-consistency cycle not yet converged - restarting mixer`` is a retry, not a failure."""

_KEYWORD = re.compile(r'[A-Za-z][A-Za-z0-9_]*')
_VERSION = re.compile(r'FHI-aims version\s*:\s*(\S+)')
_SCF_CYCLES = re.compile(r'\|\s*Number of self-consistency cycles\s*:\s*(\d+)')
_TOTAL_TIME = re.compile(r'\|\s*Total time\s*:\s*\S+\s*s\s+(\d+\.?\d*)\s*s')
_SPECIES_LINE = re.compile(r'^\s*species\s+(\S+)', re.MULTILINE)


def _check_scalar(keyword: str, value: Any) -> str | None:
    """Return why ``value`` cannot be written on the ``control.in`` line of ``keyword``, or ``None``."""
    if isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f'keyword `{keyword}` has the non-finite value {value}'
    if not isinstance(value, str):
        return f'keyword `{keyword}` has a value of type {type(value).__name__}: use a bool, number, string or list'
    if not value.strip() or any(character in value for character in '\n\r'):
        return f'keyword `{keyword}` has an empty or multi-line string value {value!r}'
    return None


def _value_lines(value: Any) -> list[Any]:
    """Return the values of a keyword's lines: one line per inner list of a list of lists, else one line."""
    if isinstance(value, list | tuple) and value and all(isinstance(item, list | tuple) for item in value):
        return list(value)
    return [value]


def check_keywords(keywords: Mapping[str, Any]) -> str | None:
    """Return why ``keywords`` cannot be written as ``control.in`` lines, or ``None``.

    Keywords must be plain identifiers; values are booleans, numbers, single-line strings or lists of these (a list
    of lists writes the keyword once per inner list, as for ``output``).
    """
    for keyword, value in keywords.items():
        if not isinstance(keyword, str) or not _KEYWORD.fullmatch(keyword):
            return f'keyword {keyword!r} is not a plain FHI-aims keyword (letters, digits and underscores)'
        for line in _value_lines(value):
            items = line if isinstance(line, list | tuple) else [line]
            if not items:
                return f'keyword `{keyword}` has an empty list'
            message = next(filter(None, (_check_scalar(keyword, item) for item in items)), None)
            if message:
                return message
    return None


def check_parameters(parameters: Mapping[str, Any]) -> str | None:
    """Return why ``parameters`` are not the ``control.in`` keywords a user may give, or ``None``.

    On top of :func:`check_keywords`: none of :data:`RESERVED_KEYWORDS`, all of :data:`REQUIRED_KEYWORDS`.
    """
    reserved = sorted(RESERVED_KEYWORDS.intersection(parameters))
    if reserved:
        return f'keyword(s) {reserved} are set by the calculation itself: remove them'
    missing = [keyword for keyword in REQUIRED_KEYWORDS if keyword not in parameters]
    if missing:
        return f'keyword(s) {missing} are required by FHI-aims'
    return check_keywords(parameters)


def format_value(value: Any) -> str:
    """Return ``value`` as FHI-aims reads it: ``.true.``/``.false.``, numbers, strings, lists joined by spaces."""
    if isinstance(value, bool):
        return '.true.' if value else '.false.'
    if isinstance(value, list | tuple):
        return ' '.join(format_value(item) for item in value)
    return str(value)


def control_keyword_lines(parameters: Mapping[str, Any]) -> list[str]:
    """Return the ``control.in`` lines of ``parameters``, in their order; call :func:`check_parameters` first."""
    return [
        f'{keyword:<34} {format_value(line)}' for keyword, value in parameters.items() for line in _value_lines(value)
    ]


def labelling_keywords(atoms: Atoms, kpoints_spacing: float | None) -> dict[str, Any]:
    """Return the keywords of a labelling run of ``atoms``: forces always, stress and k-points when periodic.

    The analytical stress is requested for fully periodic cells only (a slab or wire has no stress along its vacuum).
    The k-point grid has ``ceil(|b_i| / kpoints_spacing)`` points along each periodic direction (``b_i`` the
    reciprocal vectors with the 2π, ``kpoints_spacing`` in Å⁻¹) and one along the others; FHI-aims treats any
    periodic structure as periodic in three dimensions, so a vacuum direction gets one k-point.
    """
    keywords: dict[str, Any] = {'compute_forces': True}
    if atoms.pbc.all():
        keywords['compute_analytical_stress'] = True
    if atoms.pbc.any():
        if kpoints_spacing is None or kpoints_spacing <= 0:
            raise ValueError(f'a periodic structure needs a positive k-point spacing, got {kpoints_spacing}')
        grid = kptdensity2monkhorstpack(atoms, kptdensity=1 / kpoints_spacing, even=False)
        keywords['k_grid'] = [int(points) for points in grid]
    return keywords


def check_aims_structure(atoms: Atoms) -> str | None:
    """Return what makes ``atoms`` unfit for FHI-aims, or ``None``.

    This is :func:`check_structure` of the structure FHI-aims computes: periodic in all three directions as soon as
    one is, so the whole cell must have a volume.
    """
    computed = atoms.copy()
    if computed.pbc.any():
        computed.pbc = True
    return check_structure(computed)


def species_filename(symbol: str) -> str:
    """Return the name of the species-defaults file of element ``symbol`` in FHI-aims' layout, e.g. ``06_C_default``."""
    return f'{atomic_numbers[symbol]:02d}_{symbol}_default'


def missing_species(symbols: Iterable[str], filenames: Iterable[str]) -> list[str]:
    """Return the elements among ``symbols`` that have no species-defaults file among ``filenames``, sorted."""
    available = set(filenames)
    return sorted({symbol for symbol in symbols if species_filename(symbol) not in available})


def check_species_block(text: str, symbol: str) -> str | None:
    """Return why ``text`` is not the species block of element ``symbol``, or ``None``."""
    declared = _SPECIES_LINE.findall(text)
    if declared != [symbol]:
        return f'the species file of {symbol} declares species {declared}, expected [{symbol!r}]'
    return None


def read_species_defaults(folder: Path | str, symbols: Iterable[str], basis: str) -> dict[str, str]:
    """Return the species block of each element of ``symbols`` from ``folder/basis/NN_El_default``.

    ``folder`` is laid out as FHI-aims' ``species_defaults/defaults_2020``. Raise ``FileNotFoundError`` naming the
    elements that have no file, ``ValueError`` for an unknown ``basis`` or a file of another element.
    """
    if basis not in BASIS_SETTINGS:
        raise ValueError(f'unknown basis setting {basis!r}: choose from {BASIS_SETTINGS}')
    directory = Path(folder) / basis
    names = [path.name for path in directory.iterdir()] if directory.is_dir() else []
    missing = missing_species(symbols, names)
    if missing:
        raise FileNotFoundError(f'no species defaults for {missing} in {directory}')
    blocks = {symbol: (directory / species_filename(symbol)).read_text() for symbol in dict.fromkeys(symbols)}
    message = next(filter(None, (check_species_block(text, symbol) for symbol, text in blocks.items())), None)
    if message:
        raise ValueError(message)
    return blocks


def control_text(parameters: Mapping[str, Any], species_blocks: Mapping[str, str]) -> str:
    """Return the ``control.in`` text: the keywords of ``parameters``, then the species blocks in their order."""
    message = check_keywords(parameters)
    if message:
        raise ValueError(message)
    lines = ['# FHI-aims control.in written by aiida-trainspot', *control_keyword_lines(parameters), '']
    blocks = [block if block.endswith('\n') else f'{block}\n' for block in species_blocks.values()]
    return '\n'.join(lines) + '\n' + ''.join(blocks)


def geometry_text(atoms: Atoms) -> str:
    """Return the ``geometry.in`` text of ``atoms`` as ASE writes it (lattice vectors when any direction is periodic).

    ASE announces that its FHI-aims I/O moves to a plugin (a ``FutureWarning``); until then this is the writer.
    """
    handle = io.StringIO()
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        write_aims(handle, atoms)
    return handle.getvalue()


class AimsFailure(enum.Enum):
    """Why an ``aims.out`` gives no labels."""

    UNREADABLE = 'unreadable'
    INCOMPLETE = 'incomplete'
    SCF_NOT_CONVERGED = 'scf_not_converged'


@dataclass
class AimsOutput:
    """What an ``aims.out`` says about the last structure it computed, in eV, Å, eV/Å and eV/Å³ (ASE's sign).

    ``energy`` is the electronic free energy, the one the forces are the derivative of. ``atoms`` is the last
    structure (it differs from the input in a relaxation or MD run, ``moves_atoms``). A run with a ``failure`` keeps
    what could be read, but its labels are not to be trusted.
    """

    energy: float | None = None
    forces: np.ndarray | None = None
    stress: np.ndarray | None = None
    atoms: Atoms | None = None
    moves_atoms: bool = False
    scf_iterations: int | None = None
    version: str | None = None
    wall_time: float | None = None
    finished: bool = False
    scf_converged: bool = False
    failure: AimsFailure | None = None
    failure_reason: str = ''


def _last_match(pattern: re.Pattern, text: str) -> str | None:
    """Return the first group of the last match of ``pattern`` in ``text``, or ``None``."""
    matches = pattern.findall(text)
    return matches[-1] if matches else None


def _read_last_structure(text: str) -> Atoms:
    """Return the last structure of ``text`` with its results, as ASE's ``aims-output`` reader gives it.

    Convergence is judged by :func:`parse_aims_output`, not by ASE, so that an unfinished run still gets read.
    """
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        return read_aims_output(io.StringIO(text), index=-1, non_convergence_ok=True)


def _failure(text: str, finished: bool) -> tuple[AimsFailure | None, str]:
    """Return the failure of the run that printed ``text`` and its reason, ``(None, '')`` for a good run."""
    scf_lines = [line.strip() for line in text.splitlines() if any(mark in line for mark in SCF_FAILURE_MARKERS)]
    if scf_lines:
        return AimsFailure.SCF_NOT_CONVERGED, f'the SCF cycle did not converge: {scf_lines[0]!r}'
    if not finished:
        last_line = next((line.strip() for line in reversed(text.splitlines()) if line.strip()), '')
        return AimsFailure.INCOMPLETE, f'the output ends before {FINISHED_MARKER!r}; its last line: {last_line!r}'
    return None, ''


def parse_aims_output(text: str) -> AimsOutput:
    """Return what the FHI-aims standard output ``text`` says; never raise for a bad output, report it.

    Energy, forces, stress and the last structure are ASE's reading; the labels are kept only when the run finished
    (an unfinished output may stop inside an SCF cycle, whose energies ASE would take for the final ones).
    """
    finished = FINISHED_MARKER in text
    failure, reason = _failure(text, finished)
    cycles, wall_time = _last_match(_SCF_CYCLES, text), _last_match(_TOTAL_TIME, text)
    output = AimsOutput(
        version=_last_match(_VERSION, text),
        scf_iterations=int(cycles) if cycles else None,
        wall_time=float(wall_time) if wall_time else None,
        moves_atoms='Geometry relaxation:' in text or 'Complete information for previous time-step:' in text,
        finished=finished,
        scf_converged=finished and failure is not AimsFailure.SCF_NOT_CONVERGED,
        failure=failure,
        failure_reason=reason,
    )
    try:
        atoms = _read_last_structure(text)
    except Exception as exception:  # ASE's reader raises many kinds of errors on a malformed output
        if failure is None or failure is AimsFailure.INCOMPLETE:
            output.failure = AimsFailure.UNREADABLE
            output.failure_reason = f'ASE cannot read the output: {type(exception).__name__}: {exception}'
        return output
    output.atoms = atoms
    if failure is None:
        results = atoms.calc.results
        output.energy = float(results['energy']) if results.get('energy') is not None else None
        output.forces = np.asarray(results['forces'], dtype=float) if results.get('forces') is not None else None
        output.stress = atoms.get_stress(voigt=False) if results.get('stress') is not None else None
    return output
