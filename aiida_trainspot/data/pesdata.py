"""``PESData``: a dataset of atomic configurations and their DFT labels, stored as one HDF5 file in the node."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from aiida.orm import Data
from ase import Atoms
from ase.data import chemical_symbols

from ..dataset import (
    MACE_KEYS,
    CorruptDatasetError,
    DatasetReader,
    DatasetWriter,
    Frame,
    FrameBatch,
    LabelKeys,
    frame_from_atoms,
    frame_to_atoms,
    iter_frames_from_extxyz,
    query_mask,
    write_extxyz,
)
from ..dataset.frame import SPLITS
from ..dataset.store import DEFAULT_BLOCK_FRAMES, SCHEMA_VERSION

__all__ = ('PESData',)


def _summarize(reader: DatasetReader) -> dict[str, Any]:
    """Return the node attributes that describe the dataset behind ``reader`` (one streaming pass)."""
    species: set[int] = set()
    labelled = failed = 0
    split_counts = dict.fromkeys(SPLITS, 0)
    for batch in reader.iter_batches():
        species.update(np.unique(batch.numbers).tolist())
        labelled += int(batch.labelled.sum())
        failed += sum(1 for reason in batch.failure_reason if reason)
        for code, count in zip(*np.unique(batch.split, return_counts=True), strict=True):
            split_counts[SPLITS[code]] += int(count)
    split_counts['unassigned'] = split_counts.pop('')
    return {
        'schema_version': SCHEMA_VERSION,
        'num_frames': len(reader),
        'num_atoms': reader.num_atoms,
        'num_labelled': labelled,
        'num_failed': failed,
        'species': sorted((chemical_symbols[number] for number in species), key=chemical_symbols.index),
        'split_counts': split_counts,
        'checksum': reader.checksum(),
    }


class PESData(Data):
    """A dataset of atomic configurations with optional energies, forces and stresses (a potential-energy surface).

    The frames live in one HDF5 file in the node's repository under :attr:`FILENAME` (columnar, chunked, compressed;
    see :mod:`aiida_trainspot.dataset.store`). Attributes hold the counts, the species and a content checksum. Build
    one with :meth:`from_frames`, :meth:`from_ase`, :meth:`from_extxyz` or from an existing file; read it in blocks
    with :meth:`iter_batches` so that memory stays bounded by the block, not the dataset.
    """

    FILENAME = 'pesdata.h5'

    def __init__(self, filepath: str | Path | None = None, **kwargs: Any) -> None:
        """Create a node from a dataset file written by :class:`~aiida_trainspot.dataset.DatasetWriter`."""
        super().__init__(**kwargs)
        if filepath is not None:
            self._set_file(Path(filepath))

    def _set_file(self, filepath: Path) -> None:
        """Check the file, copy it into the repository and set the summary attributes."""
        with DatasetReader(filepath) as reader:
            summary = _summarize(reader)
        self.base.repository.put_object_from_file(str(filepath), self.FILENAME)
        self.base.attributes.set_many(summary)

    @classmethod
    def from_frames(cls, frames: Iterable[Frame], block_frames: int = DEFAULT_BLOCK_FRAMES) -> PESData:
        """Return a new node with ``frames``; each is validated (``ValueError`` naming the frame and field)."""
        with tempfile.TemporaryDirectory() as folder:
            filepath = Path(folder) / cls.FILENAME
            with DatasetWriter(filepath, block_frames) as writer:
                writer.extend(frames)
            return cls(filepath)

    @classmethod
    def from_batches(cls, batches: Iterable[FrameBatch]) -> PESData:
        """Return a new node with the frames of ``batches`` (blocks read from other datasets)."""
        with tempfile.TemporaryDirectory() as folder:
            filepath = Path(folder) / cls.FILENAME
            with DatasetWriter(filepath) as writer:
                for batch in batches:
                    writer.add_batch(batch)
            return cls(filepath)

    @classmethod
    def from_ase(cls, structures: Iterable[Atoms], keys: LabelKeys | None = None) -> PESData:
        """Return a new node from ``ase.Atoms`` (labels from their single-point calculators, or under ``keys``)."""
        return cls.from_frames(frame_from_atoms(atoms, keys) for atoms in structures)

    @classmethod
    def from_extxyz(cls, filepath: str | Path, keys: LabelKeys | None = None) -> PESData:
        """Return a new node from an extended-XYZ file, read one frame at a time."""
        return cls.from_frames(iter_frames_from_extxyz(filepath, keys))

    def __len__(self) -> int:
        """Return the number of frames."""
        return self.base.attributes.get('num_frames')

    @property
    def species(self) -> list[str]:
        """Return the chemical symbols present in the dataset."""
        return self.base.attributes.get('species')

    @property
    def checksum(self) -> str:
        """Return the SHA-256 digest of the content computed when the node was made."""
        return self.base.attributes.get('checksum')

    @contextlib.contextmanager
    def open(self) -> Iterator[DatasetReader]:
        """Open the dataset file for reading; raise ``CorruptDatasetError`` naming the node if it is unreadable."""
        name = f'PESData<{self.pk if self.is_stored else "unstored"}>'
        with contextlib.ExitStack() as stack:
            try:
                handle = stack.enter_context(self.base.repository.open(self.FILENAME, mode='rb'))
            except FileNotFoundError:
                raise CorruptDatasetError(f'{name}: the repository has no `{self.FILENAME}`') from None
            reader = stack.enter_context(DatasetReader(handle, name=name))
            if len(reader) != len(self):
                raise CorruptDatasetError(f'{name}: the file holds {len(reader)} frames, the node says {len(self)}')
            yield reader

    def iter_batches(
        self, block_frames: int = DEFAULT_BLOCK_FRAMES, query: Mapping[str, Any] | None = None
    ) -> Iterator[FrameBatch]:
        """Yield the frames in blocks of at most ``block_frames``, keeping only those matching ``query``."""
        with self.open() as reader:
            for block in reader.iter_batches(block_frames):
                selected = block.take(np.flatnonzero(query_mask(block, query))) if query else block
                if len(selected):
                    yield selected

    def iter_frames(self, query: Mapping[str, Any] | None = None) -> Iterator[Frame]:
        """Yield the frames one by one (matching ``query`` if given)."""
        for batch in self.iter_batches(query=query):
            yield from batch.frames()

    def iter_atoms(self, query: Mapping[str, Any] | None = None) -> Iterator[Atoms]:
        """Yield the frames as ``ase.Atoms`` with single-point calculators holding the labels."""
        for frame in self.iter_frames(query):
            yield frame_to_atoms(frame)

    def to_ase(self, query: Mapping[str, Any] | None = None) -> list[Atoms]:
        """Return all frames (matching ``query`` if given) as a list of ``ase.Atoms``."""
        return list(self.iter_atoms(query))

    def get_frame(self, index: int) -> Frame:
        """Return frame ``index``."""
        with self.open() as reader:
            if not 0 <= index < len(reader):
                raise IndexError(f'frame {index} out of range for a dataset of {len(reader)} frames')
            return reader.read(index, index + 1).frame(0)

    def write_extxyz(
        self, filepath: str | Path, keys: LabelKeys = MACE_KEYS, query: Mapping[str, Any] | None = None
    ) -> int:
        """Write the frames matching ``query`` to an extended-XYZ file that MACE and metatrain read.

        Labels go under ``keys``: :data:`~aiida_trainspot.dataset.MACE_KEYS` (default) or
        :data:`~aiida_trainspot.dataset.METATRAIN_KEYS`; stress is a full 3×3 tensor in eV/Å³. Single-atom
        non-periodic frames get ``config_type=IsolatedAtom``. Return the number of frames written.
        """
        with open(filepath, 'w', encoding='utf-8') as handle:
            return write_extxyz(self.iter_batches(query=query), handle, keys)

    def verify(self) -> None:
        """Recompute the content checksum and raise ``CorruptDatasetError`` if it differs from the stored one."""
        with self.open() as reader:
            if reader.checksum() != self.checksum:
                raise CorruptDatasetError(f'{reader.name}: the content checksum does not match the stored one')
