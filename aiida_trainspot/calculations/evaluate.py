"""``EvaluationCalculation``: the predictions of a committee of models on a dataset, through ``trainspot-evaluate``.

The job copies the dataset file and every model (with its ``extensions/`` folder, if any) from the node repositories
into the job folder as ``models/member_<k>/``, and writes ``models.json``, the list of model specs the runner
:mod:`aiida_trainspot.runners.evaluate` loads. :class:`~aiida_trainspot.parsers.evaluate.EvaluationParser` reads what
it wrote: the frames with the committee columns and the disagreement metrics of
:mod:`aiida_trainspot.uncertainty.metrics`.
"""

from __future__ import annotations

import json

from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob
from aiida.orm import Dict

from ..data import PESData, PotentialData
from .models import MEMBER_NAME, model_files, ordered_members


def validate_models(value, _) -> str | None:
    """Return a message unless ``models`` holds at least two ``member_<k>`` models of the same species."""
    names = sorted(value or {})
    wrong = [name for name in names if not MEMBER_NAME.fullmatch(name)]
    if wrong:
        return f'`models`: the members must be named `member_<k>` (k = 0, 1, ...), got {wrong}'
    if len(names) < 2:
        return f'`models`: a committee needs at least 2 members, got {len(names)} ({names})'
    species = {name: sorted(model.species) for name, model in value.items()}
    first = names[0]
    different = [name for name in names if species[name] != species[first]]
    if different:
        found = ', '.join(f'{name} {species[name]}' for name in [first, *different])
        return f'`models`: every member must know the same species: {found}'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message if the models do not know every species of ``dataset`` or ``code`` runs another plugin."""
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, 'trainspot.evaluate'):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.evaluate`'
    dataset, models = inputs.get('dataset'), inputs.get('models') or {}
    if dataset is not None and models:
        name, model = ordered_members(models)[0]
        unknown = sorted(set(dataset.species) - set(model.species))
        if unknown:
            return f'`dataset` has species {unknown} that the models (e.g. `{name}`: {model.species}) do not know'
    return None


def validate_dataset(value: PESData, _) -> str | None:
    """Return a message if ``dataset`` has no frames."""
    if len(value) == 0:
        return '`dataset` has no frames'
    return None


class EvaluationCalculation(CalcJob):
    """Predict every frame of a dataset with every member of a committee, and measure their disagreement.

    The code is the ``trainspot-evaluate`` console script of this package, installed on the computer. The output
    dataset is the input frames (labels untouched) with, per frame, ``committee_energy`` (M,) eV, ``committee_stress``
    (M, 3, 3) eV/Å³ (NaN unless periodic in three directions), ``energy_std_per_atom`` (eV/atom),
    ``force_disagreement`` (eV/Å, aims-PAX Eq. 1), ``force_mean_deviation`` (eV/Å) and ``stress_std`` (eV/Å³), and per
    atom ``committee_forces`` (M, 3) eV/Å.
    """

    _INPUT_DATASET = 'dataset.h5'
    _MODELS_FILENAME = 'models.json'
    _OUTPUT_DATASET = 'evaluated.h5'
    _RESULTS_FILENAME = 'results.json'
    _OUTPUT_FILENAME = 'evaluate.out'
    _ERROR_FILENAME = 'evaluate.err'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('dataset', valid_type=PESData, validator=validate_dataset, help='The frames to evaluate.')
        spec.input_namespace(
            'models',
            valid_type=PotentialData,
            dynamic=True,
            validator=validate_models,
            help='The committee: trained models named `member_0`, `member_1`, ... (at least 2), all knowing the same '
            'species.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = 'trainspot.evaluate'
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = False
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.output(
            'evaluated_dataset',
            valid_type=PESData,
            help="The frames of `dataset` with every member's predictions and the disagreement metrics as columns.",
        )
        spec.output(
            'output_parameters',
            valid_type=Dict,
            help='The numbers of frames, atoms and members, the mean of every metric, the largest force disagreement '
            'and the wall time.',
        )
        spec.default_output_node = 'output_parameters'
        spec.exit_code(300, 'ERROR_OUTPUT_MISSING', message='`{filename}` was not written or retrieved: {reason}')
        spec.exit_code(310, 'ERROR_OUTPUT_UNREADABLE', message='`{filename}` cannot be read: {reason}')
        spec.exit_code(400, 'ERROR_MODEL_LOAD_FAILED', message='The model of `{member}` cannot be loaded: {reason}')
        spec.exit_code(410, 'ERROR_PREDICTION_FAILED', message='The prediction of `{member}` failed: {reason}')

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write ``models.json`` and have the dataset and the model files copied next to it from the repositories."""
        specs, model_copies = model_files(self.inputs.models)
        with folder.open(self._MODELS_FILENAME, 'w', encoding='utf8') as handle:
            json.dump(specs, handle, indent=2)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [
            '--input', self._INPUT_DATASET,
            '--models', self._MODELS_FILENAME,
            '--output', self._OUTPUT_DATASET,
            '--results', self._RESULTS_FILENAME,
        ]  # fmt: skip
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = self._ERROR_FILENAME

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(self.inputs.dataset.uuid, PESData.FILENAME, self._INPUT_DATASET), *model_copies]
        calcinfo.retrieve_list = [self._RESULTS_FILENAME, self.options.output_filename, self._ERROR_FILENAME]
        calcinfo.retrieve_temporary_list = [self._OUTPUT_DATASET]
        return calcinfo
