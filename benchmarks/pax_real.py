"""Real campaigns for ``pax_vs_batch.py --real``: the batch and the parallel loop, same start, same label budget.

Both start from one labelled dataset and one committee, made first and not timed: ``--start-frames`` rattled
8-atom diamond cells labelled by real pw.x (protocol ``fast``, 30/240 Ry, k-point spacing 0.5 Å⁻¹, one MPI rank per
job) and a committee of two tiny MACE models trained on them. Then, each timed:

- batch: ``TrainsPotWorkChain`` with ``max_iterations`` iterations of { ASE MD exploration at 1200 K → select
  ``max_selected`` frames (a force threshold every frame exceeds, so the selection takes the cap) → pw.x → training };
- parallel: the same campaign with ``active_learning.mode: parallel``: the aims-PAX loop with the same label budget
  (``max_selected`` × ``max_iterations``), then the same final evaluation.

The batch committee trains ``--epochs`` epochs per iteration, the parallel one ``--chunk-epochs`` per chunk (aims-PAX:
2 per training frame); both run at most 2 pw.x at once; the parallel loop runs ``--real-trajectories`` trajectories
(segments of 60 steps, a check every 5), ``--real-md-workers`` segments at once (1 by default: on 2 cores, more MD at
once only slows the pw.x runs down). The codes are set up as ``aiida-trainspot setup`` does, so the runners and the
training start warm. ``--no-batch`` runs the parallel campaign alone.

Printed: each wall time (creation to end of the top work chain), their ratio, the labels, and the summed lifetimes of
the CalcJobs by kind over the wall time × cores (above 1 in all: more jobs than cores at once, each slowed down). The
mean durations of one MD segment, one pw.x labelling and one training chunk of the parallel run are written to
``--write-durations`` for ``pax_vs_batch.py --simulate --durations``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from ase.build import bulk

sys.path.insert(0, str(Path(__file__).parent))
from pesdata_io import load_throwaway_profile

CHEAP = {'kpoints_distance': 0.5, 'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30.0, 'ecutrho': 240.0}}}}
KINDS = {'PwCalculation': 'pw.x', 'MdCalculation': 'MD', 'MaceTrainCalculation': 'training',
         'EvaluationCalculation': 'evaluation'}  # fmt: skip


def rattled_diamond(count: int, seed: int) -> list:
    """Return ``count`` rattled conventional diamond cells (8 atoms)."""
    cells = []
    for index in range(count):
        atoms = bulk('C', 'diamond', a=3.567, cubic=True)
        atoms.rattle(0.08, seed=seed + index)
        cells.append(atoms)
    return cells


def codes(niceness: int | None) -> dict:
    """Return the campaign codes, set up as ``aiida-trainspot setup`` does, and the pseudopotential family."""
    from aiida_trainspot.cli.setup import DEFAULT_NICENESS
    from aiida_trainspot.environment.codes import default_code_specs, ensure_code, ensure_localhost
    from aiida_trainspot.environment.pseudos import ensure_pseudo_family

    computer, _ = ensure_localhost()
    specs = {spec.label: spec for spec in default_code_specs(Path(sys.executable).parent)}
    roles = {'dft': 'pw', 'training': 'mace_run_train', 'md': 'trainspot-md', 'evaluate': 'trainspot-evaluate'}
    niceness = DEFAULT_NICENESS if niceness is None else niceness
    found = {role: ensure_code(specs[label], computer, niceness=niceness)[0] for role, label in roles.items()}
    return {**found, 'family': ensure_pseudo_family()[0]}


def overrides(args, mode: str) -> dict:
    """Return the campaign overrides of ``mode`` (batch or parallel)."""
    loop = {'num_trajectories': args.real_trajectories, 'segment_steps': 60, 'check_every': 5, 'threshold_warmup': 8,
            'max_dft_workers': 2, 'training_epochs': args.chunk_epochs, 'convergence_epochs': 0,
            'max_md_workers': args.real_md_workers or None}  # fmt: skip
    active = {'max_iterations': args.iterations, 'max_selected': args.selected, 'seed': 3}
    active.update({'mode': 'parallel', 'parallel': loop} if mode == 'parallel' else {'thresholds': {'forces': 1e-6}})
    return {
        'active_learning': active,
        'training': {'mace_hyperparameters': {'max_num_epochs': args.epochs}},
        'labelling': {
            'overrides': CHEAP,
            'options': {'resources': {'num_machines': 1, 'num_mpiprocs_per_machine': 1}},
            'max_concurrent': 2,
        },
        'exploration': {
            'temperatures': [1200.0],
            'pressures': [0.0],
            'parameters': {'timestep': 1.0, 'steps': 60, 'thermalisation': 20, 'stride': 10},
        },
    }


def run_campaign(structures, found: dict, args, mode: str, start: dict | None = None):
    """Run one campaign and return its node."""
    from aiida.engine import run_get_node

    from aiida_trainspot.workflows.trainspot import TrainsPotWorkChain

    builder = TrainsPotWorkChain.get_builder_from_protocol(
        structures,
        {role: found[role] for role in ('dft', 'training', 'md', 'evaluate')},
        protocol='fast',
        overrides=overrides(args, mode) if mode != 'start' else {**overrides(args, 'batch'), 'active_learning':
                                                                 {'max_iterations': 0, 'seed': 3}},
        pseudo_family=found['family'].label,
        augment=False,
    )  # fmt: skip
    for name, value in (start or {}).items():
        setattr(builder, name, value)
    _, node = run_get_node(builder)
    assert node.is_finished_ok, f'{mode}: {node.exit_message}'
    return node


def busy_seconds(node) -> dict[str, float]:
    """Return the summed lifetimes of the CalcJobs under ``node``, by kind."""
    busy: dict[str, float] = {}
    for child in node.called_descendants:
        kind = KINDS.get(child.process_label)
        if kind:
            busy[kind] = busy.get(kind, 0.0) + (child.mtime - child.ctime).total_seconds()
    return busy


def timeline(node) -> list[tuple[str, float, float]]:
    """Return every CalcJob and calcfunction under ``node`` as (kind, start, end) in seconds from its creation."""
    from aiida import orm

    rows = []
    for child in node.called_descendants:
        kind = KINDS.get(child.process_label)
        kind = kind or (child.process_label if isinstance(child, orm.CalcFunctionNode) else None)
        if kind:
            rows.append((kind, (child.ctime - node.ctime).total_seconds(), (child.mtime - node.ctime).total_seconds()))
    return sorted(rows, key=lambda row: row[1])


def mean_durations(node) -> dict[str, float]:
    """Return the mean lifetimes of one MD segment, one labelling and one training chunk of a parallel campaign."""
    (loop,) = [child for child in node.called if child.process_label == 'ParallelActiveLearningWorkChain']
    lifetimes: dict[str, list[float]] = {'t_md': [], 't_dft': [], 't_train': []}
    names = {'MdCalculation': 't_md', 'AbInitioLabellingWorkChain': 't_dft', 'CommitteeTrainingWorkChain': 't_train'}
    for child in loop.called:
        if child.process_label in names:
            lifetimes[names[child.process_label]].append((child.mtime - child.ctime).total_seconds())
    return {key: sum(values) / len(values) for key, values in lifetimes.items() if values}


def report(name: str, node, cores: int) -> float:
    """Print the wall time, labels and busy fractions of campaign ``node``; return its wall time."""
    wall = (node.mtime - node.ctime).total_seconds()
    labelled = len(node.outputs.dataset)
    busy = busy_seconds(node)
    shares = ', '.join(f'{kind} {seconds / (wall * cores):.2f}' for kind, seconds in sorted(busy.items()))
    print(f'{name:<9} wall {wall:7.1f} s, {labelled} labelled frames; busy/(wall x {cores} cores): {shares}, '
          f'all {sum(busy.values()) / (wall * cores):.2f}')  # fmt: skip
    rows = timeline(node)
    running = running_counts([(start, end) for kind, start, end in rows if kind == 'pw.x'], wall)
    print(f'{"":<9} time with 0, 1, 2, ... pw.x running: ' + ', '.join(f'{share:.2f}' for share in running)
          + f'; {sum(kind not in KINDS.values() for kind, _, _ in rows)} calcfunctions')  # fmt: skip
    return wall


def running_counts(spans: list[tuple[float, float]], wall: float) -> list[float]:
    """Return the share of ``wall`` during which 0, 1, 2, ... of the ``spans`` (start, end) overlap."""
    events = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    shares, count, last = [0.0] * (len(spans) + 1), 0, 0.0
    for time, change in events:
        shares[count] += time - last
        count, last = count + change, time
    shares[0] += max(wall - last, 0.0)
    while len(shares) > 1 and shares[-1] == 0.0:
        shares.pop()
    return [share / wall for share in shares]


def run_real_campaigns(args) -> None:
    """Make the common start, run both campaigns, print the comparison and write the measured durations."""
    with tempfile.TemporaryDirectory() as folder:
        load_throwaway_profile(Path(folder))
        from aiida_trainspot.data import PESData

        found = codes(args.real_niceness)
        structures = PESData.from_ase(rattled_diamond(args.start_frames, seed=0)).store()
        first = run_campaign(structures, found, args, 'start')
        start = {'dataset': first.outputs.dataset, 'committee': dict(first.outputs.committee)}
        print(f'start: {len(first.outputs.dataset)} labelled frames, a committee of {len(start["committee"])}')
        cores = os.cpu_count() or 1
        batch_node = run_campaign(structures, found, args, 'batch', start) if args.batch else None
        batch = report('batch', batch_node, cores) if batch_node else None
        parallel_node = run_campaign(structures, found, args, 'parallel', start)
        parallel = report('parallel', parallel_node, cores)
        if batch:
            print(f'batch / parallel wall time: {batch / parallel:.2f} (goal >= 1.3)')
        durations = mean_durations(parallel_node)
        print('mean lifetimes in the parallel run: ' + ', '.join(f'{k} {v:.1f} s' for k, v in durations.items()))
        if args.write_durations:
            Path(args.write_durations).write_text(json.dumps(durations, indent=2) + '\n')
        if args.write_timeline:
            runs = {'parallel': parallel_node, **({'batch': batch_node} if batch_node else {})}
            Path(args.write_timeline).write_text(json.dumps({name: timeline(run) for name, run in runs.items()}))
