"""Label a few carbon structures with real pw.x and store the labels in a PESData node.

Run it after `bash scripts/bootstrap.sh` and `aiida-trainspot setup`: `python examples/label_carbon.py`.
"""

from __future__ import annotations

import argparse

import numpy as np
from aiida import load_profile, orm
from aiida.engine import run_get_node
from ase.build import bulk, graphene

from aiida_trainspot.data import PESData
from aiida_trainspot.dataset import Frame
from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain


def carbon_frames(seed: int) -> list[Frame]:
    """Return diamond (primitive, and a rattled, strained conventional cell) and graphene."""
    diamond = bulk('C', 'diamond', a=3.567)
    cubic = bulk('C', 'diamond', a=3.567, cubic=True)
    cubic.set_cell(cubic.cell * 0.98, scale_atoms=True)
    cubic.rattle(0.05, seed=seed)
    sheet = graphene(vacuum=6.0)
    return [
        Frame(numbers=atoms.numbers, positions=atoms.positions, cell=atoms.cell.array, pbc=atoms.pbc, origin='input')
        for atoms in (diamond, cubic, sheet)
    ]


def main() -> None:
    """Label the structures and print a summary."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--profile', default='trainspot', help='AiiDA profile (made by `aiida-trainspot setup`)')
    parser.add_argument('--seed', type=int, default=7, help='seed of the rattle')
    args = parser.parse_args()
    load_profile(args.profile, allow_switch=True)

    dataset = PESData.from_frames(carbon_frames(args.seed)).store()
    results, node = run_get_node(
        AbInitioLabellingWorkChain,
        dataset=dataset,
        code=orm.load_code('pw@localhost'),
        pseudo_family=orm.Str('trainspot/debian-pbe'),
        protocol=orm.Str('fast'),
    )
    if not node.is_finished_ok:
        raise SystemExit(f'AbInitioLabellingWorkChain<{node.pk}> failed: {node.exit_status} {node.exit_message}')
    labelled = results['labelled_dataset']
    print(
        f'AbInitioLabellingWorkChain<{node.pk}> labelled PESData<{labelled.pk}>: '
        f'{labelled.base.attributes.get("num_labelled")}/{len(labelled)} frames, species {labelled.species}'
    )
    for index, frame in enumerate(labelled.iter_frames()):
        forces = 'none' if frame.forces is None else f'{np.abs(frame.forces).max():.3f} eV/Å'
        pressure = 'n/a' if frame.stress is None else f'{-np.trace(frame.stress) / 3 * 160.21766:.2f} GPa'
        print(
            f'  frame {index}: {frame.natoms} atoms, pbc {frame.pbc.tolist()}, E = {frame.energy:.4f} eV, '
            f'max |F| = {forces}, P = {pressure} {frame.failure_reason}'
        )


if __name__ == '__main__':
    main()
