"""``PESData``: a dataset of atomic configurations and their DFT labels, stored as one HDF5 file in the node."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import ase.io
import numpy as np
from aiida.orm import Data
from ase import Atoms

from ..dataset import (
    MACE_KEYS,
    CorruptDatasetError,
    DatasetReader,
    DatasetWriter,
    Frame,
    FrameBatch,
    LabelKeys,
    iter_atoms_from_batch,
    iter_batches_from_atoms,
    query_mask,
    write_extxyz,
)
from ..dataset.batch import DEFAULT_BLOCK_FRAMES
from ..dataset.store import SCHEMA_VERSION

__all__ = ('PESData',)


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
            with DatasetReader(filepath) as reader:
                summary = reader.summarize()
            self._set_file(Path(filepath), summary)

    def _set_file(self, filepath: Path, summary: dict[str, Any]) -> None:
        """Copy the dataset file into the repository and set the attributes from its ``summary``."""
        self.base.repository.put_object_from_file(str(filepath), self.FILENAME)
        self.base.attributes.set_many({'schema_version': SCHEMA_VERSION, **summary})

    @classmethod
    def _from_writer(cls, fill: Callable[[DatasetWriter], None], block_frames: int = DEFAULT_BLOCK_FRAMES) -> PESData:
        """Return a new node whose dataset file ``fill`` writes; the summary is gathered while writing."""
        with tempfile.TemporaryDirectory() as folder:
            filepath = Path(folder) / cls.FILENAME
            with DatasetWriter(filepath, block_frames) as writer:
                fill(writer)
            node = cls()
            node._set_file(filepath, writer.attributes())
            return node

    @classmethod
    def from_frames(cls, frames: Iterable[Frame], block_frames: int = DEFAULT_BLOCK_FRAMES) -> PESData:
        """Return a new node with ``frames``; each is validated (``ValueError`` naming the frame and field)."""
        return cls._from_writer(lambda writer: writer.extend(frames), block_frames)

    @classmethod
    def from_batches(cls, batches: Iterable[FrameBatch]) -> PESData:
        """Return a new node with the frames of ``batches`` (blocks read from other datasets)."""

        def fill(writer: DatasetWriter) -> None:
            for batch in batches:
                writer.add_batch(batch)

        return cls._from_writer(fill)

    @classmethod
    def from_ase(cls, structures: Iterable[Atoms], keys: LabelKeys | None = None) -> PESData:
        """Return a new node from ``ase.Atoms`` (labels from their single-point calculators, or under ``keys``)."""
        return cls.from_batches(iter_batches_from_atoms(structures, keys))

    @classmethod
    def from_extxyz(cls, filepath: str | Path, keys: LabelKeys | None = None) -> PESData:
        """Return a new node from an extended-XYZ file, read one frame at a time."""
        return cls.from_batches(iter_batches_from_atoms(ase.io.iread(filepath, index=':', format='extxyz'), keys))

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
        for batch in self.iter_batches(query=query):
            yield from iter_atoms_from_batch(batch)

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
