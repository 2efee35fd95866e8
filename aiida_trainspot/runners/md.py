"""``trainspot-md``: molecular dynamics with a trained model or committee, from every frame of a dataset file.

Usage::

    trainspot-md --structures structures.h5 --spec md.json --models models.json
                 [--output frames.h5] [--trace trace.json] [--results results.json]

``md.json`` is the MD spec of :mod:`aiida_trainspot.runners.md_spec`; ``models.json`` a list of model specs of
:mod:`aiida_trainspot.runners.models`. Each starting frame is one run: Langevin NVT, or Berendsen NPT whose barostat
scales only the periodic cell vectors (a slab keeps its out-of-plane length). After the thermalisation, every
``stride``-th step is written to ``frames.h5`` (origin ``md``; ``info`` holds the run, step, time and temperature;
with a committee, the members' predictions and the disagreement metrics as extra columns). The stability guard stops
the job at the first step with a NaN, two atoms closer than ``min_distance`` or a force above ``max_force``; the
uncertainty stop at the first checked step whose force disagreement is above the threshold, and that frame is written
last, flagged ``uncertainty_stop`` in its info. ``trace.json`` holds every checked step, ``results.json`` the stop
reason (``completed``, ``unstable: ...`` or ``uncertain: ...``) and the counts. Exit status: 0 when the outputs were
written (whatever the stop reason), 2 for bad arguments, spec or models, 3 for an unreadable structures file.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms, units
from ase.md.langevin import Langevin
from ase.md.md import MolecularDynamics
from ase.md.nptberendsen import Inhomogeneous_NPTBerendsen
from ase.md.velocitydistribution import MaxwellBoltzmannDistribution, Stationary
from ase.neighborlist import neighbor_list

from ..dataset import CorruptDatasetError, DatasetReader, DatasetWriter, Frame, frame_to_atoms
from ..uncertainty.metrics import frame_metrics
from ..uncertainty.threshold import MovingAverageThreshold
from .md_spec import validate_md_spec
from .models import CommitteeCalculator, load_committee, validate_model_spec

EXIT_BAD_ARGUMENTS = 2
EXIT_UNREADABLE_INPUT = 3
COMPLETED = 'completed'


@dataclass
class MdResults:
    """What an MD job did: why it stopped, the frames it wrote, the steps it ran and its trace."""

    stop_reason: str = COMPLETED
    num_runs: int = 0
    num_frames: int = 0
    num_steps: int = 0
    wall_time_seconds: float = 0.0
    trace: list[dict[str, Any]] = field(default_factory=list)

    @property
    def stopped(self) -> bool:
        """Return whether a guard or the uncertainty stop ended the job."""
        return self.stop_reason != COMPLETED


def instability(atoms: Atoms, min_distance: float, max_force: float) -> str | None:
    """Return why ``atoms`` (with its forces computed) is unstable: NaN, atoms too close or a force too large."""
    forces = atoms.get_forces()
    if not (np.isfinite(atoms.positions).all() and np.isfinite(forces).all()):
        return 'NaN or infinite positions or forces'
    largest = float(np.linalg.norm(forces, axis=1).max())
    if largest > max_force:
        return f'force {largest:.4g} eV/Å > max_force {max_force} eV/Å'
    distances = neighbor_list('d', atoms, min_distance)
    if len(distances):
        return f'interatomic distance {distances.min():.4g} Å < min_distance {min_distance} Å'
    return None


def make_dynamics(atoms: Atoms, spec: dict[str, Any], rng: np.random.Generator) -> MolecularDynamics:
    """Return the integrator of ``spec`` for ``atoms``: Langevin (NVT) or Berendsen on the periodic axes (NPT)."""
    timestep = spec['timestep'] * units.fs
    if spec['ensemble'] == 'nvt':
        return Langevin(
            atoms, timestep, temperature_K=spec['temperature'], friction=spec['friction'] / units.fs, rng=rng
        )
    return Inhomogeneous_NPTBerendsen(
        atoms,
        timestep,
        temperature_K=spec['temperature'],
        pressure_au=(spec['pressure'] or 0.0) * units.GPa,
        taut=spec['taut'] * units.fs,
        taup=spec['taup'] * units.fs,
        compressibility_au=spec['compressibility'] / units.GPa,
        mask=tuple(int(periodic) for periodic in atoms.pbc),
    )


def md_frame(atoms: Atoms, spec: dict[str, Any], info: dict[str, Any]) -> Frame:
    """Return the unlabelled frame of ``atoms`` with ``info`` and, with a committee, its predictions and metrics."""
    frame = Frame(
        numbers=atoms.numbers.copy(),
        positions=atoms.positions.copy(),
        cell=atoms.cell.array.copy(),
        pbc=atoms.pbc.copy(),
        origin='md',
        iteration=spec['iteration'],
        info=info,
    )
    results = atoms.calc.results
    if len(results['committee_energy']) > 1:
        stress = results.get('committee_stress')
        frame.frame_arrays['committee_energy'] = results['committee_energy']
        if stress is not None:
            frame.frame_arrays['committee_stress'] = stress
        frame.atom_arrays['committee_forces'] = results['committee_forces'].transpose(1, 0, 2)
        metrics = frame_metrics(results['committee_energy'], results['committee_forces'], stress)
        frame.frame_arrays.update({name: np.array(value) for name, value in metrics.items() if np.isfinite(value)})
    return frame


def threshold_rule(stop: dict[str, Any] | None) -> Callable[[float], float | None] | None:
    """Return the function from a checked uncertainty to the threshold it is compared with (``None``: inactive).

    A fixed stop always gives its threshold; a moving-average stop first adds the value to the moving average (seed
    000 Eq. 2, the current check included, as aims-PAX), which is not active during its warm-up.
    """
    if stop is None:
        return None
    if 'threshold' in stop:
        return lambda _value: stop['threshold']
    moving, size = MovingAverageThreshold.from_state(stop['moving_average']), stop['training_set_size']

    def update(value: float) -> float | None:
        threshold = moving.update(value, size)
        return threshold if math.isfinite(threshold) else None

    return update


def run_md(
    atoms: Atoms, spec: dict[str, Any], calculator: CommitteeCalculator, run: int, results: MdResults
) -> list[Frame]:
    """Run the MD of ``spec`` from ``atoms``; return the kept frames and record steps, trace and stop in ``results``."""
    rng = np.random.default_rng([spec['seed'], run])
    atoms.calc = calculator
    MaxwellBoltzmannDistribution(atoms, temperature_K=spec['temperature'], rng=rng)
    Stationary(atoms)
    dynamics = make_dynamics(atoms, spec, rng)
    stop = spec['uncertainty_stop']
    check_every = stop['every'] if stop else spec['stride']
    threshold_after = threshold_rule(stop)
    committee = len(calculator.members) > 1
    frames = []
    for _ in dynamics.irun(spec['steps']):
        step = dynamics.nsteps
        why = instability(atoms, spec['min_distance'], spec['max_force'])
        if why:
            results.stop_reason = f'unstable: {why} at step {step} of run {run}'
            break
        if step == 0:  # the starting frame is checked, not kept
            continue
        results.num_steps += 1
        info = {'run': run, 'step': step, 'time_fs': step * spec['timestep'], 'temperature': atoms.get_temperature()}
        info['temperature'] = float(info['temperature'])
        uncertainty = calculator.results['force_disagreement'] if committee else None
        if step % check_every == 0:
            threshold = threshold_after(uncertainty) if threshold_after else None
            results.trace.append({**info, 'uncertainty': uncertainty, 'threshold': threshold})
            if threshold is not None and uncertainty > threshold:
                results.stop_reason = f'uncertain: {uncertainty:.6g} > {threshold:.6g} at step {step} of run {run}'
                frames.append(md_frame(atoms, spec, {**info, 'uncertainty_stop': True}))
                break
        if step > spec['thermalisation'] and (step - spec['thermalisation']) % spec['stride'] == 0:
            frames.append(md_frame(atoms, spec, info))
    return frames


def run_all(reader: DatasetReader, spec: dict[str, Any], calculator: CommitteeCalculator, output: Path) -> MdResults:
    """Run the MD from every frame of ``reader`` until one stops the job; write the frames to ``output``."""
    results = MdResults()
    start = time.perf_counter()
    partial = output.with_name(f'{output.name}.partial')
    try:
        with DatasetWriter(partial) as writer:
            for run, frame in enumerate(reader.iter_frames()):
                frames = run_md(frame_to_atoms(frame), spec, calculator, run, results)
                writer.extend(frames)
                results.num_frames += len(frames)
                results.num_runs += 1
                if results.stopped:
                    break
        os.replace(partial, output)
    finally:
        partial.unlink(missing_ok=True)
    results.wall_time_seconds = round(time.perf_counter() - start, 3)
    return results


def read_json(path: Path) -> Any:
    """Return the content of the JSON file ``path``; raise ``OSError`` or ``ValueError``."""
    return json.loads(path.read_text(encoding='utf-8'))


def parse_arguments(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Return the command-line arguments; ``argparse`` exits with status 2 on bad ones."""
    parser = argparse.ArgumentParser(
        prog='trainspot-md', description='Molecular dynamics with a trained model or committee (exploration).'
    )
    parser.add_argument('--structures', type=Path, required=True, help='the starting frames (HDF5 dataset)')
    parser.add_argument('--spec', type=Path, required=True, help='the MD spec (JSON)')
    parser.add_argument('--models', type=Path, required=True, help='the list of model specs (JSON)')
    parser.add_argument('--output', type=Path, default=Path('frames.h5'), help='the frames to write (HDF5)')
    parser.add_argument('--trace', type=Path, default=Path('trace.json'), help='the checked steps to write (JSON)')
    parser.add_argument('--results', type=Path, default=Path('results.json'), help='the summary to write (JSON)')
    return parser.parse_args(argv)


def _fail(status: int, message: str) -> int:
    """Print ``message`` to standard error and return ``status``."""
    print(f'trainspot-md: error: {message}', file=sys.stderr)
    return status


def _read_specs(arguments: argparse.Namespace, pbcs: list) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return the validated MD spec and model specs; raise ``ValueError`` naming the file and the field."""
    try:
        models = read_json(arguments.models)
        if not isinstance(models, list):
            raise ValueError('must be a JSON list of model specs')
        models = [validate_model_spec(model) for model in models]
    except (OSError, ValueError) as exception:
        raise ValueError(f'--models {arguments.models}: {exception}') from None
    try:
        spec = validate_md_spec(read_json(arguments.spec), len(models), pbcs)
    except (OSError, ValueError) as exception:
        raise ValueError(f'--spec {arguments.spec}: {exception}') from None
    return spec, models


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``trainspot-md`` with the arguments ``argv`` (default: the command line); return the exit status."""
    arguments = parse_arguments(argv)
    with contextlib.ExitStack() as stack:
        try:
            reader = stack.enter_context(DatasetReader(arguments.structures))
            pbcs = [frame.pbc.tolist() for frame in reader.iter_frames()]
        except CorruptDatasetError as exception:
            return _fail(EXIT_UNREADABLE_INPUT, f'--structures {exception}')
        try:
            spec, models = _read_specs(arguments, pbcs)
            drive = None if spec['drive'] == 'mean' else spec['drive']
            calculator = CommitteeCalculator(load_committee(models), drive)
        except Exception as exception:  # a model file its library cannot load is a bad argument too
            return _fail(EXIT_BAD_ARGUMENTS, str(exception))
        results = run_all(reader, spec, calculator, arguments.output)
    arguments.trace.write_text(json.dumps(results.trace, indent=1) + '\n', encoding='utf-8')
    summary = {key: value for key, value in asdict(results).items() if key != 'trace'}
    arguments.results.write_text(json.dumps(summary, indent=2) + '\n', encoding='utf-8')
    print(
        f'{results.num_frames} frames from {results.num_runs} runs in {results.wall_time_seconds} s: '
        f'{results.stop_reason}'
    )
    return 0


if __name__ == '__main__':
    sys.exit(main())
