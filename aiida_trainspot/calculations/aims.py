"""``AimsCalculation``: an FHI-aims single point that gives the energy, forces and stress of a structure.

It writes ``control.in`` (the ``parameters``, forces and stress requests, a k-point grid, and the species blocks of
the elements present from the user's species-defaults folder) and ``geometry.in``; :class:`~aiida_trainspot.parsers.
aims.AimsParser` reads ``aims.out``. FHI-aims itself was not run while this was built: the inputs written and the
outputs parsed are tested against FHI-aims' species-file layout and the real outputs that ASE ships.
"""

from __future__ import annotations

from aiida import orm
from aiida.common.datastructures import CalcInfo, CodeInfo
from aiida.common.folders import Folder
from aiida.engine import CalcJob

from ..dft.aims import (
    BASIS_SETTINGS,
    check_aims_structure,
    check_parameters,
    check_species_block,
    control_text,
    geometry_text,
    labelling_keywords,
    missing_species,
    species_filename,
)


def validate_basis(value: orm.Str, _) -> str | None:
    """Return a message if ``basis`` is not a species-defaults setting we know."""
    if value.value not in BASIS_SETTINGS:
        return f'`basis` {value.value!r} is not one of {BASIS_SETTINGS}'
    return None


def validate_parameters(value: orm.Dict, _) -> str | None:
    """Return a message if ``parameters`` cannot be written as ``control.in`` keywords."""
    message = check_parameters(value.get_dict())
    return f'`parameters`: {message}' if message else None


def validate_kpoints_spacing(value: orm.Float, _) -> str | None:
    """Return a message if ``kpoints_spacing`` is not positive."""
    if value.value <= 0:
        return f'`kpoints_spacing` must be positive, got {value.value}'
    return None


def check_species(species: orm.FolderData, basis: str, symbols: list[str]) -> str | None:
    """Return a message naming the first element of ``symbols`` without a good species file in ``species/basis/``."""
    try:
        names = species.list_object_names(basis)
    except (FileNotFoundError, NotADirectoryError):
        return f'`species` has no sub-folder `{basis}`: give the folder laid out as `species_defaults/defaults_2020`'
    missing = missing_species(symbols, names)
    if missing:
        return f'`species` has no species defaults for {missing} in `{basis}/` (files named like `06_C_default`)'
    for symbol in symbols:
        message = check_species_block(species.get_object_content(f'{basis}/{species_filename(symbol)}'), symbol)
        if message:
            return f'`species`: {message}'
    return None


def validate_inputs(inputs, _) -> str | None:
    """Return a message naming the first invalid input, checked before anything runs."""
    code = inputs.get('code')
    if code is not None and code.default_calc_job_plugin not in (None, 'trainspot.aims'):
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.aims`'
    if 'structure' not in inputs:
        return None
    atoms = inputs['structure'].get_ase()
    message = check_aims_structure(atoms)
    if message:
        return f'`structure`: {message}'
    if atoms.pbc.any() and 'kpoints_spacing' not in inputs:
        return '`kpoints_spacing` is required for a periodic `structure`'
    if 'species' in inputs and 'basis' in inputs:
        symbols = list(dict.fromkeys(atoms.get_chemical_symbols()))
        return check_species(inputs['species'], inputs['basis'].value, symbols)
    return None


class AimsCalculation(CalcJob):
    """FHI-aims single point of one structure: energy, forces, and the stress of fully periodic cells.

    The species blocks come from ``species``, a folder laid out as FHI-aims' ``species_defaults/defaults_2020``
    (sub-folders ``light/``, ``intermediate/``, ``tight/`` with files ``NN_El_default``); ``basis`` picks the
    sub-folder. Periodic structures are computed as periodic in three dimensions (FHI-aims has no other), with a
    k-point grid from ``kpoints_spacing`` and one k-point along vacuum directions.
    """

    _CONTROL_FILENAME = 'control.in'
    _GEOMETRY_FILENAME = 'geometry.in'
    _OUTPUT_FILENAME = 'aims.out'

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('structure', valid_type=orm.StructureData, help='The structure to compute.')
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            validator=validate_parameters,
            help='`control.in` keywords and their values (`xc` is required); booleans become `.true.`/`.false.`, '
            'lists are joined by spaces, a list of lists writes the keyword once per inner list. Species blocks, '
            '`compute_forces`, `compute_*_stress` and `k_grid` are set by the calculation and rejected here.',
        )
        spec.input(
            'species',
            valid_type=orm.FolderData,
            help='FHI-aims species defaults laid out as `species_defaults/defaults_2020`: sub-folders `light/`, '
            '`intermediate/`, `tight/` holding files named `NN_El_default` (e.g. `light/06_C_default`).',
        )
        spec.input(
            'basis',
            valid_type=orm.Str,
            default=lambda: orm.Str('light'),
            validator=validate_basis,
            help='The species-defaults setting, the sub-folder of `species` to read: `light`, `intermediate` or '
            '`tight`.',
        )
        spec.input(
            'kpoints_spacing',
            valid_type=orm.Float,
            required=False,
            validator=validate_kpoints_spacing,
            help='Largest spacing (Å⁻¹, with the 2π) between k-points along each reciprocal vector; required for a '
            'periodic structure, ignored for a molecule.',
        )
        spec.inputs.validator = validate_inputs
        options = spec.inputs['metadata']['options']
        options['parser_name'].default = 'trainspot.aims'
        options['input_filename'].default = cls._CONTROL_FILENAME
        options['output_filename'].default = cls._OUTPUT_FILENAME
        options['withmpi'].default = True
        spec.output(
            'output_parameters',
            valid_type=orm.Dict,
            help='Energy (eV, electronic free energy), SCF convergence and iterations, FHI-aims version, wall time.',
        )
        spec.output(
            'output_arrays',
            valid_type=orm.ArrayData,
            required=False,
            help="`forces` (N, 3) in eV/Å and, for periodic cells, `stress` (3, 3) in eV/Å³ with ASE's sign.",
        )
        spec.output(
            'output_structure',
            valid_type=orm.StructureData,
            required=False,
            help='The last structure, when the run moved the atoms (a relaxation or MD set in `parameters`).',
        )
        spec.default_output_node = 'output_parameters'
        spec.exit_code(300, 'ERROR_OUTPUT_STDOUT_MISSING', message='The FHI-aims output file was not retrieved.')
        spec.exit_code(310, 'ERROR_OUTPUT_STDOUT_READ', message='The FHI-aims output file could not be read: {reason}')
        spec.exit_code(
            312, 'ERROR_OUTPUT_STDOUT_INCOMPLETE', message='The FHI-aims output file is incomplete: {reason}'
        )
        spec.exit_code(
            410, 'ERROR_ELECTRONIC_CONVERGENCE_NOT_REACHED', message='The SCF cycle did not converge: {reason}'
        )

    def prepare_for_submission(self, folder: Folder) -> CalcInfo:
        """Write ``control.in`` and ``geometry.in``; FHI-aims reads both from its working directory."""
        atoms = self.inputs.structure.get_ase()
        spacing = self.inputs.kpoints_spacing.value if 'kpoints_spacing' in self.inputs else None
        keywords = {**self.inputs.parameters.get_dict(), **labelling_keywords(atoms, spacing)}
        basis = self.inputs.basis.value
        blocks = {
            symbol: self.inputs.species.get_object_content(f'{basis}/{species_filename(symbol)}')
            for symbol in dict.fromkeys(atoms.get_chemical_symbols())
        }
        with folder.open(self._CONTROL_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(control_text(keywords, blocks))
        with folder.open(self._GEOMETRY_FILENAME, 'w', encoding='utf8') as handle:
            handle.write(geometry_text(atoms))

        codeinfo = CodeInfo()
        codeinfo.code_uuid = self.inputs.code.uuid
        codeinfo.stdout_name = self.options.output_filename

        calcinfo = CalcInfo()
        calcinfo.codes_info = [codeinfo]
        calcinfo.retrieve_list = [self.options.output_filename]
        return calcinfo
