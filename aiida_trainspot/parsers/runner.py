"""What the parsers of our runners (``trainspot-ase-label``, ``trainspot-evaluate``, ``trainspot-md``) share.

Each runner writes a dataset file (retrieved into the temporary folder, so it is stored once, in the output node),
JSON files, and its last error line to standard error. A missing file gives ``ERROR_OUTPUT_MISSING`` with that error
line; an unreadable one ``ERROR_OUTPUT_UNREADABLE`` with the reason. The parser never raises.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from aiida.engine import ExitCode
from aiida.parsers import Parser

from ..data import PESData
from ..dataset import CorruptDatasetError

JSON_KINDS = {dict: 'object', list: 'array'}


class RunnerParser(Parser):
    """A parser of a runner's output files; the CalcJob names them in ``_ERROR_FILENAME`` and friends."""

    def read_dataset(
        self, temporary_folder: str | None, filename: str, frames: int | None = None
    ) -> PESData | ExitCode:
        """Return the dataset ``filename`` of the temporary retrieved folder (of ``frames`` frames if given)."""
        filepath = Path(temporary_folder) / filename if temporary_folder else None
        if filepath is None or not filepath.is_file():
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=filename, reason=self.runner_error())
        try:
            dataset = PESData(filepath)
        except CorruptDatasetError as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=str(exception))
        if frames is not None and len(dataset) != frames:
            reason = f'it holds {len(dataset)} frames, the input dataset {frames}'
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=reason)
        return dataset

    def read_json(self, filename: str, kind: type = dict) -> Any:
        """Return the JSON ``kind`` (dict or list) in the retrieved ``filename``, or the exit code saying why not."""
        try:
            content = json.loads(self.retrieved.get_object_content(filename))
        except FileNotFoundError:
            return self.exit_codes.ERROR_OUTPUT_MISSING.format(filename=filename, reason=self.runner_error())
        except (OSError, ValueError) as exception:
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=str(exception))
        if not isinstance(content, kind):
            reason = f'not a JSON {JSON_KINDS[kind]}'
            return self.exit_codes.ERROR_OUTPUT_UNREADABLE.format(filename=filename, reason=reason)
        return content

    def runner_error(self) -> str:
        """Return the last line the runner printed to standard error, or say that it printed none."""
        try:
            lines = self.retrieved.get_object_content(self.node.process_class._ERROR_FILENAME).strip().splitlines()
        except (FileNotFoundError, OSError, UnicodeDecodeError):
            lines = []
        return lines[-1] if lines else 'the runner printed no error'
