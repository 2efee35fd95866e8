"""The decisions of the parallel (aims-PAX) loop, pure (no AiiDA): routing, the shared threshold, segments, stops.

The work chain keeps its state as JSON in its context; these functions take and return that JSON, so every decision
is tested without AiiDA and survives a daemon restart (the context is checkpointed).
"""

from __future__ import annotations

import math
from typing import Any

from ..campaign.initial_dataset import member_force_mae
from ..uncertainty.threshold import MovingAverageThreshold

SPLITS = ('train', 'valid')


def route_point(num_valid: int, num_labelled: int, valid_ratio: float) -> str:
    """Return where a new labelled frame goes: ``valid`` while validation holds fewer than ``valid_ratio`` of them.

    ``num_labelled`` counts the train and validation frames before this one (aims-PAX: the first frame trains).
    """
    return 'valid' if num_valid < valid_ratio * num_labelled else 'train'


def new_threshold_state(settings: dict[str, Any]) -> dict[str, Any]:
    """Return the JSON state of a fresh moving-average threshold (seed 000 Eq. 2) for the parallel ``settings``."""
    freeze = settings['freeze_threshold_dataset']
    return MovingAverageThreshold(
        settings['threshold_window'],
        settings['c_x'],
        settings['threshold_warmup'],
        math.inf if freeze is None else float(freeze),
    ).state()


def update_threshold(state: dict[str, Any], values: list[float], training_set_size: int) -> dict[str, Any]:
    """Return ``state`` after the uncertainty checks ``values`` (in order); ``None`` threshold means not active yet."""
    threshold = MovingAverageThreshold.from_state(state)
    for value in values:
        threshold.update(value, training_set_size)
    return threshold.state()


def segment_spec(
    md_parameters: dict[str, Any],
    settings: dict[str, Any],
    threshold: dict[str, Any],
    training_set_size: int,
    seed: int,
    iteration: int,
) -> dict[str, Any]:
    """Return the MD spec of one segment: ``segment_steps`` steps, a frame and a check every ``check_every`` steps.

    The segment stops at the first check above the moving-average threshold, which it carries on from the shared
    ``threshold`` state, updated by each of its own checks (so a segment started in the warm-up can cross).
    """
    every = settings['check_every']
    stop = {'moving_average': threshold, 'training_set_size': training_set_size, 'every': every}
    return {
        **md_parameters,
        'steps': settings['segment_steps'],
        'stride': every,
        'thermalisation': 0,
        'seed': seed,
        'iteration': iteration,
        'uncertainty_stop': stop,
    }


SEGMENT_FIELDS = ('steps', 'stride', 'thermalisation', 'seed', 'iteration', 'uncertainty_stop')
"""MD spec fields every segment sets itself: the user's MD parameters must not."""


def segment_seed(seed: int, trajectory: int, segment: int) -> int:
    """Return the seed of segment ``segment`` of ``trajectory``: distinct for every segment of the loop."""
    return seed + 100_000 * trajectory + segment


def open_labels(settings: dict[str, Any], labelled: int, pending: int) -> float:
    """Return how many more frames may go to DFT: the label budget less the labelled and ``pending`` frames.

    ``pending``: frames in DFT, or waiting for it. Without a budget there is no limit (``inf``). A DFT that fails
    frees its place again, so the loop never labels more than ``label_budget`` frames nor stops short of it.
    """
    budget = settings['label_budget']
    return math.inf if budget is None else max(budget - labelled - pending, 0)


MAX_TRAINING_FAILURES = 2
"""Training chunks that may fail in a row before the loop stops (``training_failed``)."""


def stop_reason(settings: dict[str, Any], counts: dict[str, Any]) -> str | None:
    """Return why the loop stops, or ``None``.

    ``counts``: ``labelled`` (frames labelled by the loop), ``train`` (training-set size), ``valid_mae`` (the last
    mean validation force MAE of the members, eV/Å, or ``None``), ``trajectories_done`` (how many trajectories
    ran ``max_md_steps``) and ``training_failures`` (chunks failed in a row).
    """
    if counts.get('training_failures', 0) >= MAX_TRAINING_FAILURES:
        return 'training_failed'
    if settings['label_budget'] is not None and counts['labelled'] >= settings['label_budget']:
        return 'label_budget'
    if settings['max_train_set_size'] is not None and counts['train'] >= settings['max_train_set_size']:
        return 'max_train_set_size'
    accuracy, mae = settings['desired_accuracy'], counts['valid_mae']
    if accuracy is not None and mae is not None and mae <= accuracy:
        return 'desired_accuracy'
    if counts['trajectories_done'] >= settings['num_trajectories']:
        return 'max_md_steps'
    return None


def best_member(errors: dict[str, dict[str, Any]]) -> str | None:
    """Return the name of the member with the lowest validation force MAE (``None`` without any)."""
    scored = {name: member_force_mae(member) for name, member in errors.items()}
    scored = {name: value for name, value in scored.items() if value is not None}
    return min(scored, key=scored.get) if scored else None
