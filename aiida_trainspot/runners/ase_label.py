"""``trainspot-ase-label``: label every frame of a dataset file with a reference calculator (not DFT).

Usage::

    trainspot-ase-label --input dataset.h5 --calculator calculator.json --output labelled.h5 [--results results.json]

Each frame gets the energy (eV), the forces (eV/Å) and, when it is periodic in all three directions, the stress
(3×3, eV/Å³, ASE's sign) of the calculator that ``calculator.json`` names (see
:mod:`aiida_trainspot.runners.calculators`). A frame whose calculation fails is written without labels and with the
exception as its ``failure_reason``, and the run goes on. Frames are read and written a block at a time; the output
appears under its name only once it is complete. ``results.json`` holds the counts, the first failures and the wall
time. Exit status: 0 when the output was written, 2 for bad arguments (an output that cannot be written) or a
calculator this computer cannot build, 3 for an unreadable input dataset.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

from ..dataset import (
    DEFAULT_BLOCK_FRAMES,
    CorruptDatasetError,
    DatasetReader,
    DatasetWriter,
    Frame,
    iter_atoms_from_batch,
)
from .calculators import open_calculator, read_calculator_spec

EXIT_BAD_ARGUMENTS = 2
EXIT_UNREADABLE_INPUT = 3
MAX_REPORTED_FAILURES = 100
"""Failures listed one by one in ``results.json``; all are counted, and every failed frame keeps its reason."""


@dataclass
class LabellingResults:
    """What a labelling run did: the counts, the first failures and the wall time."""

    num_frames: int = 0
    num_labelled: int = 0
    num_failed: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    wall_time_seconds: float = 0.0

    def count(self, frame: Frame) -> None:
        """Count ``frame``, the next one written."""
        if frame.failure_reason:
            self.num_failed += 1
            if len(self.failures) < MAX_REPORTED_FAILURES:
                self.failures.append({'frame': self.num_frames, 'reason': frame.failure_reason})
        else:
            self.num_labelled += 1
        self.num_frames += 1


def reference_labels(atoms: Atoms, calculator: Calculator) -> tuple[float, np.ndarray, np.ndarray | None]:
    """Return the energy, forces and (fully periodic frames only) 3×3 stress of ``calculator`` on ``atoms``.

    Raise ``FloatingPointError`` if a value is NaN or infinite, or whatever the calculator raises.
    """
    with np.errstate(all='ignore'):  # a non-finite result is reported below, for this frame only
        energy = float(calculator.get_property('energy', atoms))
        forces = np.array(calculator.get_property('forces', atoms), dtype=np.float64)
        stress = voigt_6_to_full_3x3_stress(calculator.get_property('stress', atoms)) if atoms.pbc.all() else None
    for name, values in (('energy', energy), ('forces', forces), ('stress', stress)):
        if values is not None and not np.isfinite(values).all():
            raise FloatingPointError(f'the calculator returned NaN or infinite {name}')
    return energy, forces, stress


def label_frame(frame: Frame, atoms: Atoms, calculator: Calculator) -> Frame:
    """Return ``frame`` (whose structure ``atoms`` is) with the labels of ``calculator``, or with why it failed."""
    try:
        frame.energy, frame.forces, frame.stress = reference_labels(atoms, calculator)
        frame.failure_reason = ''
    except Exception as exception:  # any failure belongs to this frame: it keeps no labels and the run goes on
        frame.energy = frame.forces = frame.stress = None
        frame.failure_reason = type(exception).__name__ + (f': {exception}' if str(exception) else '')
    return frame


def label_dataset(
    reader: DatasetReader, calculator: Calculator, output: Path, block_frames: int = DEFAULT_BLOCK_FRAMES
) -> LabellingResults:
    """Write every frame of ``reader`` to ``output``, labelled by ``calculator`` or with its failure reason.

    The file is written under a temporary name and renamed when complete, so that ``output`` is never partial.
    """
    results = LabellingResults()
    start = time.perf_counter()
    partial = output.with_name(f'{output.name}.partial')
    try:
        with DatasetWriter(partial, block_frames) as writer:
            for batch in reader.iter_batches(block_frames):
                for frame, atoms in zip(batch.frames(), iter_atoms_from_batch(batch), strict=True):
                    labelled = label_frame(frame, atoms, calculator)
                    writer.add(labelled)
                    results.count(labelled)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    results.wall_time_seconds = round(time.perf_counter() - start, 3)
    return results


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments; ``argparse`` exits with status 2 on bad ones."""
    parser = argparse.ArgumentParser(
        prog='trainspot-ase-label',
        description='Label the frames of a dataset file with a reference calculator (EMT, Lennard-Jones, Morse, '
        'LAMMPS). These are not DFT: they are for tutorials and tests of the active-learning loop.',
    )
    parser.add_argument('--input', type=Path, required=True, help='the dataset file (HDF5) to label')
    parser.add_argument('--calculator', type=Path, required=True, help='the calculator spec (JSON)')
    parser.add_argument('--output', type=Path, required=True, help='the labelled dataset file to write (HDF5)')
    parser.add_argument('--results', type=Path, default=Path('results.json'), help='the summary to write (JSON)')
    parser.add_argument(
        '--block-frames', type=int, default=DEFAULT_BLOCK_FRAMES, help='frames read and written at a time'
    )
    arguments = parser.parse_args(argv)
    if arguments.block_frames < 1:
        parser.error(f'--block-frames must be positive, got {arguments.block_frames}')
    return arguments


def _fail(status: int, message: str) -> int:
    """Print ``message`` to standard error and return ``status``."""
    print(f'trainspot-ase-label: error: {message}', file=sys.stderr)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trainspot-ase-label`` with the arguments ``argv`` (default: the command line); return the exit status."""
    arguments = parse_arguments(argv)
    try:
        spec = read_calculator_spec(arguments.calculator)
    except (OSError, ValueError) as exception:
        return _fail(EXIT_BAD_ARGUMENTS, f'--calculator {arguments.calculator}: {exception}')
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(DatasetReader(arguments.input))
        except CorruptDatasetError as exception:
            return _fail(EXIT_UNREADABLE_INPUT, f'--input {exception}')
        try:
            calculator = stack.enter_context(open_calculator(spec))
        except ValueError as exception:
            return _fail(EXIT_BAD_ARGUMENTS, f'--calculator {arguments.calculator}: {exception}')
        try:
            results = label_dataset(reader, calculator, arguments.output, arguments.block_frames)
        except CorruptDatasetError as exception:
            return _fail(EXIT_UNREADABLE_INPUT, f'--input {exception}')
        except OSError as exception:
            return _fail(EXIT_BAD_ARGUMENTS, f'--output {arguments.output}: {exception}')
    summary = {'calculator': spec['name'], **asdict(results)}
    arguments.results.write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    print(
        f'labelled {results.num_labelled} of {results.num_frames} frames with `{spec["name"]}` '
        f'in {results.wall_time_seconds} s ({results.num_failed} failed)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
