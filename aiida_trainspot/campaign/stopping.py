"""When a campaign stops, and why (pure, no AiiDA).

After each committee is trained and evaluated the campaign stops, in this order of precedence, when every RMSE
target is met (``accuracy_target``), when ``max_iterations`` explore → select → label cycles are done
(``max_iterations``), or when the label budget is spent (``label_budget``); after a selection, when no explored
frame is above the thresholds (``no_uncertain_frames``). The last committee was then trained on the whole dataset:
it is the campaign's final committee.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

STOP_REASONS = {
    'accuracy_target': 'every RMSE target is met',
    'max_iterations': 'the maximum number of iterations is done',
    'label_budget': 'the label budget is spent',
    'no_uncertain_frames': 'no explored frame is above the thresholds',
    'training_failed': 'the committee could not be trained (see the report)',
    'labelling_failed': 'the labelling failed (see the report)',
    'exploration_failed': 'no MD run of the exploration wrote a frame (see the report)',
    'desired_accuracy': 'parallel loop: the mean validation force MAE of the members reached `desired_accuracy`',
    'max_md_steps': 'parallel loop: every trajectory ran `max_md_steps` (or was abandoned)',
    'max_train_set_size': 'parallel loop: the training set reached `max_train_set_size`',
    'nothing_to_run': 'parallel loop: no trajectory could go on (see the report)',
    'parallel_failed': 'the parallel loop failed (see the report)',
}
"""Every reason a campaign stops for, and what it means."""


def targets_met(targets: Mapping[str, float] | None, errors: Mapping[str, float | None]) -> bool:
    """Return whether every target (``energy``/``forces``/``stress`` → RMSE) is met by ``errors`` (``<name>_rmse``).

    No targets are never met; a target whose error is missing or not finite (e.g. no frame in the split) is not met.
    """
    if not targets:
        return False
    for name, target in targets.items():
        error = errors.get(f'{name}_rmse')
        if error is None or not math.isfinite(error) or error > target:
            return False
    return True


def labels_left(budget: int | None, labelled: int) -> int | None:
    """Return how many more frames the budget allows (``None``: no budget)."""
    return None if budget is None else max(budget - labelled, 0)


def stop_after_evaluation(
    iteration: int,
    max_iterations: int,
    budget: int | None,
    labelled: int,
    targets: Mapping[str, float] | None,
    errors: Mapping[str, float | None],
) -> str | None:
    """Return why the campaign stops after the committee of ``iteration`` (0-based) was evaluated, or ``None``."""
    if targets_met(targets, errors):
        return 'accuracy_target'
    if iteration >= max_iterations:
        return 'max_iterations'
    if labels_left(budget, labelled) == 0:
        return 'label_budget'
    return None


def selection_cap(max_selected: int, budget: int | None, labelled: int) -> int:
    """Return how many frames the next selection may take: ``max_selected``, within what the budget leaves."""
    left = labels_left(budget, labelled)
    return max_selected if left is None else min(max_selected, left)
