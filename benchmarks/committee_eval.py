"""Cost of evaluating a committee of 4 MACE models relative to one model, on the same frames, in the same run.

    python benchmarks/committee_eval.py [--frames 32] [--repeat 2 2 2] [--members 4] [--model mace.model]

Without ``--model``, one tiny MACE model (8 channels, one interaction, 4 Å cutoff) is trained for one epoch with
``mace_run_train`` on EMT-labelled copper (not DFT) in a temporary folder. The members are copies of that file: the
cost of a forward pass does not depend on the weights, and every member is evaluated separately (nothing is shared but
the graphs, which is the point). Timed, on rattled copper cells of ``--repeat`` conventional cells:

- ASE, frame by frame: ``MACECalculator`` on one ``ase.Atoms`` at a time (what an ASE script does);
- ``trainspot-evaluate``'s path (:func:`aiida_trainspot.runners.evaluate.predict_committee`): batches of
  ``--batch-frames`` frames, graphs built once per batch and shared by the members.

The goal is a committee of 4 costing at most 2x one model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

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


def timed(function, repeats: int = 3) -> float:
    """Return the shortest wall time of ``repeats`` calls of ``function``, after two untimed warm-up calls.

    TorchScript optimises a model during its first calls, which would otherwise count against whichever path runs first.
    """
    function()
    function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def frame_by_frame(calculators: list, structures: list[Atoms]) -> None:
    """Evaluate energy, forces and stress of every structure with every calculator, one ``ase.Atoms`` at a time."""
    for calculator in calculators:
        for atoms in structures:
            calculator.get_property('stress', atoms.copy())
            calculator.get_property('forces', atoms)


def main() -> None:
    """Parse the arguments, build the committee and print the times and ratios."""
    parser = argparse.ArgumentParser(description='Cost of a committee of MACE models relative to one model.')
    parser.add_argument('--frames', type=int, default=32, help='frames evaluated')
    parser.add_argument('--repeat', type=int, nargs=3, default=(2, 2, 2), help='conventional cells per frame')
    parser.add_argument('--members', type=int, default=4, help='committee size')
    parser.add_argument('--batch-frames', type=int, default=32, help='frames per forward pass (batched path)')
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
    one = committee[:1]
    times = {
        ('ASE, frame by frame', 1): timed(lambda: frame_by_frame(one, structures)),
        ('ASE, frame by frame', args.members): timed(lambda: frame_by_frame(committee, structures)),
        ('batched, shared graphs', 1): timed(lambda: predict_committee(one, structures, args.batch_frames)),
        ('batched, shared graphs', args.members): timed(
            lambda: predict_committee(committee, structures, args.batch_frames)
        ),
    }
    natoms = len(structures[0])
    print(
        f'{args.frames} frames of {natoms} atoms, MACE on the CPU (OMP_NUM_THREADS={os.environ.get("OMP_NUM_THREADS")})'
    )
    print(f'{"path":<26}{"1 model":>10}{f"{args.members} models":>12}{"ratio":>8}')
    for path in ('ASE, frame by frame', 'batched, shared graphs'):
        single, several = times[path, 1], times[path, args.members]
        print(f'{path:<26}{single:9.2f}s{several:11.2f}s{several / single:7.2f}x')
    baseline = times['ASE, frame by frame', 1]
    committee_cost = times['batched, shared graphs', args.members]
    print(
        f'committee of {args.members} (batched) / one model (ASE, frame by frame): {committee_cost / baseline:.2f}x '
        f'(goal <= 2x)'
    )


if __name__ == '__main__':
    main()
