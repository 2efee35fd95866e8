"""Cost of evaluating a committee of 4 MACE models relative to one model, on the same frames, in the same run.

    python benchmarks/committee_eval.py [--frames 32] [--repeat 2 2 2] [--members 4] [--model mace.model]

Without ``--model``, one tiny MACE model (8 channels, one interaction, 4 Å cutoff) is trained for one epoch with
``mace_run_train`` on EMT-labelled copper (not DFT) in a temporary folder. The members are copies of that file: the
cost of a forward pass does not depend on the weights, and every member is evaluated separately (nothing is shared but
the graphs, which is the point). Timed in turn (``--repeats`` calls each), on rattled copper cells of ``--repeat``
conventional cells:

- ASE, frame by frame: ``MACECalculator`` on one ``ase.Atoms`` at a time (what an ASE script does);
- batched, one at a time: batches of ``--batch-frames`` frames, graphs built once per batch and shared by the members,
  evaluated one after the other (``trainspot-evaluate``'s path before);
- batched, concurrent: ``trainspot-evaluate``'s path (:func:`aiida_trainspot.runners.evaluate.predict_committee`), the
  same, with the members evaluated at the same time, torch's threads split between them.

The goal is a committee of 4 costing at most 2x one model on the same path. Measured on 2 shared, loaded cores
(OMP_NUM_THREADS=2), 32-atom frames, ratios best and lower quartile, each line one run:

================  =====================  ================
frames / batch    one at a time          concurrent
================  =====================  ================
32 / 32           2.63x, 2.28x           2.14x, 1.89x
64 / 8            2.29x, 2.26x           1.82x, 1.80x
64 / 32           2.32x, 3.11x           1.85x, 1.67x
64 / 64           2.00x, 1.94x           2.31x, 2.35x
64 / 64           1.99x, 2.27x           2.21x, 2.34x
================  =====================  ================

Against one model through ASE frame by frame, the committee of 4 costs 0.2-0.6x.
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT

TINY_MACE = {
    'num_channels': 8,
    'max_L': 0,
    'max_ell': 1,
    'r_max': 4.0,
    'num_interactions': 1,
    'correlation': 2,
    'radial_MLP': [16, 16],
    'MLP_irreps': '8x0e',
    'max_num_epochs': 1,
}


def copper_cells(count: int, repeat: tuple[int, int, int], seed: int = 0) -> list[Atoms]:
    """Return ``count`` rattled copper cells of ``repeat`` conventional cells, labelled by EMT (not DFT)."""
    rng = np.random.default_rng(seed)
    cells = []
    for index in range(count):
        atoms = bulk('Cu', 'fcc', a=3.61, cubic=True) * repeat
        atoms.rattle(0.08, seed=int(rng.integers(2**31)))
        atoms.calc = EMT()
        atoms.get_stress()
        atoms.info['split'] = 'valid' if index % 5 == 0 else 'train'
        cells.append(atoms)
    return cells


def train_tiny_model(folder: Path) -> Path:
    """Train a tiny MACE model for one epoch on EMT copper in ``folder`` and return the model file."""
    from aiida_trainspot.dataset import MACE_KEYS, batch_from_atoms, write_extxyz
    from aiida_trainspot.dataset.batch import SPLIT_CODES
    from aiida_trainspot.training.mace import (
        MaceFiles,
        config_yaml,
        render_config,
        select_e0s,
        summarize_training_frames,
        validate_hyperparameters,
    )

    batch = batch_from_atoms(copper_cells(20, (1, 1, 1), seed=1))
    files = MaceFiles(test=None)
    for split, filename in (('train', files.train), ('valid', files.valid)):
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, MACE_KEYS)
    summary = summarize_training_frames([batch])
    config = render_config(
        validate_hyperparameters(TINY_MACE),
        seed=0,
        files=files,
        e0s=select_e0s(summary, None, False),
        train_with_stress=summary.train_with_stress,
    )
    (folder / 'config.yaml').write_text(config_yaml(config))
    subprocess.run(
        [shutil.which('mace_run_train'), '--config', 'config.yaml'],
        cwd=folder,
        check=True,
        capture_output=True,
        env={**os.environ, 'OMP_NUM_THREADS': '1'},
    )
    return next(path for path in folder.glob('*.model') if not path.stem.endswith('_compiled'))


def interleaved_times(functions: dict, repeats: int) -> dict[Any, np.ndarray]:
    """Return ``repeats`` wall times of every function of ``functions``, calling them in turn.

    Every function is called twice untimed first: TorchScript optimises a model during its first calls, which would
    otherwise count against whichever path runs first. Calling them in turn spreads the load of other work on the
    machine over all of them alike.
    """
    for function in functions.values():
        function()
        function()
    times: dict[Any, list[float]] = {key: [] for key in functions}
    for _ in range(repeats):
        for key, function in functions.items():
            start = time.perf_counter()
            function()
            times[key].append(time.perf_counter() - start)
    return {key: np.array(values) for key, values in times.items()}


def frame_by_frame(calculators: list, structures: list[Atoms]) -> None:
    """Evaluate energy, forces and stress of every structure with every calculator, one ``ase.Atoms`` at a time."""
    for calculator in calculators:
        for atoms in structures:
            calculator.get_property('stress', atoms.copy())
            calculator.get_property('forces', atoms)


def members_one_after_another(committee: list, structures: list[Atoms], batch_frames: int) -> None:
    """Evaluate the MACE ``committee`` on batches of ``batch_frames`` frames, the graphs shared, one member at a time.

    The batched path before the members were evaluated at the same time.
    """
    from aiida_trainspot.runners.evaluate import mace_graphs, predict_mace_batch

    for start in range(0, len(structures), batch_frames):
        graphs = mace_graphs(committee[0], structures[start : start + batch_frames])
        for calculator in committee:
            predict_mace_batch(calculator, graphs)


def main() -> None:
    """Parse the arguments, build the committee and print the times and ratios."""
    parser = argparse.ArgumentParser(description='Cost of a committee of MACE models relative to one model.')
    parser.add_argument('--frames', type=int, default=32, help='frames evaluated')
    parser.add_argument('--repeat', type=int, nargs=3, default=(2, 2, 2), help='conventional cells per frame')
    parser.add_argument('--members', type=int, default=4, help='committee size')
    parser.add_argument('--batch-frames', type=int, default=32, help='frames per forward pass (batched path)')
    parser.add_argument('--repeats', type=int, default=10, help='timed calls of every path, made in turn')
    parser.add_argument('--model', type=Path, default=None, help='a MACE model file (default: train a tiny one)')
    args = parser.parse_args()

    from aiida_trainspot.runners.evaluate import predict_committee
    from aiida_trainspot.runners.models import load_committee

    with tempfile.TemporaryDirectory() as folder:
        model = args.model or train_tiny_model(Path(folder))
        copies = [Path(folder) / f'member_{k}.model' for k in range(args.members)]
        for copy in copies:
            shutil.copyfile(model, copy)
        specs = [{'architecture': 'mace', 'path': str(copy), 'dtype': 'float64'} for copy in copies]
        committee = load_committee(specs)
    structures = copper_cells(args.frames, tuple(args.repeat), seed=2)
    paths = {
        'ASE, frame by frame': lambda members: frame_by_frame(members, structures),
        'batched, one at a time': lambda members: members_one_after_another(members, structures, args.batch_frames),
        'batched, concurrent': lambda members: predict_committee(members, structures, args.batch_frames),
    }
    sizes = (1, args.members)
    functions = {(path, k): functools.partial(run, committee[:k]) for path, run in paths.items() for k in sizes}
    times = interleaved_times(functions, args.repeats)
    best = {key: values.min() for key, values in times.items()}
    quartile = {key: np.quantile(values, 0.25) for key, values in times.items()}
    natoms = len(structures[0])
    print(
        f'{args.frames} frames of {natoms} atoms, {args.batch_frames} per batch, MACE on the CPU '
        f'(OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")}), {args.repeats} calls of each path in turn'
    )
    print(f'{"path":<24}{"1 model":>10}{f"{args.members} models":>12}  ratio (best, lower quartile)')
    for path in paths:
        single, several = (path, 1), (path, args.members)
        ratios = f'{best[several] / best[single]:.2f}x, {quartile[several] / quartile[single]:.2f}x'
        print(f'{path:<24}{best[single]:9.3f}s{best[several]:11.3f}s  {ratios}')
    committee_cost, baseline = ('batched, concurrent', args.members), ('ASE, frame by frame', 1)
    print(
        f'committee of {args.members} (batched, concurrent) / one model (ASE, frame by frame): '
        f'{best[committee_cost] / best[baseline]:.2f}x, {quartile[committee_cost] / quartile[baseline]:.2f}x'
    )
    print(f'goal: committee of {args.members} <= 2x one model on the same path')


if __name__ == '__main__':
    main()
