"""Cold against warm starts of the runners: the wall time of short jobs as the parallel loop runs them.

    python benchmarks/warm_start.py [--repeats 5] [--epochs 2] [--steps 60]

Two kinds of job, each run ``--repeats`` times cold and warm in turn, in the same run, with ``OMP_NUM_THREADS=1``:

- a training chunk: ``trainspot-mace-train`` (``mace_run_train``) of the tiny MACE of the tests (8 channels) for
  ``--epochs`` epochs on 16 EMT copper cells (not DFT);
- an MD segment: ``trainspot-md`` with a committee of 2 of the model trained first, ``--steps`` Langevin steps of an
  8-atom copper cell.

A cold job imports torch, e3nn and MACE itself; a warm one is forked by a server that has them imported (a server of
this run only, started before the timing, stopped after). Printed per kind: the median wall time of each (the job
script's start to its end, as the scheduler sees it) and their ratio cold / warm.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from ase.build import bulk
from ase.calculators.emt import EMT

from aiida_trainspot.dataset import MACE_KEYS, DatasetWriter, FrameBatch, frame_from_atoms, write_extxyz
from aiida_trainspot.dataset.batch import SPLIT_CODES
from aiida_trainspot.runners import warm
from aiida_trainspot.training.mace import (
    MaceFiles,
    config_yaml,
    render_config,
    select_e0s,
    summarize_training_frames,
    validate_hyperparameters,
)

TINY = {'num_channels': 8, 'max_L': 0, 'max_ell': 1, 'r_max': 4.0, 'num_interactions': 1, 'correlation': 2,
        'radial_MLP': [16, 16], 'MLP_irreps': '8x0e', 'batch_size': 4, 'valid_batch_size': 4}  # fmt: skip


def copper_cells(count: int, seed: int = 0) -> list:
    """Return ``count`` rattled 4-atom copper cells labelled by EMT, 2 of them for validation and 2 for test."""
    cells = []
    for index in range(count):
        atoms = bulk('Cu', 'fcc', a=3.61) * (1, 2, 2)
        atoms.rattle(0.1, seed=seed + index)
        atoms.calc = EMT()
        atoms.get_stress()
        atoms.info['split'] = 'valid' if index < 2 else 'test' if index < 4 else 'train'
        cells.append(frame_from_atoms(atoms))
    return cells


def training_folder(folder: Path, epochs: int) -> list[str]:
    """Write the inputs of a training chunk into ``folder``; return its command line."""
    folder.mkdir(parents=True)
    batch = FrameBatch.from_frames(copper_cells(16))
    files = MaceFiles()
    for split, filename in (('train', files.train), ('valid', files.valid), ('test', files.test)):
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, MACE_KEYS)
    summary = summarize_training_frames([batch])
    config = render_config(
        validate_hyperparameters({**TINY, 'max_num_epochs': epochs}),
        seed=0,
        files=files,
        e0s=select_e0s(summary, None, False),
        train_with_stress=summary.train_with_stress,
    )
    (folder / 'config.yaml').write_text(config_yaml(config))
    return [shutil.which('trainspot-mace-train'), '--config', 'config.yaml']


def md_folder(folder: Path, model: Path, steps: int) -> list[str]:
    """Write the inputs of an MD segment with a committee of two copies of ``model`` into ``folder``."""
    folder.mkdir(parents=True)
    atoms = bulk('Cu', 'fcc', a=3.61, cubic=True) * (1, 1, 2)
    atoms.rattle(0.05, seed=1)
    with DatasetWriter(folder / 'structures.h5') as writer:
        writer.add(frame_from_atoms(atoms))
    spec = {'temperature': 600, 'timestep': 2.0, 'steps': steps, 'thermalisation': 0, 'stride': 10}
    (folder / 'md.json').write_text(json.dumps(spec))
    (folder / 'models.json').write_text(json.dumps([{'architecture': 'mace', 'path': str(model)}] * 2))
    return [
        shutil.which('trainspot-md'),
        '--structures',
        'structures.h5',
        '--spec',
        'md.json',
        '--models',
        'models.json',
    ]


def timed(command: list[str], folder: Path, environment: dict) -> float:
    """Run ``command`` in ``folder``; return its wall time (it must succeed)."""
    start = time.perf_counter()
    with open(folder / 'out.txt', 'w') as stdout, open(folder / 'err.txt', 'w') as stderr:
        status = subprocess.run(
            command, check=False, cwd=folder, env=environment, stdout=stdout, stderr=stderr
        ).returncode
    assert status == 0, (folder / 'err.txt').read_text()[-2000:]
    return time.perf_counter() - start


def start_server(environment: dict) -> tuple[int, Path]:
    """Start the warm server of ``environment`` and wait until it listens; return its pid and log."""
    os.environ[warm.FOLDER_VARIABLE] = environment[warm.FOLDER_VARIABLE]
    path = warm.socket_path()
    subprocess.Popen([sys.executable, '-m', 'aiida_trainspot.runners.warm', str(path)], env=environment,
                     start_new_session=True)  # fmt: skip
    while not path.exists():
        time.sleep(0.1)
    log = path.with_suffix('.log')
    return int(log.read_text().split()[1].rstrip(':')), log


def main() -> None:
    """Parse the arguments, run the jobs cold and warm in turn and print the medians and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--repeats', type=int, default=5, help='jobs of each kind and start')
    parser.add_argument('--epochs', type=int, default=2, help='epochs of a training chunk')
    parser.add_argument('--steps', type=int, default=60, help='MD steps of a segment')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / 'server').mkdir(mode=0o700)
        cold = {**os.environ, 'OMP_NUM_THREADS': '1', warm.ENABLE_VARIABLE: '0'}
        hot = {**cold, warm.ENABLE_VARIABLE: '1', warm.FOLDER_VARIABLE: str(root / 'server')}
        timed(training_folder(root / 'model', 20), root / 'model', cold)
        model = root / 'model' / 'mace.model'
        server, log = start_server({key: value for key, value in hot.items() if key != 'OMP_NUM_THREADS'})
        makers = {'training chunk': lambda folder: training_folder(folder, args.epochs),
                  'MD segment': lambda folder: md_folder(folder, model, args.steps)}  # fmt: skip
        try:
            for kind, make in makers.items():
                walls = {'cold': [], 'warm': []}
                for repeat in range(args.repeats):
                    for start, environment in (('cold', cold), ('warm', hot)):
                        folder = root / f'{kind}-{start}-{repeat}'.replace(' ', '_')
                        walls[start].append(timed(make(folder), folder, environment))
                served = log.read_text().count(' child ')
                medians = {start: statistics.median(values) for start, values in walls.items()}
                print(f'{kind:<15} cold {medians["cold"]:6.2f} s, warm {medians["warm"]:6.2f} s, '
                      f'cold / warm {medians["cold"] / medians["warm"]:5.2f} ({served} warm in all)')  # fmt: skip
        finally:
            os.kill(server, signal.SIGTERM)


if __name__ == '__main__':
    main()
