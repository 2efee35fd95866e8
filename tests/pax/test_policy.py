"""The decisions of the parallel loop against hand-written references (no AiiDA)."""

import math
import re

import numpy as np
import pytest

from aiida_trainspot.pax import policy
from aiida_trainspot.pax.settings import DEFAULTS, full_settings, settings_error
from aiida_trainspot.runners.md_spec import validate_md_spec
from aiida_trainspot.uncertainty.threshold import moving_average_thresholds


def eq2_reference(values, window, c_x, warmup):
    """Return seed 000 Eq. 2 after each value, written out with a plain loop."""
    thresholds = []
    for count in range(1, len(values) + 1):
        recent = values[max(0, count - window) : count]
        thresholds.append(math.inf if count <= warmup else (1 + c_x) * sum(recent) / len(recent))
    return thresholds


def test_routing_follows_the_aims_pax_rule():
    routes, valid, total = [], 0, 0
    for _ in range(30):
        split = policy.route_point(valid, total, 0.1)
        routes.append(split)
        valid += split == 'valid'
        total += 1
    assert routes[0] == 'train', 'the first frame trains'
    assert routes[1] == 'valid', '0 < 0.1 × 1: the second frame validates'
    assert valid == 3 and routes.count('train') == 27
    assert policy.route_point(5, 10, 0.5) == 'train' and policy.route_point(4, 10, 0.5) == 'valid'


def test_threshold_state_in_chunks_equals_eq2_and_the_kernel():
    rng = np.random.default_rng(7)
    values = rng.uniform(0.01, 0.4, size=57).tolist()
    settings = full_settings({'threshold_window': 8, 'c_x': 0.2, 'threshold_warmup': 5, 'label_budget': 1})
    state, seen = policy.new_threshold_state(settings), []
    for chunk in np.array_split(np.array(values), 9):  # segments report their checks in chunks
        state = policy.update_threshold(state, chunk.tolist(), training_set_size=0)
        seen.append(math.inf if state['threshold'] is None else state['threshold'])
    ends = np.cumsum([len(chunk) for chunk in np.array_split(np.array(values), 9)]) - 1
    reference = eq2_reference(values, 8, 0.2, 5)
    assert seen == pytest.approx([reference[end] for end in ends])
    assert seen == pytest.approx(moving_average_thresholds(np.array(values), 8, 0.2, 5)[ends].tolist())
    assert len(state['recent']) == 8 and state['num_values'] == 57


def test_threshold_is_inactive_during_warmup_and_freezes():
    settings = full_settings({'threshold_warmup': 3, 'freeze_threshold_dataset': 10, 'label_budget': 1})
    state = policy.update_threshold(policy.new_threshold_state(settings), [0.1, 0.2, 0.3], 0)
    assert state['threshold'] is None, 'not active until more than `warmup` checks'
    state = policy.update_threshold(state, [0.4], training_set_size=10)
    assert state['threshold'] == pytest.approx(0.25) and state['frozen']
    state = policy.update_threshold(state, [5.0, 5.0], training_set_size=11)
    assert state['threshold'] == pytest.approx(0.25), 'frozen: later checks do not move it'


def test_segment_spec_checks_and_keeps_a_frame_at_every_check():
    settings = full_settings({'segment_steps': 40, 'check_every': 5, 'label_budget': 1})
    state = policy.new_threshold_state(settings)
    spec = policy.segment_spec({'temperature': 500.0}, settings, state, 12, seed=11, iteration=2)
    assert spec == {
        'temperature': 500.0, 'steps': 40, 'stride': 5, 'thermalisation': 0, 'seed': 11, 'iteration': 2,
        'uncertainty_stop': {'moving_average': state, 'training_set_size': 12, 'every': 5},
    }  # fmt: skip
    assert validate_md_spec(spec, 2)['uncertainty_stop']['moving_average'] == state, 'the runner takes it'
    seeds = {policy.segment_seed(4, trajectory, segment) for trajectory in range(8) for segment in range(1000)}
    assert len(seeds) == 8000


@pytest.mark.parametrize(
    ('counts', 'reason'),
    [
        ({'labelled': 6}, 'label_budget'),
        ({'train': 40}, 'max_train_set_size'),
        ({'valid_mae': 0.04}, 'desired_accuracy'),
        ({'trajectories_done': 4}, 'max_md_steps'),
        ({'training_failures': 2, 'labelled': 6}, 'training_failed'),
        ({'valid_mae': 0.06, 'trajectories_done': 3, 'training_failures': 1}, None),
    ],
)
def test_stop_reasons(counts, reason):
    settings = full_settings(
        {'label_budget': 6, 'max_train_set_size': 40, 'desired_accuracy': 0.05, 'max_md_steps': 100}
    )
    base = {'labelled': 0, 'train': 0, 'valid_mae': None, 'trajectories_done': 0}
    assert policy.stop_reason(settings, {**base, **counts}) == reason


@pytest.mark.parametrize(
    ('labelled', 'pending', 'left'), [(0, 0, 6), (3, 2, 1), (4, 2, 0), (5, 3, 0), (6, 0, 0), (2, 0, 4)]
)
def test_open_labels_count_the_pending_frames(labelled, pending, left):
    """No more frames go to DFT than the budget leaves once the labelled and pending ones are counted."""
    assert policy.open_labels(full_settings({'label_budget': 6}), labelled, pending) == left


def test_without_a_budget_labels_are_open():
    assert policy.open_labels(full_settings({'max_md_steps': 100}), 1000, 1000) == math.inf


def test_validation_errors_in_ev_and_the_best_member():
    errors = {
        'member_0': {'valid': {'forces_mae': 80.0}, 'units': {'forces': 'meV/Å'}},
        'member_1': {'valid': {'forces_mae': 60.0}, 'units': {'forces': 'meV/Å'}},
        'member_2': {'valid': {}},
    }
    assert policy.best_member(errors) == 'member_1'
    assert policy.best_member({'member_0': {}}) is None


@pytest.mark.parametrize(
    ('settings', 'message'),
    [
        ({'threshold_window': 0}, r'`threshold_window` must be a positive integer, got 0'),
        ({'c_x': -1.0}, r'`c_x` must be a number greater than -1'),
        ({'valid_ratio': 1.0}, r'`valid_ratio` must lie strictly between 0 and 1, got 1.0'),
        ({'valid_ratio': 0}, r'`valid_ratio` must lie strictly between 0 and 1'),
        ({'segment_steps': 30, 'check_every': 25}, r'`segment_steps` \(30\) must be a multiple of `check_every`'),
        ({'max_dft_workers': 0}, r'`max_dft_workers` must be a positive integer or null'),
        ({'desired_accuracy': -0.1}, r'`desired_accuracy` must be a positive force MAE'),
        ({'freeze_threshold_dataset': -1}, r'`freeze_threshold_dataset` must be a non-negative number'),
        ({'window': 4}, r"unknown fields \['window'\]"),
    ],
)
def test_bad_settings_are_named(settings, message):
    assert re.search(message, settings_error({'label_budget': 10, **settings}))


def test_a_stopping_criterion_is_required_and_defaults_fill_the_rest():
    assert re.search('at least one stopping criterion', settings_error({}))
    assert settings_error({'max_md_steps': 100}) is None
    assert set(full_settings({'max_md_steps': 1})) == set(DEFAULTS)
