"""``PotentialData``: a trained, deployable interatomic-potential model file with what is needed to use it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from aiida.orm import Data
from ase.data import chemical_symbols

__all__ = ('PotentialData',)

DTYPES = ('float32', 'float64')


class PotentialData(Data):
    """A model file (plus an optional folder of extensions it needs to load) and its metadata.

    The model is stored under ``model/<filename>`` and the extensions under ``extensions/`` in the repository; the
    model is only ever loaded through its own library's loader. Attributes: ``architecture`` (e.g. ``mace``, ``pet``,
    ``soap_bpnn``), ``species``, ``cutoff`` (Å), ``seed``, ``dtype``, ``training_set_uuid`` (the PESData it was
    trained on) and ``parent_model_uuid`` (the model it started from, for continual learning or fine-tuning).
    """

    MODEL_FOLDER = 'model'
    EXTENSIONS_FOLDER = 'extensions'

    def __init__(
        self,
        filepath: str | Path | None = None,
        *,
        architecture: str | None = None,
        species: Sequence[str] = (),
        cutoff: float | None = None,
        seed: int | None = None,
        dtype: str = 'float64',
        training_set_uuid: str | None = None,
        parent_model_uuid: str | None = None,
        extensions: str | Path | None = None,
        **kwargs: Any,
    ) -> None:
        """Create a node for the model at ``filepath``; raise ``ValueError`` naming an invalid argument."""
        super().__init__(**kwargs)
        if filepath is None:
            return
        filepath = Path(filepath)
        message = self._check_arguments(filepath, architecture, species, cutoff, dtype, extensions)
        if message:
            raise ValueError(message)
        self.base.repository.put_object_from_file(str(filepath), f'{self.MODEL_FOLDER}/{filepath.name}')
        if extensions is not None:
            self.base.repository.put_object_from_tree(str(extensions), self.EXTENSIONS_FOLDER)
        self.base.attributes.set_many(
            {
                'filename': filepath.name,
                'architecture': architecture,
                'species': list(species),
                'cutoff': float(cutoff),
                'seed': seed,
                'dtype': dtype,
                'training_set_uuid': training_set_uuid,
                'parent_model_uuid': parent_model_uuid,
                'has_extensions': extensions is not None,
            }
        )

    @staticmethod
    def _check_arguments(
        filepath: Path, architecture: str | None, species: Sequence[str], cutoff: float | None, dtype: str, extensions
    ) -> str | None:
        """Return a message naming the first invalid argument, or ``None``."""
        if not filepath.is_file():
            return f'`filepath` {filepath} is not a file'
        if not architecture:
            return '`architecture` must be given (e.g. `mace`, `pet`, `soap_bpnn`)'
        unknown = [symbol for symbol in species if symbol not in chemical_symbols[1:]]
        if not species or unknown:
            return f'`species` must be a non-empty list of chemical symbols, got {list(species)}'
        if cutoff is None or not cutoff > 0:
            return f'`cutoff` must be a positive distance in Å, got {cutoff}'
        if dtype not in DTYPES:
            return f'`dtype` must be one of {DTYPES}, got {dtype!r}'
        if extensions is not None and not Path(extensions).is_dir():
            return f'`extensions` {extensions} is not a folder'
        return None

    @property
    def filename(self) -> str:
        """Return the name of the model file."""
        return self.base.attributes.get('filename')

    @property
    def architecture(self) -> str:
        """Return the model architecture."""
        return self.base.attributes.get('architecture')

    @property
    def species(self) -> list[str]:
        """Return the chemical symbols the model knows."""
        return self.base.attributes.get('species')

    @property
    def cutoff(self) -> float:
        """Return the cutoff radius in Å."""
        return self.base.attributes.get('cutoff')

    @contextlib.contextmanager
    def as_folder(self) -> Iterator[Path]:
        """Yield a temporary folder holding ``model/<filename>`` and, if any, ``extensions/``."""
        with self.base.repository.as_path() as folder:
            yield Path(folder)

    @contextlib.contextmanager
    def model_path(self) -> Iterator[Path]:
        """Yield the path of a temporary copy of the model file (extensions, if any, in `../../extensions`)."""
        with self.as_folder() as folder:
            yield folder / self.MODEL_FOLDER / self.filename
