"""Parallel (aims-PAX) against batch (TrainsPot) scheduling: makespan and strong scaling over the DFT workers.

    python benchmarks/pax_vs_batch.py [--simulate] [--t-md 60 --t-dft 1200 --t-train 300 | --durations FILE]
                                      [--budget 200] [--p-cross 0.5 | --crossing-every K] [--p-fail 0.0]
    python benchmarks/pax_vs_batch.py --real [--iterations 2 --selected 4 --epochs 8 --chunk-epochs 2]
                                      [--real-trajectories 4] [--real-md-workers 1] [--real-niceness 10]
                                      [--no-batch]
                                      [--write-durations FILE] [--write-timeline FILE]

``--simulate`` (the default) runs the discrete-event simulation of :mod:`aiida_trainspot.pax.simulate` for
W = 1, 2, 4, …, 32 DFT workers with ``--trajectories-per-worker`` trajectories per worker (default 2; 0 keeps
``--trajectories`` fixed, as aims-PAX Fig. 3 does with 32) and a fixed label budget (strong scaling). Durations come
from the command line or from a JSON file of measured durations (keys ``t_md``, ``t_dft``, ``t_train``, optional
``overhead``; ``t_dft`` may be a list to draw from), in any one time unit. It prints per W the makespan of both
policies (the later of the last label and the end of the training that includes it), their ratio batch/parallel
(> 1: the parallel policy is faster) and the parallel efficiency T(1)/(W·T(W)) of both. Makespans are means over
``--repeats`` seeds. The defaults mimic the perovskite of aims-PAX Fig. 3 (a DFT job of 20 min), in seconds.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from aiida_trainspot.pax.simulate import PolicySettings, TaskDurations, parallel_efficiency

WORKERS = (1, 2, 4, 8, 16, 32)


def load_durations(args: argparse.Namespace) -> TaskDurations:
    """Return the durations of ``--durations FILE`` if given, else those of ``--t-md``, ``--t-dft``, ``--t-train``."""
    if args.durations is None:
        t_dft = args.t_dft[0] if len(args.t_dft) == 1 else args.t_dft
        return TaskDurations(args.t_md, t_dft, args.t_train, args.overhead)
    measured = json.loads(Path(args.durations).read_text())
    missing = {'t_md', 't_dft', 't_train'} - set(measured)
    if missing:
        raise SystemExit(f'{args.durations}: missing keys {sorted(missing)} (need t_md, t_dft, t_train)')
    return TaskDurations(
        measured['t_md'], measured['t_dft'], measured['t_train'], measured.get('overhead', args.overhead)
    )


def base_settings(args: argparse.Namespace) -> PolicySettings:
    """Return the policy settings of the command line (workers and trajectories are set per row)."""
    crossing = {'crossing_every': args.crossing_every} if args.crossing_every else {'p_cross': args.p_cross}
    return PolicySettings(
        num_trajectories=args.trajectories,
        md_workers=args.md_workers,
        valid_ratio=args.valid_ratio,
        p_fail=args.p_fail,
        label_budget=args.budget,
        seed=args.seed,
        **crossing,
    )


def simulate(args: argparse.Namespace) -> None:
    """Print the table of makespans, ratios and efficiencies for W = 1 … 32."""
    durations, settings = load_durations(args), base_settings(args)
    per_worker = args.trajectories_per_worker or None
    common = {'workers': WORKERS, 'trajectories_per_worker': per_worker, 'repeats': args.repeats}
    parallel = parallel_efficiency(durations, settings, policy='parallel', **common)
    batch = parallel_efficiency(durations, settings, policy='batch', **common)
    crossing = f'every {args.crossing_every} segments' if args.crossing_every else f'p_cross {args.p_cross}'
    print(f'durations: {durations}')
    print(
        f'label budget {args.budget}, {crossing}, p_fail {args.p_fail}, valid_ratio {args.valid_ratio}, '
        f'MD slots {args.md_workers or "one per trajectory"}, mean of {args.repeats} seed(s) from {args.seed}'
    )
    header = f'{"W":>3} {"M":>4} {"parallel":>12} {"batch":>12} {"batch/par":>10} {"eff par":>8} {"eff batch":>10}'
    print(header)
    print('-' * len(header))
    for fast, slow in zip(parallel, batch, strict=True):
        print(
            f'{fast.workers:>3} {fast.trajectories:>4} {fast.makespan:>12.1f} {slow.makespan:>12.1f} '
            f'{slow.makespan / fast.makespan:>10.2f} {fast.efficiency:>8.2f} {slow.efficiency:>10.2f}'
        )


def parse_arguments(argv: list[str] | None = None) -> argparse.Namespace:
    """Return the parsed command line."""
    parser = argparse.ArgumentParser(description='Parallel (aims-PAX) vs batch scheduling: makespans and scaling.')
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument('--simulate', action='store_true', help='simulate the two policies (the default)')
    mode.add_argument('--real', action='store_true', help='run real campaigns (see run_real_campaigns)')
    parser.add_argument('--t-md', type=float, default=60.0, help='duration of one MD segment')
    parser.add_argument('--t-dft', type=float, nargs='+', default=[1200.0], help='DFT duration(s); several: drawn')
    parser.add_argument('--t-train', type=float, default=300.0, help='duration of one training chunk')
    parser.add_argument('--overhead', type=float, default=0.0, help='per-task overhead (submission, parsing)')
    parser.add_argument('--durations', type=Path, default=None, help='JSON file with t_md, t_dft, t_train')
    parser.add_argument('--budget', type=int, default=200, help='label budget (fixed: strong scaling)')
    parser.add_argument('--trajectories-per-worker', type=int, default=2, help='M = this × W; 0 keeps M fixed')
    parser.add_argument('--trajectories', type=int, default=32, help='M when --trajectories-per-worker is 0')
    parser.add_argument('--md-workers', type=int, default=None, help='MD slots (default: one per trajectory)')
    crossing = parser.add_mutually_exclusive_group()
    crossing.add_argument('--p-cross', type=float, default=0.5, help='probability that a segment crosses')
    crossing.add_argument('--crossing-every', type=int, default=None, help='every k-th segment crosses instead')
    parser.add_argument('--p-fail', type=float, default=0.0, help='probability that a DFT job fails')
    parser.add_argument('--valid-ratio', type=float, default=0.1, help='aims-PAX validation ratio')
    parser.add_argument('--seed', type=int, default=0, help='first seed')
    parser.add_argument('--repeats', type=int, default=5, help='seeds to average the makespans over')
    real = parser.add_argument_group('real campaigns (--real, see benchmarks/pax_real.py)')
    real.add_argument('--start-frames', type=int, default=6, help='labelled diamond cells the campaigns start from')
    real.add_argument('--iterations', type=int, default=2, help='batch iterations; label budget = this x selected')
    real.add_argument('--selected', type=int, default=4, help='frames labelled per batch iteration')
    real.add_argument('--epochs', type=int, default=8, help='epochs per training of the batch loop')
    real.add_argument('--chunk-epochs', type=int, default=2, help='epochs per training chunk of the parallel loop')
    real.add_argument('--real-trajectories', type=int, default=4, help='trajectories of the parallel loop')
    real.add_argument('--real-md-workers', type=int, default=1, help='MD segments at once (0: one per trajectory)')
    real.add_argument('--real-niceness', type=int, default=None, help="niceness of MD and training (default: setup's)")
    real.add_argument('--no-batch', dest='batch', action='store_false', help='run the parallel campaign only')
    real.add_argument('--write-durations', type=Path, default=None, help='write the measured mean durations here')
    real.add_argument('--write-timeline', type=Path, default=None, help='write (kind, start, end) of every job here')
    return parser.parse_args(argv)


def main() -> None:
    """Parse the arguments and run."""
    args = parse_arguments()
    if args.real:
        from pax_real import run_real_campaigns

        run_real_campaigns(args)
    else:
        simulate(args)


if __name__ == '__main__':
    main()
