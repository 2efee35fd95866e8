"""Which members keep their optimizer across training chunks, against hand-written sequences (no AiiDA)."""

import json
import math

import numpy as np
import pytest

from aiida_trainspot.pax.optimizer import RESET, RESUME, member_optimizer_states, saved_valid_loss


def run_sequence(losses, patience):
    """Return the actions and states of one member fed ``losses`` chunk after chunk."""
    state, actions, states = {}, [], []
    for loss in losses:
        state, action = member_optimizer_states(state, {'member_0': loss}, patience)
        actions.append(action['member_0'])
        states.append(dict(state['member_0']))
    return actions, states


def test_a_member_that_keeps_improving_always_resumes():
    actions, states = run_sequence([5.0, 4.0, 3.0, 2.5, 2.4], patience=0)
    assert actions == [RESUME] * 5
    assert states[-1] == {'best': 2.4, 'stale': 0}


def test_reset_after_more_than_patience_chunks_without_improvement():
    actions, states = run_sequence([5.0, 6.0, 5.0, 7.0, 4.0, 4.5], patience=2)
    # 5.0 best; 6.0 stale 1; 5.0 (equal is no improvement) stale 2; 7.0 stale 3 > 2: reset; 4.0 improves; 4.5 stale 1
    assert actions == [RESUME, RESUME, RESUME, RESET, RESUME, RESUME]
    assert [state['stale'] for state in states] == [0, 1, 2, 0, 0, 1]
    assert [state['best'] for state in states] == [5.0, 5.0, 5.0, 5.0, 4.0, 4.0]


def test_an_improvement_sets_the_count_back_unlike_aims_pax():
    # aims-PAX counts the stale chunks over the whole run: 6.0, 6.0, 6.0 would reach 3 > 2 and reset at the last one
    actions, states = run_sequence([5.0, 6.0, 6.0, 4.0, 6.0, 6.0], patience=2)
    assert actions == [RESUME] * 6
    assert states[-1] == {'best': 4.0, 'stale': 2}


def test_patience_zero_resets_at_every_chunk_without_improvement():
    actions, _ = run_sequence([3.0, 3.0, 2.0, 2.5, 2.5], patience=0)
    assert actions == [RESUME, RESET, RESUME, RESET, RESET]


def test_non_finite_losses_never_improve():
    actions, states = run_sequence([math.nan, math.inf, 3.0, math.nan], patience=1)
    assert actions == [RESUME, RESET, RESUME, RESUME]
    assert states[0] == {'best': None, 'stale': 1} and states[-1] == {'best': 3.0, 'stale': 1}


def test_members_are_independent_and_a_missing_one_keeps_its_state():
    state = {'member_0': {'best': 1.0, 'stale': 2}, 'member_1': {'best': 1.0, 'stale': 2}}
    new_state, actions = member_optimizer_states(state, {'member_1': 0.5, 'member_2': 9.0}, patience=2)
    assert actions == {'member_1': RESUME, 'member_2': RESUME}, 'member_0 failed this chunk: no action'
    assert new_state['member_0'] == {'best': 1.0, 'stale': 2}
    assert new_state['member_1'] == {'best': 0.5, 'stale': 0}
    assert new_state['member_2'] == {'best': 9.0, 'stale': 0}
    assert state['member_1'] == {'best': 1.0, 'stale': 2}, 'the previous state is not changed'
    assert json.loads(json.dumps(new_state)) == new_state


@pytest.mark.parametrize(
    ('state', 'patience', 'message'),
    [
        ({}, -1, '`patience` must be an integer of at least 0'),
        ({}, 1.5, '`patience` must be an integer of at least 0'),
        ({'member_0': {'best': 1.0, 'stale': -1}}, 1, '`stale` must be an integer'),
        ({'member_0': {'best': math.nan, 'stale': 0}}, 1, '`best` must be a finite number'),
    ],
)
def test_invalid_state_or_patience_is_refused(state, patience, message):
    with pytest.raises(ValueError, match=message):
        member_optimizer_states(state, {'member_0': 1.0}, patience)


def test_saved_valid_loss_is_that_of_the_best_epoch_not_the_lowest():
    # a resumed run: rows 0-2 come from the chunk before (other validation frames), 2-3 of the resumed run replace it
    epochs = np.array([0, 1, 2, 3])
    losses = np.array([9.0, 0.5, 3.0, 2.0])
    assert saved_valid_loss(epochs, losses, 3) == 2.0
    assert saved_valid_loss(epochs, losses, 2) == 3.0
    assert math.isnan(saved_valid_loss(epochs, losses, 7))
