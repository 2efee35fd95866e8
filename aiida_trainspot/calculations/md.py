"""``MdCalculation``: molecular dynamics with trained models through ``trainspot-md`` (exploration).

The job copies the starting frames and every model (``models/member_<k>/``) from the nodes' repositories, writes
``md.json`` (the MD spec of :mod:`aiida_trainspot.runners.md_spec`) and ``models.json`` (the model specs of
:mod:`aiida_trainspot.runners.models`); :class:`~aiida_trainspot.parsers.md.MdParser` reads what the runner wrote.
"""

from __future__ import annotations

import json

import numpy as np
from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from ..data import PESData, PotentialData
from ..runners.md_spec import md_spec_error, validate_md_spec
from .models import model_files, ordered_members


def drive_index(drive: str) -> str | int:
    """Return the runner's ``drive``: ``mean`` or the member index of ``member_<k>``."""
    return drive if drive == 'mean' else int(drive.removeprefix('member_'))


def _models_error(models) -> str | None:
    """Return a message if the ``models`` namespace is empty, misnamed or mixes species sets."""
    names = list(models or {})
    if not names:
        return '`models` needs at least one model (`member_0`)'
    bad = [name for name in names if not (name.startswith('member_') and name[7:].isdigit())]
    if bad or sorted(int(name[7:]) for name in names) != list(range(len(names))):
        return f'`models` must be named `member_0` ... `member_{len(names) - 1}`, got {sorted(names)}'
    species = {name: sorted(models[name].species) for name in names}
    if len({tuple(value) for value in species.values()}) > 1:
        return f'`models` know different species sets: {species}'
    return None


def validate_inputs(inputs, ctx) -> str | None:
    """Return a message naming the input that is wrong: models, drive, MD parameters against the structures, code.

    Exposed without the models (the exploration work chain of a campaign), the caller checks them.
    """
    if 'models' not in ctx:
        return None
    models = inputs.get('models', {})
    message = _models_error(models)
    if message:
        return message
    drive = inputs.get('drive')
    drive = drive.value if drive is not None else 'mean'
    if drive != 'mean' and drive not in models:
        return f'`drive` must be `mean` or one of {[name for name, _ in ordered_members(models)]}, got {drive!r}'
    parameters = inputs.get('parameters')
    structures = inputs.get('structures')
    if parameters is not None and structures is not None:
        pbcs = [frame.pbc.tolist() for frame in structures.iter_frames()]
        message = md_spec_error({**parameters.get_dict(), 'drive': drive_index(drive)}, len(models), pbcs)
        if message:
            return f'`parameters`: {message}'
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, 'trainspot.md'):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.md`'
    return None


def validate_parameters(value: orm.Dict, _) -> str | None:
    """Return a message naming the invalid field of the MD spec (``drive`` is its own input)."""
    if 'drive' in value.get_dict():
        return '`parameters`: set `drive` through the `drive` input'
    message = md_spec_error(value.get_dict())
    return f'`parameters`: {message}' if message else None


def validate_structures(value: PESData, _) -> str | None:
    """Return a message if ``structures`` has no frames, or a frame of one atom (nothing moves, its centre fixed)."""
    if len(value) == 0:
        return '`structures` has no frames'
    start = 0
    for batch in value.iter_batches():
        single = np.flatnonzero(batch.natoms < 2)
        if len(single):
            return (
                f'frame {start + single[0]} of `structures` has one atom: the MD fixes the centre of mass, so nothing '
                'would move; give a supercell'
            )
        start += len(batch)
    return None


class MdCalculation(CalcJob):
    """Run molecular dynamics from every frame of ``structures`` with one trained model or a committee.

    The code is the ``trainspot-md`` console script of this package. The dynamics is driven by the committee mean or
    by one member; with a committee, every kept frame carries the members' predictions and disagreement metrics.
    """

    _STRUCTURES = 'structures.h5'
    _SPEC_FILENAME = 'md.json'
    _MODELS_FILENAME = 'models.json'
    _OUTPUT_DATASET = 'frames.h5'
    _TRACE_FILENAME = 'trace.json'
    _RESULTS_FILENAME = 'results.json'
    _OUTPUT_FILENAME = 'md.out'
    _ERROR_FILENAME = 'md.err'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'structures', valid_type=PESData, validator=validate_structures, help='The starting frames, one run each.'
        )
        spec.input_namespace(
            'models',
            valid_type=PotentialData,
            dynamic=True,
            help='The trained models, `member_0`, `member_1`... (one, or a committee sharing one species set).',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=validate_parameters,
            help='The MD spec: `ensemble` (nvt|npt), `temperature` (K), `pressure` (GPa, npt), `timestep` (fs), '
            '`steps`, `thermalisation`, `stride`, `friction` (1/fs), `taut`/`taup` (fs), `compressibility` (1/GPa), '
            '`seed`, `iteration`, `min_distance` (Å), `max_force` (eV/Å), `uncertainty_stop` ({threshold, every}, '
            '{moving_average, training_set_size, every} or null); see `aiida_trainspot.runners.md_spec`.',
        )
        spec.input(
            'drive',
            valid_type=orm.Str,
            default=lambda: orm.Str('mean'),
            help='Which model drives the dynamics: `mean` (the committee mean) or `member_<k>`.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = 'trainspot.md'
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = False
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.output('frames', valid_type=PESData, help='The kept frames (origin `md`), unlabelled.')
        spec.output(
            'trace', valid_type=orm.ArrayData, help='Per checked step: run, step, time (fs), temperature, uncertainty.'
        )
        spec.output('output_parameters', valid_type=orm.Dict, help='The stop reason, the counts and the wall time.')
        spec.default_output_node = 'output_parameters'
        spec.exit_code(300, 'ERROR_OUTPUT_MISSING', message='`{filename}` was not written or retrieved: {reason}')
        spec.exit_code(310, 'ERROR_OUTPUT_UNREADABLE', message='`{filename}` cannot be read: {reason}')
        spec.exit_code(
            410, 'ERROR_UNSTABLE', message='The stability guard stopped the dynamics (frames attached): {reason}'
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write ``md.json`` and ``models.json``; have the structures and the model files copied from the nodes."""
        parameters = {**self.inputs.parameters.get_dict(), 'drive': drive_index(self.inputs.drive.value)}
        model_specs, model_copies = model_files(self.inputs.models)
        local_copy_list = [(self.inputs.structures.uuid, PESData.FILENAME, self._STRUCTURES), *model_copies]
        with folder.open(self._SPEC_FILENAME, 'w', encoding='utf8') as handle:
            json.dump(validate_md_spec(parameters), handle, indent=2)
        with folder.open(self._MODELS_FILENAME, 'w', encoding='utf8') as handle:
            json.dump(model_specs, handle, indent=2)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [
            '--structures', self._STRUCTURES,
            '--spec', self._SPEC_FILENAME,
            '--models', self._MODELS_FILENAME,
            '--output', self._OUTPUT_DATASET,
            '--trace', self._TRACE_FILENAME,
            '--results', self._RESULTS_FILENAME,
        ]  # fmt: skip
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = self._ERROR_FILENAME

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = local_copy_list
        calcinfo.retrieve_list = [
            self._RESULTS_FILENAME, self._TRACE_FILENAME, self.options.output_filename, self._ERROR_FILENAME
        ]  # fmt: skip
        calcinfo.retrieve_temporary_list = [self._OUTPUT_DATASET]
        return calcinfo
