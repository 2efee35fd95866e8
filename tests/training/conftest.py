"""Labelled copper frames (EMT, not DFT) and real ``mace_run_train`` and ``mtt train`` runs on them, for the tests."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from ase import Atoms
from ase.build import bulk
from ase.calculators.emt import EMT
from ase.calculators.singlepoint import SinglePointCalculator

from aiida_trainspot.dataset import MACE_KEYS, METATRAIN_KEYS, Frame, FrameBatch, frame_from_atoms, write_extxyz
from aiida_trainspot.dataset.batch import SPLIT_CODES
from aiida_trainspot.training.mace import (
    MaceFiles,
    config_yaml,
    render_config,
    select_e0s,
    summarize_training_frames,
    validate_hyperparameters,
)
from aiida_trainspot.training.metatrain import options_yaml, render_options
from aiida_trainspot.training.metatrain import validate_hyperparameters as validate_metatrain_hyperparameters

TINY_MACE = {
    'num_channels': 8,
    'max_L': 0,
    'max_ell': 1,
    'r_max': 4.0,
    'num_interactions': 1,
    'correlation': 2,
    'radial_MLP': [16, 16],
    'MLP_irreps': '8x0e',
    'max_num_epochs': 8,
}
"""A MACE model small enough to train in seconds on a CPU; the tests override the defaults (Table I) with it."""
TINY_PET = {
    'architecture': 'pet',
    'base_precision': 64,
    'model': {
        'cutoff': 4.0,
        **dict.fromkeys(('d_pet', 'd_node'), 16),
        **dict.fromkeys(('d_head', 'd_feedforward'), 8),
        **dict.fromkeys(('num_heads', 'num_attention_layers', 'num_gnn_layers'), 1),
    },
    'training': {'num_epochs': 4, 'batch_size': 4, 'learning_rate': 0.01},
}
"""A PET small enough to train with ``mtt`` in seconds on a CPU (float64, no TorchScript extensions)."""
SPLIT_SIZES = {'train': 26, 'valid': 3, 'test': 3}


def copper_frames(
    seed: int = 0, sizes: dict[str, int] = SPLIT_SIZES, strain: float = 0.03, gold: bool = False
) -> list[Frame]:
    """Return rattled and strained fcc copper cells of 2 and 4 atoms labelled by EMT, tagged with ``sizes`` splits.

    With ``gold``, every other frame has one gold atom instead of a copper atom.
    """
    rng = np.random.default_rng(seed)
    count = sum(sizes.values())
    splits = np.repeat(list(sizes), list(sizes.values()))[rng.permutation(count)]
    frames = []
    for index, split in enumerate(splits):
        atoms = bulk('Cu', 'fcc', a=3.61) * (1, 1 + index % 2, 2)
        atoms.set_cell(atoms.cell.array @ (np.eye(3) + rng.uniform(-strain, strain, (3, 3))), scale_atoms=True)
        atoms.rattle(0.1, seed=int(rng.integers(2**31)))
        if gold and index % 2 == 0:
            atoms.symbols[0] = 'Au'
        atoms.calc = EMT()
        atoms.get_stress()
        atoms.info['split'] = str(split)
        frames.append(frame_from_atoms(atoms))
    return frames


def isolated_atom(symbol: str, energy: float, split: str = 'train') -> Frame:
    """Return a labelled single atom in a non-periodic box: MACE reads its energy as the E0 of ``symbol``."""
    atoms = Atoms(symbol, cell=[12, 12, 12], pbc=False)
    atoms.calc = SinglePointCalculator(atoms, energy=energy, forces=np.zeros((1, 3)))
    atoms.info['split'] = split
    return frame_from_atoms(atoms)


@pytest.fixture
def emt_copper_frames() -> list[Frame]:
    """Return 32 labelled copper frames of 2 and 4 atoms (EMT labels, not DFT): 26 `train`, 3 `valid`, 3 `test`."""
    return copper_frames()


def run_mace(folder: Path, frames: list[Frame], hyperparameters: dict, seed: int = 0) -> subprocess.CompletedProcess:
    """Write the files a ``MaceTrainCalculation`` writes for ``frames`` into ``folder`` and run ``mace_run_train``."""
    folder.mkdir(parents=True, exist_ok=True)
    batch = FrameBatch.from_frames(frames)
    summary = summarize_training_frames([batch])
    files = MaceFiles()
    for split, filename in (('train', files.train), ('valid', files.valid), ('test', files.test)):
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, MACE_KEYS)
    config = render_config(
        validate_hyperparameters(hyperparameters),
        seed=seed,
        files=files,
        e0s=select_e0s(summary, None, False),
        train_with_stress=summary.train_with_stress,
    )
    (folder / 'config.yaml').write_text(config_yaml(config))
    with open(folder / 'mace.out', 'w') as stdout, open(folder / 'mace.err', 'w') as stderr:
        return subprocess.run(
            [shutil.which('mace_run_train'), '--config', 'config.yaml'],
            cwd=folder,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
            check=False,
        )


def real_mace_run(base: Path) -> Path:
    """Return the folder of one real training on :func:`copper_frames`, run once per test session under ``base``."""
    folder = base / 'mace_copper_run'
    if not (folder / 'finished').exists():
        process = run_mace(folder, copper_frames(), TINY_MACE)
        assert process.returncode == 0, (folder / 'mace.err').read_text()[-2000:]
        (folder / 'finished').touch()
    return folder


@pytest.fixture(scope='session')
def mace_run_folder(tmp_path_factory) -> Path:
    """Return the folder of a real ``mace_run_train`` run of the tiny model on the EMT copper frames."""
    return real_mace_run(tmp_path_factory.getbasetemp())


def run_mtt(folder: Path, frames: list[Frame], hyperparameters: dict, seed: int = 0) -> subprocess.CompletedProcess:
    """Write the files a ``MetatrainCalculation`` writes for ``frames`` into ``folder`` and run ``mtt train``.

    The exported model is ``model.pt``, its TorchScript extensions (if any) in ``extensions/``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    batch = FrameBatch.from_frames(frames)
    files = {split: f'{split}.xyz' for split in ('train', 'valid', 'test')}
    for split, filename in files.items():
        with open(folder / filename, 'w', encoding='utf8') as handle:
            write_extxyz([batch.take(np.flatnonzero(batch.split == SPLIT_CODES[split]))], handle, METATRAIN_KEYS)
    options = render_options(validate_metatrain_hyperparameters(hyperparameters), seed=seed, files=files, stress=True)
    (folder / 'options.yaml').write_text(options_yaml(options))
    with open(folder / 'mtt.out', 'w') as stdout, open(folder / 'mtt.err', 'w') as stderr:
        return subprocess.run(
            [shutil.which('mtt'), 'train', 'options.yaml', '-o', 'model.pt', '-e', 'extensions'],
            cwd=folder,
            stdout=stdout,
            stderr=stderr,
            env={**os.environ, 'OMP_NUM_THREADS': '1'},
            check=False,
        )


def real_pet_run(base: Path) -> Path:
    """Return the folder of one real ``mtt train`` of :data:`TINY_PET` on :func:`copper_frames`, once per session.

    The same frames as :func:`real_mace_run`: the exported metatomic model is ``model.pt``.
    """
    folder = base / 'pet_copper_run'
    if not (folder / 'finished').exists():
        process = run_mtt(folder, copper_frames(), TINY_PET, seed=3)
        assert process.returncode == 0, (folder / 'mtt.err').read_text()[-2000:]
        (folder / 'finished').touch()
    return folder
