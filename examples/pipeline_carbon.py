"""The first stage of a campaign on carbon: augment, label with real pw.x, train a committee of two MACE models.

Run it after `bash scripts/bootstrap.sh` and `aiida-trainspot setup`: `python examples/pipeline_carbon.py`.
Every step is a process of the provenance graph; the script prints what each gave. The structures, the DFT settings
(`fast` protocol) and the model (a tiny MACE) are chosen for a 2-core machine: minutes, not days.
"""

from __future__ import annotations

import argparse

import numpy as np
from aiida import load_profile, orm
from aiida.engine import run_get_node
from ase.build import bulk, graphene

from aiida_trainspot.calculations.functions.dataset import subset_dataset
from aiida_trainspot.data import PESData
from aiida_trainspot.workflows.augmentation import DatasetAugmentationWorkChain
from aiida_trainspot.workflows.committee import CommitteeTrainingWorkChain
from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain

TINY_MACE = {
    'num_channels': 8,
    'max_L': 0,
    'max_ell': 1,
    'r_max': 4.0,
    'num_interactions': 1,
    'correlation': 2,
    'radial_MLP': [16, 16],
    'MLP_irreps': '8x0e',
    'max_num_epochs': 30,
    'batch_size': 2,
    'valid_batch_size': 2,
}
"""A MACE model that trains in a minute on a CPU: enough to show the loop, not a production potential."""


def finished(results_node: tuple) -> dict:
    """Return the outputs of a finished process, or stop with its exit message."""
    results, node = results_node
    if not node.is_finished_ok:
        raise SystemExit(f'{node.process_label}<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    return results


def augment(seed: int) -> PESData:
    """Return diamond and graphene (primitive cells) augmented by strain, rattle, vacancies with the `fast` protocol."""
    inputs = [bulk('C', 'diamond', a=3.567), graphene(vacuum=5.0)]
    for atoms in inputs:
        atoms.info['origin'] = 'input'
    structures = PESData.from_ase(inputs).store()
    overrides = {name: {'enabled': False} for name in ('supercell', 'slabs', 'clusters', 'isolated_atoms')}
    builder = DatasetAugmentationWorkChain.get_builder_from_protocol(
        structures, protocol='fast', overrides=overrides, seed=seed
    )
    dataset = finished(run_get_node(builder))['dataset']
    origins = sorted({frame.origin for frame in dataset.iter_frames()})
    print(f'augmentation: {len(structures)} structures -> {len(dataset)} frames ({", ".join(origins)})')
    return dataset


def label(dataset: PESData, frames: int, seed: int) -> PESData:
    """Return ``frames`` of ``dataset`` (a seeded sample, provenance kept) labelled by pw.x."""
    chosen = np.random.default_rng(seed).choice(len(dataset), size=min(frames, len(dataset)), replace=False)
    sample = subset_dataset(dataset, indices=orm.List(sorted(chosen.tolist())))
    results = finished(
        run_get_node(
            AbInitioLabellingWorkChain,
            dataset=sample,
            code=orm.load_code('pw@localhost'),
            pseudo_family=orm.Str('trainspot/debian-pbe'),
            protocol=orm.Str('fast'),
            overrides=orm.Dict({'kpoints_distance': 0.4}),
        )
    )
    labelled = results['labelled_dataset']
    energies = [frame.energy / frame.natoms for frame in labelled.iter_frames()]
    print(f'labelling: {len(labelled)} of {len(sample)} frames, {min(energies):.3f} to {max(energies):.3f} eV/atom')
    return labelled


def train(labelled: PESData, seed: int) -> None:
    """Train a committee of two tiny MACE models (split tags made by the committee) and print their errors."""
    mace = {'train': {'code': orm.load_code('mace_run_train@localhost'), 'hyperparameters': orm.Dict(TINY_MACE)}}
    results = finished(
        run_get_node(
            CommitteeTrainingWorkChain, dataset=labelled, num_members=orm.Int(2), seed=orm.Int(seed), mace=mace
        )
    )
    for member, metrics in sorted(results['metrics'].items()):
        forces = metrics.get_array('valid_forces_rmse')
        print(f'committee {member}: validation force RMSE {forces[1]:.0f} -> {forces[-1]:.0f} meV/Å')
    splits = results['dataset'].base.attributes.get('split_counts')
    print(f'split tags: {splits}; models: {[node.pk for node in results["models"].values()]}')


def main() -> None:
    """Run the three stages and print a summary of each."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default='trainspot', help='AiiDA profile (made by `aiida-trainspot setup`)')
    parser.add_argument('--seed', type=int, default=7, help='seed of every random step')
    parser.add_argument('--frames', type=int, default=16, help='augmented frames to label with pw.x')
    args = parser.parse_args()
    load_profile(args.profile, allow_switch=True)
    dataset = augment(args.seed)
    labelled = label(dataset, args.frames, args.seed)
    train(labelled, args.seed)


if __name__ == '__main__':
    main()
