"""Calcfunctions of the parallel (aims-PAX) loop: a labelled frame joins the dataset; the loop's summary."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from aiida.engine import calcfunction
from aiida.orm import Dict, Str

from ...data import PESData
from ...dataset import FrameBatch
from ...dataset.batch import SPLIT_CODES
from ...pax.policy import SPLITS


@calcfunction
def add_labelled(dataset: PESData, new: PESData, split: Str) -> PESData:
    """Return ``dataset`` followed by the frames of ``new``, these tagged ``split`` (``train`` or ``valid``)."""
    if split.value not in SPLITS:
        raise ValueError(f'`split` must be one of {SPLITS}, got {split.value!r}')

    def batches() -> Iterator[FrameBatch]:
        yield from dataset.iter_batches()
        for batch in new.iter_batches():
            batch.split = np.full(len(batch), SPLIT_CODES[split.value], dtype=batch.split.dtype)
            yield batch

    return PESData.from_batches(batches())


@calcfunction
def summarize_pax(record: Dict, dataset: PESData) -> Dict:
    """Return the summary of a parallel loop: its bookkeeping ``record`` and the final dataset's size and splits."""
    return Dict(
        {
            **record.get_dict(),
            'dataset_size': len(dataset),
            'split_counts': dict(dataset.base.attributes.get('split_counts', {})),
        }
    )
