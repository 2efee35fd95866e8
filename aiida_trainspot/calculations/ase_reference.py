"""``AseReferenceCalculation``: label a dataset with a cheap reference calculator through ``trainspot-ase-label``.

The calculators (EMT, Lennard-Jones, Morse, a LAMMPS classical potential) are **not DFT**: they give the labelling
step's contract (energy, forces, stress of fully periodic frames, a failure reason for frames that fail) in seconds,
for tutorials and for tests of the active-learning loop. The job copies the dataset file and writes
``calculator.json``; the runner :mod:`aiida_trainspot.runners.ase_label` does the work on the computer, and
:class:`~aiida_trainspot.parsers.ase_reference.AseReferenceParser` reads what it wrote.
"""

from __future__ import annotations

import json

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from ..data import PESData
from ..runners.calculators import validate_calculator_spec


def validate_calculator(value: orm.Dict, _) -> str | None:
    """Return a message if ``calculator`` is not a calculator spec the runner can build."""
    try:
        validate_calculator_spec(value.get_dict())
    except ValueError as exception:
        return f'`calculator`: {exception}'
    return None


def validate_dataset(value: PESData, _) -> str | None:
    """Return a message if ``dataset`` has no frames."""
    if len(value) == 0:
        return '`dataset` has no frames'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message if ``code`` is set up for another calculation plugin."""
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, 'trainspot.ase_reference'):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.ase_reference`'
    return None


class AseReferenceCalculation(CalcJob):
    """Label every frame of a dataset with an ASE reference calculator (not DFT), in one job.

    The code is the ``trainspot-ase-label`` console script of this package, installed on the computer. Every frame
    comes back: labelled (energy in eV, forces in eV/Å, and for frames periodic in three directions the 3×3 stress in
    eV/Å³ with ASE's sign), or unlabelled with the reason its calculation failed.
    """

    _INPUT_DATASET = 'dataset.h5'
    _CALCULATOR_FILENAME = 'calculator.json'
    _OUTPUT_DATASET = 'labelled.h5'
    _RESULTS_FILENAME = 'results.json'
    _OUTPUT_FILENAME = 'ase_label.out'
    _ERROR_FILENAME = 'ase_label.err'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('dataset', valid_type=PESData, validator=validate_dataset, help='The frames to label.')
        spec.input(
            'calculator',
            valid_type=orm.Dict,
            validator=validate_calculator,
            help='The reference calculator: `{"name": "emt"}`, `{"name": "lennard_jones", "parameters": {"sigma": '
            '.., "epsilon": .., "rc": ..}}`, `{"name": "morse", "parameters": {"epsilon": .., "r0": .., "rho0": ..}}` '
            'or `{"name": "lammps", "parameters": {"pair_style": "tersoff", "pair_coeff": ["* * SiC.tersoff C"], '
            '"potential_files": ["/usr/share/lammps/potentials/SiC.tersoff"]}}`. Not DFT.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = 'trainspot.ase_reference'
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = False
        options['resources'].default = {'num_machines': 1, 'num_mpiprocs_per_machine': 1}
        spec.output(
            'labelled_dataset',
            valid_type=PESData,
            help='Every frame of `dataset`, labelled or with the `failure_reason` of its calculation.',
        )
        spec.output(
            'output_parameters',
            valid_type=orm.Dict,
            help='The calculator, the numbers of frames, labelled and failed frames, the first failures and the wall '
            'time.',
        )
        spec.default_output_node = 'output_parameters'
        spec.exit_code(300, 'ERROR_OUTPUT_MISSING', message='`{filename}` was not written or retrieved: {reason}')
        spec.exit_code(310, 'ERROR_OUTPUT_UNREADABLE', message='`{filename}` cannot be read: {reason}')
        spec.exit_code(
            410,
            'ERROR_ALL_FRAMES_FAILED',
            message='The calculation of every frame failed (the dataset is attached); the first: {reason}',
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write ``calculator.json`` and have the dataset file copied next to it from the node's repository."""
        spec = validate_calculator_spec(self.inputs.calculator.get_dict())
        with folder.open(self._CALCULATOR_FILENAME, 'w', encoding='utf8') as handle:
            json.dump(spec, handle, indent=2)

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.cmdline_params = [
            '--input', self._INPUT_DATASET,
            '--calculator', self._CALCULATOR_FILENAME,
            '--output', self._OUTPUT_DATASET,
            '--results', self._RESULTS_FILENAME,
        ]  # fmt: skip
        codeinfo.stdout_name = self.options.output_filename
        codeinfo.stderr_name = self._ERROR_FILENAME

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.local_copy_list = [(self.inputs.dataset.uuid, PESData.FILENAME, self._INPUT_DATASET)]
        calcinfo.retrieve_list = [self._RESULTS_FILENAME, self.options.output_filename, self._ERROR_FILENAME]
        calcinfo.retrieve_temporary_list = [self._OUTPUT_DATASET]
        return calcinfo
