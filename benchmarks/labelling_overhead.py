"""How well the labelling work chain keeps the machine busy: pw.x time over the time its slots were available.

    python benchmarks/labelling_overhead.py [--frames 16] [--max-concurrent N]

Labels ``--frames`` rattled 8-atom diamond cells with real pw.x through ``AbInitioLabellingWorkChain`` (protocol
``fast``, cutoffs 30/240 Ry, k-point spacing 0.5 Å⁻¹, one MPI rank per job) in a throw-away SQLite profile set up as
``aiida-trainspot setup`` does (localhost polled every second). It prints the core utilisation

    sum of pw.x wall times / (work-chain wall time × concurrent slots)

which is 1 when a pw.x runs in every slot at every moment; what is missing is AiiDA's own overhead per structure
(calcfunctions, submission, polling, parsing) that did not hide behind running calculations. Goal: ≥ 0.8.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from ase.build import bulk

sys.path.insert(0, str(Path(__file__).parent))
from pesdata_io import load_throwaway_profile

CHEAP = {'kpoints_distance': 0.5, 'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30.0, 'ecutrho': 240.0}}}}


def rattled_cells(count: int, seed: int = 0) -> list:
    """Return ``count`` rattled conventional diamond cells (8 atoms), each with its own seed."""
    cells = []
    for index in range(count):
        atoms = bulk('C', 'diamond', a=3.567, cubic=True)
        atoms.rattle(0.05, seed=seed + index)
        cells.append(atoms)
    return cells


def label(frames: int, max_concurrent: int | None) -> None:
    """Run the work chain on ``frames`` cells and print the utilisation."""
    from aiida import orm
    from aiida.engine import run_get_node

    from aiida_trainspot.data import PESData
    from aiida_trainspot.environment.codes import default_code_specs, ensure_code, ensure_localhost
    from aiida_trainspot.environment.pseudos import ensure_pseudo_family
    from aiida_trainspot.workflows.labelling import AbInitioLabellingWorkChain
    from aiida_trainspot.workflows.throttle import default_max_concurrent

    computer, _ = ensure_localhost()
    code, _ = ensure_code(default_code_specs(Path(sys.executable).parent)[0], computer)
    family, _ = ensure_pseudo_family()
    options = {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}}
    slots = max_concurrent or default_max_concurrent(code, options)
    inputs = {
        'dataset': PESData.from_ase(rattled_cells(frames)).store(),
        'code': code,
        'pseudo_family': orm.Str(family.label),
        'protocol': orm.Str('fast'),
        'overrides': orm.Dict(CHEAP),
        'options': orm.Dict(options),
        'max_concurrent': orm.Int(slots),
    }
    _, node = run_get_node(AbInitioLabellingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    children = [child for child in node.called if child.process_label == 'PwBaseWorkChain']
    pw_seconds = sum(child.outputs.output_parameters['wall_time_seconds'] for child in children)
    wall = (node.mtime - node.ctime).total_seconds()
    print(f'{frames} frames of 8 atoms, {slots} concurrent slots on {os.cpu_count()} cores')
    print(f'work chain wall time      {wall:8.1f} s')
    print(f'sum of pw.x wall times    {pw_seconds:8.1f} s  ({pw_seconds / frames:.1f} s per frame)')
    print(f'core utilisation          {pw_seconds / (wall * slots):8.2f}   (goal >= 0.8)')
    print(f'overhead per frame        {(wall * slots - pw_seconds) / frames:8.2f} s of a slot')


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description='Labelling work chain: core utilisation with real pw.x.')
    parser.add_argument('--frames', type=int, default=16, help='rattled 8-atom cells to label')
    parser.add_argument('--max-concurrent', type=int, default=None, help='slots (default: what fits the machine)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        load_throwaway_profile(Path(folder))
        label(args.frames, args.max_concurrent)


if __name__ == '__main__':
    main()
