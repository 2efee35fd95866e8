"""Select frames by their metadata: the query language of :func:`subset_dataset`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .batch import SPLIT_CODES, FrameBatch

QUERY_KEYS = {
    'split': 'split tag or list of tags (`train`, `valid`, `test`, or `` for unassigned)',
    'origin': 'origin or list of origins (e.g. `input`, `rattle`, `md`)',
    'iteration': 'iteration or list of iterations',
    'iteration_min': 'smallest iteration to keep',
    'iteration_max': 'largest iteration to keep',
    'labelled': 'true for frames with energy and forces, false for the others',
    'failed': 'true for frames whose labelling failed (a failure reason is recorded)',
}


def _as_list(value: Any) -> list:
    return list(value) if isinstance(value, list | tuple) else [value]


def validate_query(query: Mapping[str, Any]) -> str | None:
    """Return a message naming the first invalid key or value of ``query``, or ``None`` when it is valid."""
    for key, value in query.items():
        if key not in QUERY_KEYS:
            return f'unknown query key `{key}`; known keys: {", ".join(QUERY_KEYS)}'
        if key == 'split' and any(item not in SPLIT_CODES for item in _as_list(value)):
            return f'query `split` must be among {list(SPLIT_CODES)}, got {value!r}'
        if key in ('labelled', 'failed') and not isinstance(value, bool):
            return f'query `{key}` must be true or false, got {value!r}'
        if key.startswith('iteration') and not all(isinstance(item, int) for item in _as_list(value)):
            return f'query `{key}` must be integers, got {value!r}'
    return None


def query_mask(batch: FrameBatch, query: Mapping[str, Any]) -> np.ndarray:
    """Return the boolean mask of the frames of ``batch`` that match every condition of ``query``."""
    message = validate_query(query)
    if message:
        raise ValueError(message)
    mask = np.ones(len(batch), dtype=bool)
    if 'split' in query:
        mask &= np.isin(batch.split, [SPLIT_CODES[item] for item in _as_list(query['split'])])
    if 'origin' in query:
        mask &= np.isin(np.asarray(batch.origin, dtype=object), _as_list(query['origin']))
    if 'iteration' in query:
        mask &= np.isin(batch.iteration, _as_list(query['iteration']))
    if 'iteration_min' in query:
        mask &= batch.iteration >= query['iteration_min']
    if 'iteration_max' in query:
        mask &= batch.iteration <= query['iteration_max']
    if 'labelled' in query:
        mask &= batch.labelled == query['labelled']
    if 'failed' in query:
        mask &= (np.asarray(batch.failure_reason, dtype=object) != '') == query['failed']
    return mask
