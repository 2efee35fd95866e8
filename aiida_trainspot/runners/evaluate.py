"""``trainspot-evaluate``: the predictions of every member of a committee on a dataset, and their disagreement.

Usage::

    trainspot-evaluate --input dataset.h5 --models models.json --output evaluated.h5 [--results results.json]

``models.json`` is a JSON list of model specs (see :mod:`aiida_trainspot.runners.models`), at least two. The output
holds the input frames, labels untouched, plus the committee columns: per frame ``committee_energy`` (M,) eV and
``committee_stress`` (M, 3, 3) eV/Å³ (NaN for frames not periodic in three directions), per atom ``committee_forces``
(M, 3) eV/Å, and the metrics of :mod:`aiida_trainspot.uncertainty.metrics` (``energy_std_per_atom``,
``force_disagreement``, ``force_mean_deviation``, ``stress_std``). Frames are read, predicted and written a block at a
time; the output appears under its name only once complete.

MACE members are evaluated on batches of frames: the graphs (neighbour lists) of a batch are built once and shared by
every member with the same cutoff and elements, which is most of the cost of a small model, and the members are
evaluated at the same time, torch's threads split between them (:mod:`.committee_batch`). Other models go through
their ASE calculator, one frame at a time.

``results.json`` holds the counts, the mean metrics and the wall time, or, when the run failed, ``error`` (``model``
or ``prediction``), the ``member`` and the ``reason``. Exit status: 0 when the output was written, 2 for bad
arguments, 3 for an unreadable input dataset, 4 for a model that cannot be loaded, 5 for a prediction that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.calculators.calculator import Calculator
from ase.stress import voigt_6_to_full_3x3_stress

from ..dataset import DEFAULT_BLOCK_FRAMES, CorruptDatasetError, DatasetReader, DatasetWriter, iter_atoms_from_batch
from ..dataset.batch import FrameBatch
from ..uncertainty.metrics import METRIC_NAMES, committee_metrics
from .committee_batch import attempt, member_pool, run_members
from .models import load_calculator, validate_model_spec

EXIT_BAD_ARGUMENTS = 2
EXIT_UNREADABLE_INPUT = 3
EXIT_MODEL_LOAD_FAILED = 4
EXIT_PREDICTION_FAILED = 5
DEFAULT_BATCH_FRAMES = 32
"""Frames a MACE member evaluates in one forward pass."""


class MemberError(Exception):
    """A committee member that could not be loaded or could not predict; ``member`` is its index."""

    def __init__(self, member: int, reason: str) -> None:
        """Record the ``member`` index and the ``reason``."""
        super().__init__(f'member {member}: {reason}')
        self.member = member
        self.reason = reason


@dataclass
class Predictions:
    """The predictions of M members on a block of F frames with N atoms in all."""

    energies: np.ndarray  # (M, F) eV
    forces: np.ndarray  # (M, N, 3) eV/Å
    stresses: np.ndarray  # (M, F, 3, 3) eV/Å³, NaN where the frame is not periodic in three directions


@dataclass
class EvaluationResults:
    """What an evaluation run did: counts, metric sums (for the means) and the wall time."""

    num_frames: int = 0
    num_atoms: int = 0
    num_members: int = 0
    num_frames_with_stress: int = 0
    batched_members: list[int] = field(default_factory=list)
    sums: dict[str, float] = field(default_factory=lambda: dict.fromkeys(METRIC_NAMES, 0.0))
    max_force_disagreement: float = 0.0
    wall_time_seconds: float = 0.0

    def count(self, natoms: np.ndarray, metrics: dict[str, np.ndarray]) -> None:
        """Count a block of frames with ``natoms`` atoms and their ``metrics``."""
        self.num_frames += len(natoms)
        self.num_atoms += int(natoms.sum())
        self.num_frames_with_stress += int(np.isfinite(metrics['stress_std']).sum())
        for name in METRIC_NAMES:
            self.sums[name] += float(np.nansum(metrics[name]))
        if len(natoms):
            self.max_force_disagreement = max(self.max_force_disagreement, float(metrics['force_disagreement'].max()))

    def summary(self) -> dict[str, Any]:
        """Return the JSON summary: counts, mean of every metric (``None`` without frames to average) and wall time."""
        counts = {name: self.num_frames for name in METRIC_NAMES} | {'stress_std': self.num_frames_with_stress}
        means = {f'mean_{name}': self.sums[name] / counts[name] if counts[name] else None for name in METRIC_NAMES}
        return {
            'num_frames': self.num_frames,
            'num_atoms': self.num_atoms,
            'num_members': self.num_members,
            'num_frames_with_stress': self.num_frames_with_stress,
            'batched_members': self.batched_members,
            **means,
            'max_force_disagreement': self.max_force_disagreement,
            'wall_time_seconds': self.wall_time_seconds,
        }


def is_batchable(calculator: Calculator) -> bool:
    """Return whether ``calculator`` is a plain single-model MACE calculator whose model can take a batch of frames."""
    return (
        type(calculator).__name__ == 'MACECalculator'
        and getattr(calculator, 'num_models', 0) == 1
        and not getattr(calculator, 'use_compile', False)
        and getattr(calculator, 'model_type', None) == 'MACE'
    )


def mace_graphs(calculator: Calculator, structures: Sequence[Atoms]) -> Any:
    """Return the batched MACE graphs of ``structures`` for the cutoff, elements and head of ``calculator``."""
    from mace import data as mace_data
    from mace.tools import torch_geometric, torch_tools

    keys = mace_data.KeySpecification(info_keys={}, arrays_keys={})
    with torch_tools.default_dtype(calculator.default_dtype):
        graphs = [
            mace_data.AtomicData.from_config(
                mace_data.config_from_atoms(atoms, key_specification=keys, head_name=calculator.head),
                z_table=calculator.z_table,
                cutoff=calculator.r_max,
                heads=calculator.available_heads,
            )
            for atoms in structures
        ]
    return torch_geometric.Batch.from_data_list(graphs)


def predict_mace_batch(calculator: Calculator, graphs: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return the energies (F,), forces (N, 3) and stresses (F, 3, 3) of the MACE model of ``calculator``."""
    import torch

    model = calculator.models[0]
    dtype = next(model.parameters()).dtype
    batch = graphs.clone()
    for key in batch.keys:
        if torch.is_tensor(batch[key]) and torch.is_floating_point(batch[key]):
            batch[key] = batch[key].to(dtype=dtype)
    output = model(batch.to_dict(), compute_stress=True, training=False)
    energy_unit, length_unit = calculator.energy_units_to_eV, calculator.length_units_to_A
    return (
        output['energy'].detach().double().numpy() * energy_unit,
        output['forces'].detach().double().numpy() * energy_unit / length_unit,
        output['stress'].detach().double().numpy() * energy_unit / length_unit**3,
    )


def predict_one_by_one(calculator: Calculator, structures: Sequence[Atoms]) -> tuple[np.ndarray, ...]:
    """Return the energies, forces and stresses (NaN unless periodic in 3D) of ``calculator``, frame by frame."""
    energies, forces, stresses = [], [], []
    for structure in structures:
        atoms = structure.copy()
        energies.append(float(calculator.get_property('energy', atoms)))
        forces.append(np.asarray(calculator.get_property('forces', atoms), dtype=np.float64))
        periodic = atoms.pbc.all()
        stresses.append(voigt_6_to_full_3x3_stress(calculator.get_property('stress', atoms)) if periodic else None)
    stress = np.array([np.full((3, 3), np.nan) if value is None else value for value in stresses])
    return np.array(energies), np.concatenate(forces), stress.reshape(-1, 3, 3)


def _graph_key(calculator: Calculator) -> tuple:
    """Return what decides the MACE graphs of a calculator: its cutoff, elements, head and dtype."""
    return float(calculator.r_max), tuple(calculator.z_table.zs), calculator.head, calculator.default_dtype


def predict_committee(
    committee: Sequence[Calculator], structures: Sequence[Atoms], batch_frames: int = DEFAULT_BATCH_FRAMES
) -> Predictions:
    """Return the predictions of every member of ``committee`` on ``structures``.

    The MACE members of a batch are evaluated at the same time (:mod:`.committee_batch`), the others frame by frame.
    Raise :class:`MemberError` naming the first member whose prediction failed or was not finite.
    """
    natoms = np.array([len(atoms) for atoms in structures], dtype=np.int64)
    periodic = np.array([atoms.pbc.all() for atoms in structures], dtype=bool)
    energies = np.empty((len(committee), len(structures)))
    forces = np.empty((len(committee), int(natoms.sum()), 3))
    stresses = np.full((len(committee), len(structures), 3, 3), np.nan)
    batched = [member for member, calculator in enumerate(committee) if is_batchable(calculator)]
    with member_pool(len(batched)) as pool:
        for start in range(0, len(structures), batch_frames):
            chunk = structures[start : start + batch_frames]
            frames = slice(start, start + len(chunk))
            atoms_rows = slice(int(natoms[:start].sum()), int(natoms[: start + len(chunk)].sum()))
            results = run_members(pool, _batched_tasks(committee, batched, chunk))
            for member, calculator in enumerate(committee):
                result = results[member] if member in results else attempt(predict_one_by_one, calculator, chunk)
                if isinstance(result, Exception):  # whatever the model library raises, name the member
                    raise MemberError(member, f'{type(result).__name__}: {result}') from result
                energy, force, stress = result
                energies[member, frames], forces[member, atoms_rows] = energy, force
                stresses[member, frames] = np.where(periodic[frames, None, None], stress, np.nan)
                if not (np.isfinite(energy).all() and np.isfinite(force).all()):
                    raise MemberError(member, 'the model predicted NaN or infinite energies or forces')
    return Predictions(energies, forces, stresses)


def _batched_tasks(
    committee: Sequence[Calculator], members: Sequence[int], chunk: Sequence[Atoms]
) -> dict[int, Callable[[], Any]]:
    """Return the prediction on ``chunk`` of every MACE member of ``members`` as a task, sharing the graphs.

    The graphs are built here, once per cutoff, elements, head and dtype; a member whose graphs cannot be built gets a
    task that raises the exception.
    """
    graphs: dict[tuple, Any] = {}
    tasks = {}
    for member in members:
        calculator = committee[member]
        key = _graph_key(calculator)
        if key not in graphs:
            graphs[key] = attempt(mace_graphs, calculator, chunk)
        if isinstance(graphs[key], Exception):
            tasks[member] = functools.partial(_raise, graphs[key])
        else:
            tasks[member] = functools.partial(predict_mace_batch, calculator, graphs[key])
    return tasks


def _raise(exception: Exception) -> None:
    """Raise ``exception``."""
    raise exception


def evaluated_batch(batch: FrameBatch, predictions: Predictions) -> FrameBatch:
    """Return ``batch`` with the committee predictions and the metrics as extra columns (labels untouched)."""
    metrics = committee_metrics(predictions.energies, predictions.forces, batch.natoms, predictions.stresses)
    batch.frame_arrays = {
        **batch.frame_arrays,
        'committee_energy': predictions.energies.T.copy(),
        'committee_stress': predictions.stresses.transpose(1, 0, 2, 3).copy(),
        **metrics.as_columns(),
    }
    batch.atom_arrays = {**batch.atom_arrays, 'committee_forces': predictions.forces.transpose(1, 0, 2).copy()}
    return batch


def evaluate_dataset(
    reader: DatasetReader,
    committee: Sequence[Calculator],
    output: Path,
    block_frames: int = DEFAULT_BLOCK_FRAMES,
    batch_frames: int = DEFAULT_BATCH_FRAMES,
) -> EvaluationResults:
    """Write every frame of ``reader`` with the predictions of ``committee`` and its disagreement to ``output``.

    The file is written under a temporary name and renamed when complete, so that ``output`` is never partial.
    """
    results = EvaluationResults(num_members=len(committee))
    results.batched_members = [member for member, calculator in enumerate(committee) if is_batchable(calculator)]
    start = time.perf_counter()
    partial = output.with_name(f'{output.name}.partial')
    try:
        with DatasetWriter(partial, block_frames) as writer:
            for batch in reader.iter_batches(block_frames):
                structures = list(iter_atoms_from_batch(batch))
                evaluated = evaluated_batch(batch, predict_committee(committee, structures, batch_frames))
                writer.add_batch(evaluated)
                results.count(evaluated.natoms, evaluated.frame_arrays)
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    results.wall_time_seconds = round(time.perf_counter() - start, 3)
    return results


def read_model_specs(path: Path) -> list[dict[str, Any]]:
    """Return the validated model specs of the JSON list at ``path``; raise ``ValueError`` or ``OSError``."""
    specs = json.loads(path.read_text(encoding='utf-8'))
    if not isinstance(specs, list) or len(specs) < 2:
        raise ValueError('must be a JSON list of at least two model specs: a committee needs two members')
    validated = []
    for member, spec in enumerate(specs):
        try:
            validated.append(validate_model_spec(spec))
        except ValueError as exception:
            raise ValueError(f'member {member}: {exception}') from None
    return validated


def load_members(specs: Sequence[dict[str, Any]]) -> list[Calculator]:
    """Return the calculators of ``specs``; raise :class:`MemberError` naming the first that cannot be loaded."""
    committee = []
    for member, spec in enumerate(specs):
        try:
            committee.append(load_calculator(spec))
        except Exception as exception:  # whatever the model library raises for a file it cannot load
            raise MemberError(member, f'{spec["path"]}: {type(exception).__name__}: {exception}') from exception
    return committee


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments; ``argparse`` exits with status 2 on bad ones."""
    parser = argparse.ArgumentParser(
        prog='trainspot-evaluate',
        description='Predict every frame of a dataset file with every member of a committee of trained models and '
        'store the predictions and their disagreement with the frames.',
    )
    parser.add_argument('--input', type=Path, required=True, help='the dataset file (HDF5) to evaluate')
    parser.add_argument('--models', type=Path, required=True, help='the model specs (JSON list, two or more)')
    parser.add_argument('--output', type=Path, required=True, help='the evaluated dataset file to write (HDF5)')
    parser.add_argument('--results', type=Path, default=Path('results.json'), help='the summary to write (JSON)')
    parser.add_argument(
        '--block-frames', type=int, default=DEFAULT_BLOCK_FRAMES, help='frames read and written at a time'
    )
    parser.add_argument(
        '--batch-frames', type=int, default=DEFAULT_BATCH_FRAMES, help='frames a MACE model evaluates at once'
    )
    arguments = parser.parse_args(argv)
    for name in ('block_frames', 'batch_frames'):
        if getattr(arguments, name) < 1:
            parser.error(f'--{name.replace("_", "-")} must be positive, got {getattr(arguments, name)}')
    return arguments


def _fail(status: int, message: str, results: Path | None = None, error: dict[str, Any] | None = None) -> int:
    """Print ``message`` to standard error, write ``error`` to ``results`` if given, and return ``status``."""
    print(f'trainspot-evaluate: error: {message}', file=sys.stderr)
    if results is not None and error is not None:
        results.write_text(json.dumps(error, indent=2) + '\n', encoding='utf-8')
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trainspot-evaluate`` with the arguments ``argv`` (default: the command line); return the exit status."""
    arguments = parse_arguments(argv)
    try:
        specs = read_model_specs(arguments.models)
    except (OSError, ValueError) as exception:
        return _fail(EXIT_BAD_ARGUMENTS, f'--models {arguments.models}: {exception}')
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(DatasetReader(arguments.input))
        except CorruptDatasetError as exception:
            return _fail(EXIT_UNREADABLE_INPUT, f'--input {exception}')
        try:
            committee = load_members(specs)
        except MemberError as exception:
            error = {'error': 'model', 'member': exception.member, 'reason': exception.reason}
            return _fail(EXIT_MODEL_LOAD_FAILED, f'cannot load {exception}', arguments.results, error)
        try:
            results = evaluate_dataset(
                reader, committee, arguments.output, arguments.block_frames, arguments.batch_frames
            )
        except MemberError as exception:
            error = {'error': 'prediction', 'member': exception.member, 'reason': exception.reason}
            return _fail(EXIT_PREDICTION_FAILED, f'prediction failed: {exception}', arguments.results, error)
        except CorruptDatasetError as exception:
            return _fail(EXIT_UNREADABLE_INPUT, f'--input {exception}')
        except OSError as exception:
            return _fail(EXIT_BAD_ARGUMENTS, f'--output {arguments.output}: {exception}')
    summary = results.summary()
    arguments.results.write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    print(
        f'evaluated {results.num_frames} frames with {results.num_members} members in {results.wall_time_seconds} s '
        f'(mean force disagreement {summary["mean_force_disagreement"]} eV/Å)'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
