"""Reference calculators from a JSON spec: EMT, Lennard-Jones, Morse and a LAMMPS classical potential (no AiiDA).

These are **not DFT**: they give cheap energies, forces and stresses so that tutorials and tests of the
active-learning loop run in seconds. A spec is ``{"name": ..., "parameters": {...}}``;
:func:`validate_calculator_spec` checks it (the runner and the calculation job's port validator both use it) and
:func:`open_calculator` builds the ASE calculator on the computer that runs the job.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shlex
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator, all_changes
from ase.calculators.emt import EMT
from ase.calculators.lammpsrun import LAMMPS
from ase.calculators.lj import LennardJones
from ase.calculators.morse import MorsePotential
from ase.data import chemical_symbols

LAMMPS_MARGIN = 10.0
"""Distance (Å) between a non-periodic frame and the faces of the fixed box LAMMPS computes it in."""
LAMMPS_TEXT = re.compile(r'[A-Za-z0-9_.*/+:\- ]+')
"""What a LAMMPS argument may hold: no newline, ``$``, ``#``, ``&`` or quote, so no second command can follow."""
EXECUTABLE = re.compile(r'[\w./+\-]+')
ELEMENTS = frozenset(chemical_symbols[1:])
CLASSES = {'emt': EMT, 'lennard_jones': LennardJones, 'morse': MorsePotential}


def _positive(name: str, value: Any) -> float:
    """Return ``value`` if it is a positive finite number, else raise ``ValueError`` naming it."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        raise ValueError(f'`{name}` must be a positive number, got {value!r}')
    return float(value)


def _boolean(name: str, value: Any) -> bool:
    """Return ``value`` if it is a boolean, else raise ``ValueError`` naming it."""
    if not isinstance(value, bool):
        raise ValueError(f'`{name}` must be true or false, got {value!r}')
    return value


def _strings(name: str, value: Any, check: Callable[[str, Any], str]) -> list[str]:
    """Return ``value`` if it is a non-empty list whose items pass ``check``, else raise ``ValueError`` naming it."""
    if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
        raise ValueError(f'`{name}` must be a non-empty list, got {value!r}')
    return [check(f'{name}[{index}]', item) for index, item in enumerate(value)]


def _lammps_text(name: str, value: Any) -> str:
    """Return ``value`` if it can be written as LAMMPS arguments, else raise ``ValueError`` naming it."""
    if not isinstance(value, str) or not LAMMPS_TEXT.fullmatch(value):
        raise ValueError(f'`{name}` must be LAMMPS arguments of letters, digits, spaces and `_.*/+:-`, got {value!r}')
    return value


def _absolute_path(name: str, value: Any) -> str:
    """Return ``value`` if it is an absolute path, else raise ``ValueError`` naming it."""
    if not isinstance(value, str) or not os.path.isabs(value) or not value.isprintable():
        raise ValueError(f'`{name}` must be an absolute path on the computer that runs the job, got {value!r}')
    return value


def _element(name: str, value: Any) -> str:
    """Return ``value`` if it is a chemical symbol, else raise ``ValueError`` naming it."""
    if value not in ELEMENTS:
        raise ValueError(f'`{name}` must be a chemical symbol, got {value!r}')
    return value


def _executable(name: str, value: Any) -> str:
    """Return ``value`` if it is a program name or path without spaces, else raise ``ValueError`` naming it."""
    if not isinstance(value, str) or not EXECUTABLE.fullmatch(value):
        raise ValueError(f'`{name}` must be a program name or path of letters, digits and `_./+-`, got {value!r}')
    return value


PARAMETERS: dict[str, dict[str, Callable[[str, Any], Any]]] = {
    'emt': {'asap_cutoff': _boolean},
    'lennard_jones': {'sigma': _positive, 'epsilon': _positive, 'rc': _positive, 'ro': _positive, 'smooth': _boolean},
    'morse': {'epsilon': _positive, 'r0': _positive, 'rho0': _positive, 'rcut1': _positive, 'rcut2': _positive},
    'lammps': {
        'pair_style': _lammps_text,
        'pair_coeff': lambda name, value: _strings(name, value, _lammps_text),
        'potential_files': lambda name, value: _strings(name, value, _absolute_path),
        'specorder': lambda name, value: _strings(name, value, _element),
        'executable': _executable,
    },
}
"""The parameters of each calculator and the function that checks each; ASE's defaults apply to those left out."""
REQUIRED_PARAMETERS = {'lammps': ('pair_style', 'pair_coeff')}


def validate_calculator_spec(spec: Any) -> dict[str, Any]:
    """Return the calculator ``spec`` checked and completed, or raise ``ValueError`` naming what is wrong.

    A LAMMPS spec without ``specorder`` takes the element names of its ``* * <file> <elements>`` pair coefficients,
    which is how LAMMPS maps its atom types. Files are not looked for: they are on the computer that runs the job
    (:func:`build_calculator` checks them there).
    """
    if not isinstance(spec, Mapping):
        raise ValueError(f'the calculator spec must be a mapping with `name` and `parameters`, got {spec!r}')
    unknown = sorted(set(spec) - {'name', 'parameters'})
    if unknown:
        raise ValueError(f'unknown keys {unknown} in the calculator spec: it takes `name` and `parameters`')
    name = spec.get('name')
    if name not in PARAMETERS:
        raise ValueError(f'unknown calculator `name` {name!r}: choose from {sorted(PARAMETERS)}')
    parameters = spec.get('parameters', {})
    if not isinstance(parameters, Mapping):
        raise ValueError(f'`parameters` must be a mapping, got {parameters!r}')
    checks = PARAMETERS[name]
    unknown = sorted(set(parameters) - set(checks))
    if unknown:
        raise ValueError(f'unknown parameters {unknown} for calculator `{name}`: it takes {sorted(checks)}')
    missing = [key for key in REQUIRED_PARAMETERS.get(name, ()) if key not in parameters]
    if missing:
        raise ValueError(f'calculator `{name}` requires the parameters {missing}')
    checked = {key: checks[key](f'parameters.{key}', value) for key, value in parameters.items()}
    _check_cutoff_order(name, checked)
    if name == 'lammps':
        checked['specorder'] = checked.get('specorder') or _pair_coeff_elements(checked['pair_coeff'])
        basenames = [Path(path).name for path in checked.get('potential_files', [])]
        if len(set(basenames)) != len(basenames):
            raise ValueError(f'`parameters.potential_files` has two files of the same name: {basenames}')
    return {'name': name, 'parameters': checked}


def _check_cutoff_order(name: str, parameters: dict[str, Any]) -> None:
    """Raise ``ValueError`` if the smooth cutoff of Lennard-Jones or Morse would start after it ends."""
    if name == 'lennard_jones' and 'ro' in parameters:
        cutoff = parameters.get('rc', 3 * parameters.get('sigma', LennardJones.default_parameters['sigma']))
        if parameters['ro'] >= cutoff:
            raise ValueError(f'`parameters.ro` ({parameters["ro"]}) must be below the cutoff `rc` ({cutoff})')
    if name == 'morse':
        inner = parameters.get('rcut1', MorsePotential.default_parameters['rcut1'])
        outer = parameters.get('rcut2', MorsePotential.default_parameters['rcut2'])
        if inner >= outer:
            raise ValueError(f'`parameters.rcut1` ({inner}) must be below `parameters.rcut2` ({outer})')


def _pair_coeff_elements(pair_coeff: list[str]) -> list[str]:
    """Return the elements named by a ``* * <file> <elements>`` pair coefficient, or raise ``ValueError``."""
    for line in pair_coeff:
        tokens = line.split()
        if tokens[:2] == ['*', '*'] and len(tokens) > 3 and ELEMENTS.issuperset(tokens[3:]):
            return tokens[3:]
    raise ValueError(
        '`parameters.specorder` is required: no `pair_coeff` names the elements of the atom types '
        '(as `* * SiC.tersoff C` does)'
    )


def read_calculator_spec(path: str | Path) -> dict[str, Any]:
    """Return the checked calculator spec of the JSON file ``path``; raise ``ValueError`` or ``OSError``."""
    try:
        spec = json.loads(Path(path).read_text(encoding='utf-8'))
    except json.JSONDecodeError as exception:
        raise ValueError(f'{path}: not valid JSON: {exception}') from None
    return validate_calculator_spec(spec)


def placed_in_lammps_box(atoms: Atoms) -> Atoms:
    """Return a copy of ``atoms`` moved to where the box of ASE's LAMMPS calculator holds them.

    A non-periodic frame gets a box from the origin to twice its largest coordinate, so it is moved to start
    :data:`LAMMPS_MARGIN` from the origin; a partly periodic frame is centred in its cell along its non-periodic
    directions. Energies, forces and stresses do not change under these translations.
    """
    placed = atoms.copy()
    if not atoms.pbc.any():
        placed.positions += LAMMPS_MARGIN - placed.positions.min(axis=0)
    elif not atoms.pbc.all():
        placed.center(axis=tuple(int(axis) for axis in np.flatnonzero(~atoms.pbc)))
    return placed


class ReferenceLammps(LAMMPS):
    """ASE's LAMMPS calculator made safe for many unrelated frames in one long-lived LAMMPS process.

    ASE's calculator keeps the boundary of the first frame for all later ones, puts a molecule centred on the origin
    partly outside its box, and after a LAMMPS error lets the next frame read what the failed run printed. Here each
    frame gets its own boundary (``p`` periodic, ``f`` fixed) and is placed by :func:`placed_in_lammps_box`, a frame
    with an element outside ``specorder`` is refused, and after any error the LAMMPS process is ended so that the next
    frame starts a fresh one; the error LAMMPS printed becomes the exception's message. LAMMPS runs with one OpenMP
    thread and finds the potential files copied into the calculator's folder by name.
    """

    def __init__(self, **kwargs: Any) -> None:
        """Create the calculator; ``executable`` is the path of the LAMMPS binary, the rest goes to ASE."""
        super().__init__(**kwargs)
        self._lammps_error = ''

    def get_lammps_command(self) -> str:
        """Return the command that starts LAMMPS, every part quoted (it is split, never run by a shell)."""
        environment = ['OMP_NUM_THREADS=1', f'LAMMPS_POTENTIALS={self.parameters["tmp_dir"]}']
        command = [shutil.which('env') or '/usr/bin/env', *environment, self.parameters['executable']]
        return f'{shlex.join(command)} {self.parameters["lammps_options"]}'

    def calculate(self, atoms: Atoms | None = None, properties: Any = None, system_changes: Any = all_changes) -> None:
        """Run LAMMPS on ``atoms`` (see the class documentation for what differs from ASE)."""
        Calculator.calculate(self, atoms, properties, system_changes)
        frame_atoms = self.atoms
        missing = sorted(set(frame_atoms.get_chemical_symbols()) - set(self.parameters['specorder']))
        if missing:
            raise ValueError(
                f'the LAMMPS potential has no atom type for {missing}: `specorder` is {self.parameters["specorder"]}'
            )
        self.parameters['boundary'] = ' '.join('fp'[int(periodic)] for periodic in frame_atoms.pbc)
        self.atoms, self.thermo_content, self._lammps_error = placed_in_lammps_box(frame_atoms), [], ''
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings('ignore', message='semi-periodic ASE cell')
                self.run()
        except Exception as exception:
            self._lmp_end()  # a failed LAMMPS may still be printing: the next frame must not read it
            if self._lammps_error:
                raise RuntimeError(f'LAMMPS {self._lammps_error}') from exception
            raise
        finally:
            self.atoms = frame_atoms

    def read_lammps_log(self, fileobj: IO[str]) -> None:
        """Read the output of one run, keeping the error LAMMPS printed for :meth:`calculate` to raise."""
        watcher = _ErrorWatcher(fileobj)
        with contextlib.suppress(RuntimeError):  # ASE raises it here, in its reading thread, where it is lost
            super().read_lammps_log(watcher)
        self._lammps_error = watcher.error


class _ErrorWatcher:
    """Pass the lines of LAMMPS's output on, remembering the last error line (``ERROR: ...``, ``ERROR on proc``)."""

    def __init__(self, fileobj: IO[str]) -> None:
        """Watch ``fileobj``."""
        self._fileobj = fileobj
        self.error = ''

    def readline(self) -> str:
        """Return the next line."""
        line = self._fileobj.readline()
        if line.startswith('ERROR'):
            self.error = line.strip()
        return line


def build_calculator(spec: Mapping[str, Any]) -> Calculator:
    """Return the ASE calculator of a checked ``spec``; raise ``ValueError`` if this computer lacks what it needs."""
    name, parameters = spec['name'], dict(spec['parameters'])
    if name != 'lammps':
        return CLASSES[name](**parameters)
    executable = shutil.which(parameters.pop('executable', 'lmp'))
    if executable is None:
        raise ValueError(
            f'`parameters.executable` {spec["parameters"].get("executable", "lmp")!r} is not a program on this computer'
        )
    files = parameters.pop('potential_files', [])
    missing = [path for path in files if not os.path.isfile(path)]
    if missing:
        raise ValueError(f'`parameters.potential_files` {missing} do not exist on this computer')
    return ReferenceLammps(executable=executable, files=files, **parameters)


@contextlib.contextmanager
def open_calculator(spec: Mapping[str, Any]) -> Iterator[Calculator]:
    """Yield the ASE calculator of a checked ``spec``; a LAMMPS process and its folder are removed afterwards."""
    calculator = build_calculator(spec)
    try:
        yield calculator
    finally:
        if isinstance(calculator, LAMMPS):
            calculator.clean()
