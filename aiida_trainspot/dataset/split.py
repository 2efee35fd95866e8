"""Persistent train/valid/test tags: who learns from which frame, decided once per frame.

A frame that has a tag keeps it in every later iteration, so the test set is never trained on and the validation
set does not silently change under the early stopping that uses it. Input structures and isolated atoms always train
(the model must know them, and isolated atoms carry the reference energies); the other newly labelled frames are
shared out at random in the given proportions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .batch import SPLIT_CODES

ALWAYS_TRAIN_ORIGINS = ('input', 'isolated_atom')
"""Frame origins that always go to the training set."""

DEFAULT_FRACTIONS = {'train': 0.8, 'valid': 0.1, 'test': 0.1}


def validate_fractions(fractions: dict[str, float]) -> str | None:
    """Return why ``fractions`` (train/valid/test → share) are unusable, or ``None``."""
    unknown = sorted(set(fractions) - set(DEFAULT_FRACTIONS))
    if unknown:
        return f'unknown split names {unknown}: use {sorted(DEFAULT_FRACTIONS)}'
    values = [fractions.get(name, 0.0) for name in DEFAULT_FRACTIONS]
    if any(not 0 <= value <= 1 for value in values) or not np.isclose(sum(values), 1.0):
        return f'split fractions must lie in [0, 1] and sum to 1, got {fractions}'
    if fractions.get('train', 0.0) == 0:
        return 'the `train` fraction must be positive'
    return None


def split_counts(count: int, fractions: dict[str, float]) -> dict[str, int]:
    """Return how many of ``count`` frames each split gets, by largest remainder (valid gets one if it can)."""
    names = list(DEFAULT_FRACTIONS)
    exact = np.array([fractions.get(name, 0.0) * count for name in names])
    counts = np.floor(exact).astype(int)
    for position in np.argsort(-(exact - counts), kind='stable')[: count - counts.sum()]:
        counts[position] += 1
    result = dict(zip(names, counts.tolist(), strict=True))
    if result['valid'] == 0 and fractions.get('valid', 0.0) > 0 and result['train'] > 1:
        result['train'] -= 1
        result['valid'] = 1
    return result


def assign_splits(
    splits: np.ndarray,
    labelled: np.ndarray,
    origins: Sequence[str],
    isolated: np.ndarray,
    fractions: dict[str, float],
    rng: np.random.Generator,
) -> np.ndarray:
    """Return split codes (see ``SPLIT_CODES``): existing tags kept, labelled untagged frames given one.

    :param splits: current split code of each frame (0: none yet).
    :param labelled: which frames carry labels; unlabelled frames stay untagged.
    :param origins: origin of each frame; :data:`ALWAYS_TRAIN_ORIGINS` go to train.
    :param isolated: which frames are isolated atoms (one atom, not periodic): they go to train.
    """
    result = np.array(splits, dtype=np.int8)
    new = (result == 0) & np.asarray(labelled, dtype=bool)
    always = new & (np.isin(np.asarray(origins, dtype=object), ALWAYS_TRAIN_ORIGINS) | np.asarray(isolated, bool))
    result[always] = SPLIT_CODES['train']
    shared = rng.permutation(np.flatnonzero(new & ~always))
    start = 0
    for name, count in split_counts(len(shared), fractions).items():
        result[shared[start : start + count]] = SPLIT_CODES[name]
        start += count
    return result
