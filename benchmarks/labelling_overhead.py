"""How well the labelling work chain keeps the machine busy: pw.x time over the time its slots were available.

    python benchmarks/labelling_overhead.py [--frames 16] [--max-concurrent N] [--profile FILE] [--daemon WORKERS]

Labels ``--frames`` rattled 8-atom diamond cells with real pw.x through ``AbInitioLabellingWorkChain`` (protocol
``fast``, cutoffs 30/240 Ry, k-point spacing 0.5 Å⁻¹, one MPI rank per job) in a throw-away SQLite profile whose
computer and codes are set up as ``aiida-trainspot setup`` does (localhost polled every second, no login shell); the
profile has no broker, so a process notices that a child ended by looking every second. It prints the utilisation

    sum of pw.x wall times / (work-chain wall time × concurrent slots)

which is 1 when a pw.x runs in every slot at every moment; what is missing is AiiDA's own overhead per structure
(calcfunctions, submission, polling, parsing) that did not hide behind running calculations. Goal: ≥ 0.8.

It then splits the overhead of a frame into phases, from the creation and last-change times of the nodes and the
start and end times pw.x prints (to the second): from a pw.x ending to the next ``PwBaseWorkChain`` being created
(the labelling work chain noticing, collecting, building), from there to its ``PwCalculation`` being created (its
set-up steps), then to its pw.x starting (upload, submission, ``mpirun``), and, overlapping the next frame's, from
pw.x ending to the ``PwCalculation`` ending (the scheduler poll, retrieval, parsing) and from there to the
``PwBaseWorkChain`` ending. ``--profile FILE`` writes the ``cProfile`` statistics of the whole run (all of AiiDA runs
in this one Python process).

``--daemon WORKERS`` runs the work chain as in production instead: submitted to the AiiDA daemon with that many
workers, on a profile with aiida-core's ZeroMQ broker (the embedded default of ``aiida-trainspot setup``), so that
the processes of different frames share several event loops and learn at once that a child ended.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ase.build import bulk

sys.path.insert(0, str(Path(__file__).parent))
from pesdata_io import load_throwaway_profile

CHEAP = {'kpoints_distance': 0.5, 'pw': {'parameters': {'SYSTEM': {'ecutwfc': 30.0, 'ecutrho': 240.0}}}}
_PW_START = re.compile(r'starts on\s+(\d+\w{3}\d{4}) at\s+(\d+):\s*(\d+):\s*(\d+)')
_PW_END = re.compile(r'terminated on:\s+(\d+):\s*(\d+):\s*(\d+)\s+(\d+\w{3}\d{4})')


def rattled_cells(count: int, seed: int = 0) -> list:
    """Return ``count`` rattled conventional diamond cells (8 atoms), each with its own seed."""
    cells = []
    for index in range(count):
        atoms = bulk('C', 'diamond', a=3.567, cubic=True)
        atoms.rattle(0.05, seed=seed + index)
        cells.append(atoms)
    return cells


def pw_times(text: str) -> tuple[datetime.datetime, datetime.datetime]:
    """Return when pw.x started and ended, from the lines it prints (local time, to the second)."""
    day, *start = _PW_START.search(text).groups()
    *end, end_day = _PW_END.search(text).groups()

    def moment(date: str, clock: list[str]) -> datetime.datetime:
        naive = datetime.datetime.strptime(f'{date} {":".join(clock)}', '%d%b%Y %H:%M:%S')
        return naive.astimezone()

    return moment(day, start), moment(end_day, end)


def overhead_phases(children: list) -> dict[str, float]:
    """Return the mean seconds per frame of each phase around pw.x, from the ``PwBaseWorkChain`` ``children``.

    A slot is idle from a pw.x ending to the next ``PwBaseWorkChain`` being created, then to its pw.x starting; the
    phases after a pw.x ends (retrieval, parsing, the ends of ``PwCalculation`` and ``PwBaseWorkChain``) overlap the
    next frame's when slots are freed at the end of a job.
    """
    names = (
        'pw.x ends → the next PwBaseWorkChain is created',
        'PwBaseWorkChain created → PwCalculation created',
        'PwCalculation created → pw.x starts',
        'pw.x ends → PwCalculation ends',
        'PwCalculation ends → PwBaseWorkChain ends',
    )
    phases: dict[str, list[float]] = {name: [] for name in names}
    times = {}
    for child in children:
        calculation = child.called[-1]
        start, end = times[child.pk] = pw_times(calculation.outputs.retrieved.get_object_content('aiida.out'))
        phases[names[1]].append((calculation.ctime - child.ctime).total_seconds())
        phases[names[2]].append((start - calculation.ctime).total_seconds())
        phases[names[3]].append((calculation.mtime - end).total_seconds())
        phases[names[4]].append((child.mtime - calculation.mtime).total_seconds())
    ends = [end for _, end in times.values()]
    for child in children:
        earlier = [end for end in ends if end <= child.ctime]
        if earlier:
            phases[names[0]].append((child.ctime - max(earlier)).total_seconds())
    return {name: sum(values) / len(values) for name, values in phases.items() if values}


def load_zeromq_profile(folder: Path) -> None:
    """Create and load an SQLite profile with aiida-core's ZeroMQ broker in ``folder``."""
    os.environ['AIIDA_PATH'] = str(folder)
    command = [sys.executable, '-m', 'aiida', 'presto', '--profile-name', 'bench', '--use-zeromq', '--non-interactive']
    subprocess.run(command, check=True, capture_output=True)
    from aiida import load_profile

    load_profile('bench', allow_switch=True)


def run_in_daemon(process, inputs: dict, workers: int):
    """Submit ``process`` to a daemon of ``workers`` workers, wait for it to end, stop the daemon; return its node."""
    from aiida.engine import submit
    from aiida.engine.daemon.client import get_daemon_client

    client = get_daemon_client()
    client.start_daemon(number_workers=workers)
    try:
        node = submit(process, **inputs)
        while not node.is_terminated:
            time.sleep(2)
    finally:
        client.stop_daemon(wait=True, timeout=120)
    return node


def label(frames: int, max_concurrent: int | None, daemon_workers: int = 0) -> None:
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
    if daemon_workers:
        node = run_in_daemon(AbInitioLabellingWorkChain, inputs, daemon_workers)
    else:
        _, node = run_get_node(AbInitioLabellingWorkChain, **inputs)
    assert node.is_finished_ok, node.exit_message
    children = [child for child in node.called if child.process_label == 'PwBaseWorkChain']
    pw_seconds = sum(child.outputs.output_parameters['wall_time_seconds'] for child in children)
    wall = (node.mtime - node.ctime).total_seconds()
    where = f'a daemon of {daemon_workers} workers' if daemon_workers else 'this Python process'
    print(f'{frames} frames of 8 atoms, {slots} concurrent slots on {os.cpu_count()} cores, AiiDA in {where}')
    print(f'work chain wall time      {wall:8.1f} s')
    print(f'sum of pw.x wall times    {pw_seconds:8.1f} s  ({pw_seconds / frames:.1f} s per frame)')
    print(f'core utilisation          {pw_seconds / (wall * slots):8.2f}   (goal >= 0.8)')
    print(f'overhead per frame        {(wall * slots - pw_seconds) / frames:8.2f} s of a slot')
    print('mean seconds per frame, by phase (pw.x times to the second):')
    for name, seconds in overhead_phases(children).items():
        print(f'  {name:<48} {seconds:6.2f} s')


def main() -> None:
    """Parse the arguments and run."""
    parser = argparse.ArgumentParser(description='Labelling work chain: core utilisation with real pw.x.')
    parser.add_argument('--frames', type=int, default=16, help='rattled 8-atom cells to label')
    parser.add_argument('--max-concurrent', type=int, default=None, help='slots (default: what fits the machine)')
    parser.add_argument('--profile', type=Path, default=None, help='write cProfile statistics of the run here')
    parser.add_argument('--daemon', type=int, default=0, help='run in a daemon of this many workers (ZeroMQ broker)')
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        (load_zeromq_profile if args.daemon else load_throwaway_profile)(Path(folder))
        profiler = cProfile.Profile() if args.profile else None
        if profiler:
            profiler.enable()
        label(args.frames, args.max_concurrent, args.daemon)
        if profiler:
            profiler.disable()
            profiler.dump_stats(args.profile)


if __name__ == '__main__':
    main()
