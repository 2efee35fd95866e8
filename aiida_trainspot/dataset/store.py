"""The HDF5 file behind a dataset: columnar, chunked, compressed, streamed.

Layout (schema version 1)::

    /                attrs: format, schema_version
    /frames/natoms   (F,)      int32      atoms per frame; frame i owns atom rows offsets[i]:offsets[i+1]
    /frames/cell     (F, 3, 3) float64    Å
    /frames/pbc      (F, 3)    bool
    /frames/energy   (F,)      float64    eV, NaN when unlabelled
    /frames/stress   (F, 3, 3) float64    eV/Å³ (ASE sign), NaN when absent
    /frames/iteration (F,)     int32      active-learning iteration that produced the frame
    /frames/split    (F,)      int8       index into SPLITS ('', train, valid, test)
    /frames/origin, /frames/failure_reason, /frames/info   (F,) UTF-8 strings (info is JSON)
    /frames/extra/<name>       (F, ...)   float64 extra per-frame columns, NaN when absent
    /atoms/numbers   (N,)      uint8
    /atoms/positions (N, 3)    float64    Å
    /atoms/forces    (N, 3)    float64    eV/Å, NaN when unlabelled
    /atoms/extra/<name>        (N, ...)   float64 extra per-atom columns, NaN when absent

Writers and readers hold one block of frames in memory at a time, so memory is bounded by the block size, not by the
size of the dataset (the per-frame atom counts, 4 bytes a frame, are the exception).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

import h5py
import hdf5plugin
import numpy as np

from .batch import DEFAULT_BLOCK_FRAMES, FrameBatch
from .frame import Frame, check_finite, validate_frame
from .summary import ColumnDigests, DatasetSummary

FORMAT = 'aiida-trainspot.pesdata'
SCHEMA_VERSION = 1
READ_ROWS = 65536  # rows hashed at a time when a checksum is computed from a file
COMPRESSION = hdf5plugin.Blosc(cname='lz4', clevel=5, shuffle=hdf5plugin.Blosc.SHUFFLE)
"""Blosc LZ4 with byte shuffle: ~5x faster than h5py's built-in LZF here, smaller files, and the NaN columns of
unlabelled frames shrink to almost nothing (``benchmarks/pesdata_io.py``). Reading needs ``import hdf5plugin``."""
FRAME_COLUMNS = {  # name: (dtype, trailing shape, fill value)
    'natoms': (np.int32, (), 0),
    'cell': (np.float64, (3, 3), 0.0),
    'pbc': (bool, (3,), False),
    'energy': (np.float64, (), np.nan),
    'stress': (np.float64, (3, 3), np.nan),
    'iteration': (np.int32, (), 0),
    'split': (np.int8, (), 0),
}
STRING_COLUMNS = ('origin', 'failure_reason', 'info')
ATOM_COLUMNS = {
    'numbers': (np.uint8, (), 0),
    'positions': (np.float64, (3,), 0.0),
    'forces': (np.float64, (3,), np.nan),
}


class CorruptDatasetError(ValueError):
    """Raised when a dataset file cannot be read back as written."""


def _create_column(group: h5py.Group, name: str, dtype: Any, trailing: tuple, fill: Any, rows: int) -> h5py.Dataset:
    """Create an empty resizable, chunked and compressed column; rows not written read as ``fill``."""
    chunk_rows = 16384 if group.name.startswith('/atoms') else 4096
    return group.create_dataset(
        name,
        shape=(rows, *trailing),
        maxshape=(None, *trailing),
        dtype=dtype,
        chunks=(chunk_rows, *trailing),
        fillvalue=fill,
        track_times=False,
        **({} if np.dtype(dtype).kind == 'O' else COMPRESSION),
    )


class DatasetWriter:
    """Write frames to a new dataset file, one block at a time.

    Use as a context manager; :meth:`add` validates each frame (``ValueError`` naming the frame and field), and
    :meth:`add_batch` appends a block read from another dataset as it is.
    """

    def __init__(self, path: str | Path, block_frames: int = DEFAULT_BLOCK_FRAMES) -> None:
        """Open ``path`` for writing, replacing any file there."""
        self._file = h5py.File(path, 'w', track_order=True)
        self._file.attrs['format'] = FORMAT
        self._file.attrs['schema_version'] = SCHEMA_VERSION
        self._frames = self._file.create_group('frames')
        self._atoms = self._file.create_group('atoms')
        self._handles: dict[str, dict[str, h5py.Dataset]] = {'/frames': {}, '/atoms': {}}  # group: {name: column}
        for name, (dtype, trailing, fill) in FRAME_COLUMNS.items():
            self._handles['/frames'][name] = _create_column(self._frames, name, dtype, trailing, fill, 0)
        for name in STRING_COLUMNS:
            self._handles['/frames'][name] = _create_column(self._frames, name, h5py.string_dtype(), (), '', 0)
        for name, (dtype, trailing, fill) in ATOM_COLUMNS.items():
            self._handles['/atoms'][name] = _create_column(self._atoms, name, dtype, trailing, fill, 0)
        self._block_frames = block_frames
        self._pending: list[Frame] = []
        self.num_frames = 0
        self.num_atoms = 0
        self.summary = DatasetSummary()
        self._digests = ColumnDigests()

    def __enter__(self) -> DatasetWriter:
        """Return the writer."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Flush the last block (unless an exception is propagating) and close the file."""
        try:
            if exc_info[0] is None:
                self.flush()
                for group in (self._frames, self._atoms):  # columns without rows still count in the checksum
                    for column in _columns(group):
                        self._digests.update(column.name, column[0:0], column.dtype)
        finally:
            self._file.close()

    def add(self, frame: Frame) -> None:
        """Validate and append one frame."""
        self._pending.append(validate_frame(frame, self.num_frames + len(self._pending)))
        if len(self._pending) >= self._block_frames:
            self.flush()

    def extend(self, frames: Iterable[Frame]) -> None:
        """Validate and append frames."""
        for frame in frames:
            self.add(frame)

    def flush(self) -> None:
        """Write the frames added since the last flush."""
        if self._pending:
            pending, self._pending = self._pending, []
            check_finite(pending, self.num_frames)
            self.add_batch(FrameBatch.from_frames(pending))

    def add_batch(self, batch: FrameBatch) -> None:
        """Append a block of frames (already valid: it comes from a dataset or from validated frames)."""
        self.flush()
        frame_columns = {name: getattr(batch, name) for name in (*FRAME_COLUMNS, *STRING_COLUMNS)}
        frame_columns.update({f'extra/{name}': values for name, values in batch.frame_arrays.items()})
        atom_columns = {name: getattr(batch, name) for name in ATOM_COLUMNS}
        atom_columns.update({f'extra/{name}': values for name, values in batch.atom_arrays.items()})
        for group, start, columns in (
            (self._frames, self.num_frames, frame_columns),
            (self._atoms, self.num_atoms, atom_columns),
        ):
            rows = len(columns['natoms' if group is self._frames else 'numbers'])
            for name, column in self._handles[group.name].items():  # extra columns this block lacks: NaN
                if name not in columns:
                    columns[name] = np.full((rows, *column.shape[1:]), np.nan)
            for name, values in columns.items():
                self._write_rows(group, name, values, start)
        self.summary.update(batch)
        self.num_frames, self.num_atoms = self.num_frames + len(batch), self.num_atoms + int(batch.natoms.sum())

    def _write_rows(self, group: h5py.Group, name: str, values: Any, start: int) -> None:
        """Write ``values`` as the rows from ``start`` of column ``name``, creating an extra column when new."""
        handles = self._handles[group.name]
        if name not in handles:
            column = handles[name] = _create_column(group, name, np.float64, np.shape(values)[1:], np.nan, start)
            for first in range(0, start, READ_ROWS):  # the rows before it exist and read as NaN
                self._digests.update(column.name, column[first : min(first + READ_ROWS, start)], column.dtype)
        column = handles[name]
        column.resize(start + len(values), axis=0)
        column[start:] = values
        self._digests.update(column.name, values, column.dtype)

    def attributes(self) -> dict[str, Any]:
        """Return the summary of what was written: counts, species, split counts, content checksum.

        Call it once the writer is closed.
        """
        return self.summary.as_attributes(self._digests.hexdigest())


def _columns(group: h5py.Group) -> list[h5py.Dataset]:
    """Return the columns of a group, extra columns included."""
    columns = [item for item in group.values() if isinstance(item, h5py.Dataset)]
    if 'extra' in group:
        columns.extend(group['extra'].values())
    return columns


class DatasetReader:
    """Read a dataset file block by block; open it with a path or a binary file object."""

    def __init__(self, source: str | Path | IO[bytes], name: str | None = None) -> None:
        """Open ``source`` and check that its columns are consistent; ``name`` labels error messages."""
        self.name = name or str(source)
        try:
            self._file = h5py.File(source, 'r')
        except OSError as exception:
            raise CorruptDatasetError(f'{self.name}: the dataset file cannot be opened as HDF5: {exception}') from None
        try:
            self._check_layout()
        except Exception:
            self._file.close()
            raise

    def _check_layout(self) -> None:
        """Raise ``CorruptDatasetError`` unless the file has this schema and columns of consistent lengths."""
        attrs = self._file.attrs
        if attrs.get('format') != FORMAT:
            raise CorruptDatasetError(f'{self.name}: not a PESData file (format attribute {attrs.get("format")!r})')
        if int(attrs.get('schema_version', -1)) > SCHEMA_VERSION:
            raise CorruptDatasetError(
                f'{self.name}: schema version {attrs["schema_version"]} is newer than this aiida-trainspot reads '
                f'({SCHEMA_VERSION}); upgrade aiida-trainspot'
            )
        try:
            self._natoms = self._file['frames/natoms'][()].astype(np.int64)
            frame_lengths = {column.name: len(column) for column in _columns(self._file['frames'])}
            atom_lengths = {column.name: len(column) for column in _columns(self._file['atoms'])}
        except (KeyError, OSError) as exception:
            raise CorruptDatasetError(f'{self.name}: the dataset file is incomplete: {exception}') from None
        self.offsets = np.concatenate(([0], np.cumsum(self._natoms)))
        for lengths, expected in ((frame_lengths, len(self._natoms)), (atom_lengths, int(self.offsets[-1]))):
            wrong = {name: length for name, length in lengths.items() if length != expected}
            if wrong:
                raise CorruptDatasetError(f'{self.name}: columns {wrong} do not have the expected {expected} rows')

    def __enter__(self) -> DatasetReader:
        """Return the reader."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Close the file."""
        self.close()

    def close(self) -> None:
        """Close the file."""
        self._file.close()

    def __len__(self) -> int:
        """Return the number of frames."""
        return len(self._natoms)

    @property
    def num_atoms(self) -> int:
        """Return the total number of atoms over all frames."""
        return int(self.offsets[-1])

    def read(self, start: int, stop: int) -> FrameBatch:
        """Return frames ``start`` to ``stop`` (exclusive) as one block."""
        atoms = slice(int(self.offsets[start]), int(self.offsets[stop]))
        frames, atom_group = self._file['frames'], self._file['atoms']
        try:
            return FrameBatch(
                natoms=self._natoms[start:stop],
                **{name: frames[name][start:stop] for name in FRAME_COLUMNS if name != 'natoms'},
                **{name: list(frames[name].asstr()[start:stop]) for name in STRING_COLUMNS},
                **{name: atom_group[name][atoms] for name in ATOM_COLUMNS},
                frame_arrays={name: column[start:stop] for name, column in frames.get('extra', {}).items()},
                atom_arrays={name: column[atoms] for name, column in atom_group.get('extra', {}).items()},
            )
        except OSError as exception:
            raise CorruptDatasetError(f'{self.name}: frames {start}-{stop} cannot be read: {exception}') from None

    def iter_batches(self, block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[FrameBatch]:
        """Yield the dataset as consecutive blocks of at most ``block_frames`` frames."""
        for start in range(0, len(self), block_frames):
            yield self.read(start, min(start + block_frames, len(self)))

    def iter_frames(self, block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[Frame]:
        """Yield the frames one by one, reading a block at a time."""
        for batch in self.iter_batches(block_frames):
            yield from batch.frames()

    def iter_selection(self, indices: Iterable[int], block_frames: int = DEFAULT_BLOCK_FRAMES) -> Iterator[FrameBatch]:
        """Yield blocks holding the frames at ``indices`` (sorted, unique), in dataset order."""
        wanted = np.asarray(sorted(indices), dtype=np.int64)
        for start in range(0, len(self), block_frames):
            stop = min(start + block_frames, len(self))
            local = wanted[(wanted >= start) & (wanted < stop)] - start
            if len(local):
                yield self.read(start, stop).take(local)

    def checksum(self) -> str:
        """Return a SHA-256 digest of the content (all columns, in order), independent of file layout."""
        digests = ColumnDigests()
        for group in (self._file['frames'], self._file['atoms']):
            for column in _columns(group):
                for start in range(0, max(len(column), 1), READ_ROWS):
                    digests.update(column.name, column[start : start + READ_ROWS], column.dtype)
        return digests.hexdigest()

    def summarize(self) -> dict[str, Any]:
        """Return the summary of the dataset (counts, species, split counts, content checksum), in one pass."""
        summary = DatasetSummary()
        for batch in self.iter_batches():
            summary.update(batch)
        return summary.as_attributes(self.checksum())
