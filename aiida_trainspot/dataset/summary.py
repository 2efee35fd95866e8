"""What a dataset holds in a few numbers (counts, species, splits) and its content checksum, gathered block by block.

The writer gathers the summary while it writes and the reader recomputes it from the file; both feed the same
:class:`DatasetSummary`, so a checksum recorded at writing time can be verified later against the stored file.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
from ase.data import chemical_symbols

from .batch import FrameBatch
from .frame import SPLITS


class ColumnDigests:
    """SHA-256 digests of columns fed in row order, independent of how the rows are split into blocks.

    Numbers are hashed as the bytes of the stored dtype, strings as UTF-8 each followed by a NUL byte.
    """

    def __init__(self) -> None:
        """Start with no columns."""
        self._columns: dict[str, tuple[Any, tuple[int, ...], int, Any]] = {}

    def update(self, name: str, values: np.ndarray | list, dtype: np.dtype) -> None:
        """Feed the next rows ``values`` of column ``name``, stored with ``dtype``."""
        if dtype.kind == 'O':
            data: Any = _joined_strings(values)
            trailing: tuple[int, ...] = ()
        else:
            data = np.ascontiguousarray(values, dtype=dtype)  # hashed as its bytes, without copying them
            trailing = data.shape[1:]
        _, _, rows, digest = self._columns.setdefault(name, (str(dtype), trailing, 0, hashlib.sha256()))
        digest.update(data)
        self._columns[name] = (str(dtype), trailing, rows + len(values), digest)

    def hexdigest(self) -> str:
        """Return one digest over all columns (name, dtype, shape and content), in name order."""
        lines = (
            f'{name}:{dtype}:{(rows, *trailing)}:{digest.hexdigest()};'
            for name, (dtype, trailing, rows, digest) in sorted(self._columns.items())
        )
        return hashlib.sha256(''.join(lines).encode()).hexdigest()


def _joined_strings(values: np.ndarray | list) -> bytes:
    """Return the strings (or bytes) ``values`` as UTF-8, each followed by a NUL byte."""
    try:
        return ('\0'.join(values) + '\0').encode() if len(values) else b''
    except TypeError:  # bytes among the values
        return b''.join((value if isinstance(value, bytes) else value.encode()) + b'\0' for value in values)


class DatasetSummary:
    """Counts, species and split tags of the frames fed block by block."""

    def __init__(self) -> None:
        """Start empty."""
        self.num_frames = self.num_atoms = self.num_labelled = self.num_failed = 0
        self._species: set[int] = set()
        self._split_counts = np.zeros(len(SPLITS), dtype=np.int64)

    def update(self, batch: FrameBatch) -> None:
        """Count the frames of ``batch``."""
        self.num_frames += len(batch)
        self.num_atoms += int(batch.natoms.sum())
        self.num_labelled += int(batch.labelled.sum())
        self.num_failed += sum(1 for reason in batch.failure_reason if reason)
        self._species.update(np.flatnonzero(np.bincount(batch.numbers)).tolist())
        self._split_counts += np.bincount(batch.split, minlength=len(SPLITS))

    def as_attributes(self, checksum: str) -> dict[str, Any]:
        """Return the summary as node attributes, with the content ``checksum``."""
        split_counts = {
            name or 'unassigned': int(count) for name, count in zip(SPLITS, self._split_counts, strict=True)
        }
        return {
            'num_frames': self.num_frames,
            'num_atoms': self.num_atoms,
            'num_labelled': self.num_labelled,
            'num_failed': self.num_failed,
            'species': [chemical_symbols[number] for number in sorted(self._species)],
            'split_counts': split_counts,
            'checksum': checksum,
        }
