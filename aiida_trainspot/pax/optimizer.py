"""When a member of the committee keeps its optimizer across training chunks, and when it gets a fresh one (no AiiDA).

aims-PAX trains each member on for a few epochs per chunk with the same optimizer (Adam moments, learning-rate
schedule), and recreates it once the member has stopped improving for more than ``patience`` chunks. Here the count of
chunks without improvement starts again at every improvement (aims-PAX only zeroes it after a reset), and a reset
gives a whole fresh optimizer *and* schedule (aims-PAX leaves its scheduler bound to the old optimizer).

The state is JSON-serialisable: ``{member: {'best': float | None, 'stale': int}}``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

RESUME = 'resume'
"""The member's next chunk goes on with its optimizer, learning-rate schedule and epoch count."""
RESET = 'reset'
"""The member's next chunk starts from its weights with a fresh optimizer and schedule."""


def member_optimizer_states(
    previous_state: Mapping[str, Mapping], valid_losses: Mapping[str, float], patience: int
) -> tuple[dict[str, dict], dict[str, str]]:
    """Return the new state and the action of every member that has a validation loss after a chunk.

    A member improves when its loss is finite and strictly lower than its best so far (the first finite loss always
    is); improving sets ``stale`` back to 0, any other loss adds one. A member whose ``stale`` exceeds ``patience``
    gets :data:`RESET` and ``stale`` 0; all others :data:`RESUME`. Members without a loss (e.g. failed) keep their
    state and get no action; members not in ``previous_state`` start with ``{'best': None, 'stale': 0}``.
    """
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
        raise ValueError(f'`patience` must be an integer of at least 0, got {patience!r}')
    state = {member: dict(values) for member, values in previous_state.items()}
    actions = {}
    for member, value in sorted(valid_losses.items()):
        best, stale = _member_state(state.get(member, {}), member)
        loss = float(value)
        if math.isfinite(loss) and (best is None or loss < best):
            best, stale = loss, 0
        else:
            stale += 1
        actions[member] = RESET if stale > patience else RESUME
        state[member] = {'best': best, 'stale': 0 if actions[member] == RESET else stale}
    return state, actions


def _member_state(values: Mapping, member: str) -> tuple[float | None, int]:
    """Return the best loss and the stale count of one member's state, checked."""
    best, stale = values.get('best'), values.get('stale', 0)
    if best is not None and not math.isfinite(float(best)):
        raise ValueError(f'member {member}: `best` must be a finite number or None, got {best!r}')
    if isinstance(stale, bool) or not isinstance(stale, int) or stale < 0:
        raise ValueError(f'member {member}: `stale` must be an integer of at least 0, got {stale!r}')
    return (None if best is None else float(best)), stale


def saved_valid_loss(epochs: np.ndarray, valid_losses: np.ndarray, best_epoch: int) -> float:
    """Return the validation loss of the saved model of a run: that of the row whose epoch is ``best_epoch``.

    ``epochs`` and ``valid_losses`` are the ``epoch`` (epochs completed) and ``valid_loss`` columns of a training's
    ``metrics``, ``best_epoch`` the epoch of its ``errors``. Not the lowest of the column: a run that resumed from a
    checkpoint carries the rows of the run before it, validated on other frames. NaN if no row has that epoch.
    """
    (rows,) = np.nonzero(np.asarray(epochs) == best_epoch)
    return float(np.asarray(valid_losses, dtype=float)[rows[-1]]) if len(rows) else math.nan
