"""The discrete-event simulation of the parallel (aims-PAX) and batch policies, against makespans worked by hand."""

import dataclasses
import itertools
import math

import pytest

from aiida_trainspot.pax.simulate import (
    PolicySettings,
    TaskDurations,
    max_concurrency,
    parallel_efficiency,
    simulate_batch,
    simulate_parallel,
)

pytestmark = pytest.mark.kernel

DFT_KINDS = ('dft', 'dft_failed')
T_MD, T_DFT, T_TRAIN = 1.0, 10.0, 3.0
DURATIONS = TaskDurations(T_MD, T_DFT, T_TRAIN)


def settings(**kwargs) -> PolicySettings:
    """Return one trajectory, one DFT worker, a crossing every segment, no failures, unless ``kwargs`` say otherwise."""
    return PolicySettings(**{'num_trajectories': 1, 'dft_workers': 1, 'label_budget': 10, **kwargs})


def intervals(result, kinds) -> list[tuple[float, float]]:
    return [(start, end) for start, end, kind, _ in result.log if kind in kinds]


def test_one_trajectory_alternates_md_and_dft():
    result = simulate_parallel(DURATIONS, settings(label_budget=10, valid_ratio=0.0))
    # Label n arrives at n·(t_md + t_dft); the last one (a training label) is trained on until + t_train.
    assert result.last_label_time == 10 * (T_MD + T_DFT)
    assert result.makespan == 10 * (T_MD + T_DFT) + T_TRAIN
    assert (result.labels, result.train_labels, result.valid_labels) == (10, 10, 0)
    assert result.segments == 10
    assert result.training_chunks == 10
    assert intervals(result, ('dft',))[:2] == [(1.0, 11.0), (12.0, 22.0)]
    assert result.busy == {'md': 10 * T_MD, 'dft': 10 * T_DFT, 'training': 10 * T_TRAIN}
    assert result.utilisation['dft'] == pytest.approx(100.0 / 113.0)
    assert result.utilisation['training'] == pytest.approx(30.0 / 113.0)


def test_makespan_ends_at_the_last_label_when_it_goes_to_validation():
    # valid_ratio 0.1: labels 2 and 12 go to validation (0 < 0.1·1, 1 < 0.1·11), so the 12th is not trained on.
    result = simulate_parallel(DURATIONS, settings(label_budget=12, valid_ratio=0.1))
    assert (result.train_labels, result.valid_labels) == (10, 2)
    assert result.makespan == result.last_label_time == 12 * (T_MD + T_DFT)
    assert result.training_chunks == 10  # validation labels do not start training


def test_training_overlaps_exploration_and_coalesces_labels():
    durations = TaskDurations(T_MD, T_DFT, t_train=25.0)
    result = simulate_parallel(durations, settings(label_budget=10, valid_ratio=0.0))
    # Labels every 11: the chunk started at 11 ends at 36, labels 22 and 33 share the next one, and so on.
    chunks = intervals(result, ('train',))
    assert chunks == [(11.0, 36.0), (36.0, 61.0), (61.0, 86.0), (86.0, 111.0), (111.0, 136.0)]
    assert result.last_label_time == 110.0  # MD and DFT never wait for training
    assert result.makespan == 136.0  # the chunk started at 111 includes the 10th label (110)


def test_two_trajectories_on_two_workers_halve_the_time():
    one = simulate_parallel(DURATIONS, settings(label_budget=10))
    two = simulate_parallel(DURATIONS, settings(label_budget=10, num_trajectories=2, dft_workers=2))
    assert two.last_label_time == one.last_label_time / 2 == 55.0
    # Labels arrive in pairs; the pair at 55 shares one chunk.
    assert two.makespan == 55.0 + T_TRAIN
    assert two.training_chunks == 5


def test_more_trajectories_keep_a_single_dft_worker_busy():
    result = simulate_parallel(DURATIONS, settings(label_budget=10, num_trajectories=4))
    # The DFT queue never empties after the first segment: labels at t_md + n·t_dft.
    assert result.last_label_time == T_MD + 10 * T_DFT
    assert result.makespan == T_MD + 10 * T_DFT + T_TRAIN
    assert intervals(result, ('dft',))[-1] == (91.0, 101.0)


def test_fewer_md_slots_than_trajectories_queue_segments():
    result = simulate_parallel(DURATIONS, settings(label_budget=4, num_trajectories=2, dft_workers=2, md_workers=1))
    # Trajectory 1 gets the MD slot after trajectory 0: segments [0, 1] and [1, 2], labels at 11, 12, 22, 23.
    assert result.last_label_time == 23.0
    assert [(s, e, t) for s, e, kind, t in result.log if kind == 'md'][:2] == [(0.0, 1.0, 0), (1.0, 2.0, 1)]
    assert max_concurrency(result.log, ['md']) == 1


@pytest.mark.parametrize(
    ('md_workers', 'dft_workers', 'expected'),
    [
        # Iteration: every trajectory runs 2 segments, 4 frames are labelled, one chunk; 10 labels = 4 + 4 + 2.
        (None, 1, 2 * (2 + 40 + 3) + (2 + 20 + 3)),
        (None, 2, 2 * (2 + 20 + 3) + (2 + 10 + 3)),
        # Two MD slots for four trajectories: exploration takes 4 segment lengths.
        (2, 1, 2 * (4 + 40 + 3) + (4 + 20 + 3)),
    ],
)
def test_batch_makespan(md_workers, dft_workers, expected):
    result = simulate_batch(
        DURATIONS,
        settings(num_trajectories=4, dft_workers=dft_workers, md_workers=md_workers, crossing_every=2),
    )
    assert result.makespan == expected
    assert result.iterations == result.training_chunks == 3
    assert result.labels == 10
    assert result.segments == 3 * 4 * 2


def test_batch_stages_never_overlap():
    result = simulate_batch(
        TaskDurations(2.0, [5.0, 9.0, 13.0], 4.0),
        settings(num_trajectories=5, dft_workers=2, p_cross=0.4, p_fail=0.2, label_budget=23, seed=3),
    )
    md, dft, train = intervals(result, ('md',)), intervals(result, DFT_KINDS), intervals(result, ('train',))
    for (a, b), (c, d) in itertools.chain(
        itertools.product(md, dft), itertools.product(md, train), itertools.product(dft, train)
    ):
        assert b <= c or d <= a
    assert result.makespan == train[-1][1]
    assert result.labels == 23


def test_parallel_beats_batch_on_the_same_durations():
    setting = settings(num_trajectories=4, dft_workers=4, crossing_every=2, label_budget=40)
    parallel, batch = simulate_parallel(DURATIONS, setting), simulate_batch(DURATIONS, setting)
    # Batch: 10 iterations of 2 + 10 + 3. Parallel: each trajectory labels every 12, training overlaps.
    assert batch.makespan == 10 * 15.0
    assert parallel.makespan == 10 * 12.0 + T_TRAIN


def test_validation_routing_follows_the_aims_pax_rule():
    # valid_ratio 0.25: validation while n_valid < 0.25·n_labelled_before → labels 2, 6, 10 go to validation.
    for budget, valid in [(1, 0), (2, 1), (5, 1), (6, 2), (9, 2), (10, 3)]:
        result = simulate_parallel(DURATIONS, settings(label_budget=budget, valid_ratio=0.25))
        assert (result.train_labels, result.valid_labels) == (budget - valid, valid)
    batch = simulate_batch(DURATIONS, settings(num_trajectories=3, label_budget=10, valid_ratio=0.25))
    assert (batch.train_labels, batch.valid_labels) == (7, 3)


def test_failures_send_the_trajectory_back_to_its_checkpoint():
    every = 3
    clean = simulate_parallel(DURATIONS, settings(crossing_every=every, label_budget=20, seed=5))
    failing = simulate_parallel(DURATIONS, settings(crossing_every=every, p_fail=0.3, label_budget=20, seed=5))
    assert failing.failures > 0
    assert failing.labels == 20
    attempts = failing.labels + failing.failures
    # Every DFT job, failed or not, follows `every` fresh segments: a failure costs a whole new approach.
    assert failing.segments == every * attempts
    assert failing.last_label_time == attempts * (every * T_MD + T_DFT)
    assert clean.last_label_time == 20 * (every * T_MD + T_DFT)
    assert sum(kind == 'dft_failed' for _, _, kind, _ in failing.log) == failing.failures


def test_failures_in_batch_cost_extra_iterations():
    result = simulate_batch(DURATIONS, settings(num_trajectories=4, p_fail=0.3, label_budget=20, seed=2))
    assert result.failures > 0
    assert result.labels == 20
    assert result.iterations > 5
    assert sum(kind == 'dft' for _, _, kind, _ in result.log) == 20


def test_overhead_is_added_to_every_task():
    result = simulate_parallel(TaskDurations(T_MD, T_DFT, T_TRAIN, overhead=0.5), settings(valid_ratio=0.0))
    assert result.last_label_time == 10 * (T_MD + T_DFT + 1.0)
    assert result.makespan == result.last_label_time + T_TRAIN + 0.5


def test_dft_durations_are_drawn_from_the_list():
    result = simulate_parallel(TaskDurations(T_MD, [5.0, 20.0], T_TRAIN), settings(label_budget=30, seed=1))
    lengths = [end - start for start, end in intervals(result, ('dft',))]
    assert set(lengths) == {5.0, 20.0}
    assert result.last_label_time == 30 * T_MD + sum(lengths)


@pytest.mark.parametrize('simulate', [simulate_parallel, simulate_batch])
def test_seeded_runs_are_reproducible(simulate):
    durations = TaskDurations(2.0, [5.0, 9.0, 13.0], 4.0)
    setting = settings(num_trajectories=6, dft_workers=3, p_cross=0.3, p_fail=0.2, label_budget=40, seed=11)
    first, again = simulate(durations, setting), simulate(durations, setting)
    other = simulate(durations, dataclasses.replace(setting, seed=12))
    assert first.log == again.log
    assert first.makespan == again.makespan
    assert first.log != other.log


@pytest.mark.parametrize('md_workers', [None, 5])
def test_resources_are_never_oversubscribed(md_workers):
    durations = TaskDurations(2.0, [5.0, 9.0, 13.0], 4.0, overhead=0.1)
    setting = settings(num_trajectories=8, dft_workers=3, md_workers=md_workers, p_cross=0.4, p_fail=0.2)
    result = simulate_parallel(durations, dataclasses.replace(setting, label_budget=60, seed=4))
    assert max_concurrency(result.log, DFT_KINDS) == 3  # reaches W, never exceeds it
    assert max_concurrency(result.log, ['md']) == (md_workers or 8)
    assert max_concurrency(result.log, ['train']) == 1
    for trajectory in range(8):
        assert max_concurrency(result.log, ('md', *DFT_KINDS), trajectory=trajectory) == 1
    assert result.labels == 60
    # Work in flight at the last label is cut there; only training goes on.
    assert all(end <= result.last_label_time for _, end, kind, _ in result.log if kind != 'train')


def test_the_budget_is_never_exceeded_by_simultaneous_labels():
    result = simulate_parallel(DURATIONS, settings(num_trajectories=4, dft_workers=4, label_budget=2))
    assert result.labels == 2
    assert result.last_label_time == 11.0


def test_max_concurrency_on_a_hand_log():
    log = [(0.0, 2.0, 'dft', 0), (1.0, 3.0, 'dft', 1), (2.0, 4.0, 'dft_failed', 0), (1.5, 1.5, 'dft', 2)]
    assert max_concurrency(log, DFT_KINDS) == 2  # half-open: [0, 2) and [2, 4) do not overlap
    assert max_concurrency(log, DFT_KINDS, trajectory=0) == 1
    assert max_concurrency(log, ['md']) == 0


def test_strong_scaling_is_ideal_when_dft_is_all_that_costs():
    durations = TaskDurations(0.0, 10.0, 0.0)
    points = parallel_efficiency(durations, settings(label_budget=32))
    assert [p.workers for p in points] == [1, 2, 4, 8, 16, 32]
    assert [p.trajectories for p in points] == [2, 4, 8, 16, 32, 64]
    assert [p.makespan for p in points] == [320.0 / w for w in (1, 2, 4, 8, 16, 32)]
    assert all(p.speedup == pytest.approx(p.workers) and p.efficiency == pytest.approx(1.0) for p in points)


def test_strong_scaling_saturates_with_a_fixed_number_of_trajectories():
    durations = TaskDurations(0.0, 10.0, 0.0)
    points = parallel_efficiency(
        durations, settings(num_trajectories=4, label_budget=32), workers=(2, 8), trajectories_per_worker=None
    )
    # Only 4 frames can be in flight: 8 workers do no better than 4 (aims-PAX Fig. 3 flattening).
    assert [(p.trajectories, p.makespan, p.speedup, p.efficiency) for p in points] == [
        (4, 160.0, 2.0, 1.0),
        (4, 80.0, 4.0, 0.5),
    ]


def test_batch_scaling_and_repeats():
    durations = TaskDurations(1.0, 10.0, 3.0)
    points = parallel_efficiency(durations, settings(label_budget=8), workers=(1, 4), policy='batch', repeats=2)
    # W = 1, M = 2: 4 iterations of 1 + 20 + 3; W = 4, M = 8: one iteration of 1 + 20 + 3.
    assert [p.makespan for p in points] == [96.0, 24.0]
    assert points[1].speedup == 4.0


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'num_trajectories': 0}, '`num_trajectories` must be an integer >= 1'),
        ({'dft_workers': 0}, '`dft_workers` must be an integer >= 1'),
        ({'md_workers': 0}, '`md_workers` must be an integer >= 1'),
        ({'dft_workers': 1.5}, '`dft_workers` must be an integer'),
        ({'label_budget': 0}, '`label_budget` must be an integer >= 1'),
        ({'valid_ratio': 1.0}, r'`valid_ratio` must lie in \[0, 1\)'),
        ({'valid_ratio': -0.1}, r'`valid_ratio` must lie in \[0, 1\)'),
        ({'p_cross': 1.5}, r'`p_cross` must lie in \(0, 1\]'),
        ({'p_cross': 0.0}, 'no segment would ever cross'),
        ({'p_fail': -0.2}, r'`p_fail` must lie in \[0, 1\)'),
        ({'p_fail': 1.0}, 'no label would ever arrive'),
        ({'p_fail': math.nan}, '`p_fail` must lie'),
        ({'p_cross': 0.5, 'crossing_every': 2}, 'only one of `p_cross` and `crossing_every`'),
        ({'crossing_every': 0}, '`crossing_every` must be an integer >= 1'),
        ({'seed': -1}, '`seed` must be an integer >= 0'),
    ],
)
def test_bad_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PolicySettings(**kwargs)


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'t_md': -1.0}, '`t_md` must be a finite duration >= 0'),
        ({'t_dft': -5.0}, '`t_dft` must be a finite duration >= 0'),
        ({'t_dft': [1.0, -2.0]}, '`t_dft` must be a finite duration >= 0'),
        ({'t_dft': []}, '`t_dft` must not be an empty list'),
        ({'t_dft': 'slow'}, '`t_dft` must be a duration or a list'),
        ({'t_train': math.inf}, '`t_train` must be a finite duration'),
        ({'overhead': -0.1}, '`overhead` must be a finite duration >= 0'),
    ],
)
def test_bad_durations_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TaskDurations(**{'t_md': 1.0, 't_dft': 1.0, 't_train': 1.0, **kwargs})


@pytest.mark.parametrize(
    ('kwargs', 'message'),
    [
        ({'policy': 'serial'}, "`policy` must be 'parallel' or 'batch'"),
        ({'repeats': 0}, '`repeats` must be an integer >= 1'),
        ({'workers': (1, 0)}, '`workers` must be an integer >= 1'),
        ({'trajectories_per_worker': 0}, '`trajectories_per_worker` must be an integer >= 1 or None'),
    ],
)
def test_bad_scaling_arguments_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        parallel_efficiency(DURATIONS, settings(), **kwargs)
