"""``ExplorationWorkChain``: molecular dynamics from every starting structure at a grid of temperatures and pressures.

Periodic structures run NPT (the barostat acts only on their periodic directions), non-periodic ones NVT
(:mod:`aiida_trainspot.exploration.conditions`). Every run is one
:class:`~aiida_trainspot.calculations.md.MdCalculation` driven by the committee mean (driver ``ase``), at most
``max_concurrent`` at once. The frames of every run are merged into one unlabelled dataset; a run the stability guard
stopped keeps the frames it wrote before, and is reported.
"""

from __future__ import annotations

import pathlib
from dataclasses import asdict
from typing import Any

from aiida import orm
from aiida.common import AttributeDict
from aiida.engine import WorkChain, while_
from aiida_quantumespresso.workflows.protocols.utils import ProtocolMixin

from ..calculations.functions.dataset import merge_datasets, subset_dataset
from ..calculations.functions.exploration import summarize_runs
from ..calculations.functions.lammps import frames_from_lammps, lammps_model
from ..calculations.md import MdCalculation, _models_error, drive_index, validate_structures
from ..data import PESData, PotentialData
from ..dataset import frame_to_atoms
from ..exploration.conditions import MdRun, conditions_error, exploration_runs
from ..runners.md_spec import md_spec_error
from .lammps_driver import get_lammps_builder, lammps_inputs_error, lammps_species
from .throttle import ThrottleMixin, default_max_concurrent, validate_max_concurrent

DRIVERS = ('ase', 'lammps')
"""How the MD runs: ``ase`` (``trainspot-md`` with the committee, any model ASE can load) or ``lammps`` (aiida-lammps
``lammps.raw`` with one potential: a classical potential file, a MACE or a metatomic model)."""
SET_PER_RUN = ('ensemble', 'temperature', 'pressure', 'seed', 'iteration', 'drive')
"""MD spec fields the work chain sets for each run (from the grid, ``seed``, ``iteration`` and ``md.drive``)."""


def validate_parameters(value: orm.Dict, _) -> str | None:
    """Return a message naming the first MD-spec field of ``parameters`` that is invalid or set per run."""
    fixed = sorted(set(value.get_dict()) & set(SET_PER_RUN))
    if fixed:
        return f'`parameters` sets {fixed}: these come from `temperatures`, `pressures`, `seed` and `iteration`'
    message = md_spec_error(value.get_dict())
    return f'`parameters`: {message}' if message else None


def _models_cover(models: dict, structures: PESData) -> str | None:
    """Return a message if the models are misnamed, disagree on species, or miss an element of ``structures``."""
    message = _models_error(models)
    if message:
        return f'`md.models`: {message}'
    known = set(next(iter(models.values())).species)
    missing = sorted(set(structures.species) - known)
    if missing:
        return f'`md.models` know {sorted(known)} but `structures` also hold {missing}'
    return None


def stage_error(inputs, num_models: int) -> str | None:
    """Return a message naming the first invalid input other than the models: conditions, driver, code, MD spec.

    ``num_models`` is the size of the committee that will drive the runs (the campaign checks before it has one).
    """
    message = conditions_error(inputs['temperatures'].get_list(), inputs['pressures'].get_list())
    if message:
        return message
    driver = inputs['driver'].value
    if driver not in DRIVERS:
        return f'unknown `driver` {driver!r}: choose from {list(DRIVERS)}'
    if driver == 'lammps':
        return _lammps_error(inputs)
    if 'md' not in inputs or 'code' not in inputs['md']:
        return 'the `ase` driver needs `md.code` (the `trainspot-md` runner) and `md.models`'
    code = inputs['md']['code']
    if code.default_calc_job_plugin not in (None, 'trainspot.md'):
        return f'`md.code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `trainspot.md`'
    drive = inputs['md']['drive'].value if 'drive' in inputs['md'] else 'mean'
    if drive != 'mean' and drive not in {f'member_{index}' for index in range(num_models)}:
        return f'`md.drive` must be `mean` or one of member_0 ... member_{num_models - 1}, got {drive!r}'
    parameters = {**inputs['parameters'].get_dict(), 'drive': drive_index(drive)}
    message = md_spec_error(parameters, num_models)
    return f'`parameters`: {message}' if message else None


def _lammps_error(inputs) -> str | None:
    """Return a message naming what keeps the ``lammps`` driver from running every structure, or ``None``.

    Without ``lammps.potential`` (the campaign gives its committee's first member) only the code is checked.
    """
    stage = inputs.get('lammps', {})
    if 'code' not in stage:
        return 'the `lammps` driver needs `lammps.code` (LAMMPS, plugin `lammps.raw`) and `lammps.potential`'
    code = stage['code']
    if code.default_calc_job_plugin not in (None, 'lammps.raw'):
        return f'`lammps.code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `lammps.raw`'
    if 'potential' not in stage or 'structures' not in inputs:
        return None
    pair_style = stage['pair_style'].value if 'pair_style' in stage else None
    temperature = inputs['temperatures'].get_list()[0]
    for index, frame in enumerate(inputs['structures'].iter_frames()):
        ensemble = 'npt' if any(frame.pbc) else 'nvt'
        parameters = {**inputs['parameters'].get_dict(), 'ensemble': ensemble, 'temperature': temperature}
        symbols = frame_to_atoms(frame).get_chemical_symbols()
        message = lammps_inputs_error(symbols, frame.pbc, stage['potential'], parameters, pair_style)
        if message:
            return f'`lammps`: structure {index}: {message}'
    return None


def validate_inputs(inputs, ctx) -> str | None:
    """Return a message naming the first invalid input: models, conditions, driver, code, MD spec.

    Exposed without the structures or the models (the campaign's exploration stage), the caller checks them with
    :func:`stage_error`.
    """
    if 'structures' not in ctx or 'models' not in ctx['md']:
        return None
    if inputs['driver'].value != 'ase':
        return stage_error(inputs, 1)
    models = inputs.get('md', {}).get('models', {})
    return _models_cover(models, inputs['structures']) or stage_error(inputs, len(models))


class ExplorationWorkChain(ProtocolMixin, ThrottleMixin, WorkChain):
    """Explore with MD from every structure: NPT on a temperature × pressure grid if periodic, NVT otherwise."""

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input(
            'structures',
            valid_type=PESData,
            validator=validate_structures,
            help='The starting structures, one frame each.',
        )
        spec.input('temperatures', valid_type=orm.List, help='Temperatures (K) of the runs.')
        spec.input(
            'pressures',
            valid_type=orm.List,
            default=lambda: orm.List([0.0]),
            help='Pressures (GPa) of the NPT runs of periodic structures; non-periodic ones run NVT per temperature.',
        )
        spec.input(
            'parameters',
            valid_type=orm.Dict,
            default=lambda: orm.Dict({}),
            validator=validate_parameters,
            help='The rest of the MD spec of every run: `timestep` (fs), `steps`, `thermalisation`, `stride`, '
            '`friction`, `taut`, `taup`, `compressibility`, `min_distance`, `max_force`, `uncertainty_stop`.',
        )
        spec.input(
            'driver', valid_type=orm.Str, default=lambda: orm.Str('ase'), help=f'The MD driver: one of {DRIVERS}.'
        )
        spec.input('seed', valid_type=orm.Int, default=lambda: orm.Int(0), help='Run k starts with seed `seed + k`.')
        spec.input(
            'iteration',
            valid_type=orm.Int,
            default=lambda: orm.Int(0),
            help='The active-learning iteration, written in every frame.',
        )
        spec.input(
            'max_concurrent',
            valid_type=orm.Int,
            required=False,
            validator=validate_max_concurrent,
            help='Most MD runs at once; default: cores over the cores of one job on a local computer.',
        )
        spec.expose_inputs(
            MdCalculation,
            namespace='md',
            exclude=('structures', 'parameters'),
            namespace_options={'required': False, 'populate_defaults': False, 'help': 'Inputs of the `ase` driver.'},
        )
        cls.define_lammps_namespace(spec)
        spec.inputs.validator = validate_inputs
        spec.outline(cls.setup, while_(cls.has_jobs)(cls.run_md, cls.inspect_md), cls.results)
        spec.output('frames', valid_type=PESData, help='The frames of every run, unlabelled (origin `md`).')
        spec.output(
            'runs',
            valid_type=orm.List,
            help='One entry per run: structure, ensemble, temperature, pressure, seed, stop reason, frames.',
        )
        spec.exit_code(410, 'ERROR_NO_FRAMES', message='No MD run wrote a frame: see the report of every run.')

    @staticmethod
    def define_lammps_namespace(spec) -> None:
        """Define the inputs of the ``lammps`` driver."""
        spec.input_namespace('lammps', required=False, populate_defaults=False, help='Inputs of the `lammps` driver.')
        spec.input('lammps.code', valid_type=orm.AbstractCode, required=False, help='LAMMPS (plugin `lammps.raw`).')
        spec.input(
            'lammps.potential',
            valid_type=(orm.SinglefileData, PotentialData),
            required=False,
            help='A classical potential file (with `pair_style`), or a MACE or metatomic model.',
        )
        spec.input(
            'lammps.pair_style',
            valid_type=orm.Str,
            required=False,
            help='The pair style of a potential file and its arguments, e.g. `tersoff`.',
        )
        spec.input('lammps.options', valid_type=orm.Dict, required=False, help='`metadata.options` of every run.')

    @classmethod
    def get_protocol_filepath(cls) -> pathlib.Path:
        """Return the path of the protocol file of this work chain."""
        return pathlib.Path(__file__).parent / 'protocols' / 'exploration.yaml'

    @classmethod
    def get_builder_from_protocol(
        cls,
        structures: PESData,
        code: orm.AbstractCode,
        models: dict[str, Any],
        protocol: str | None = None,
        overrides: dict | None = None,
    ):
        """Return a builder exploring ``structures`` with the committee ``models`` (``member_<k>``) on ``code``.

        :param protocol: ``fast``, ``balanced`` or ``stringent``; the default one if ``None``.
        :param overrides: inputs that replace the protocol's, e.g. ``{"temperatures": [500.0]}``.
        """
        inputs = cls.get_protocol_inputs(protocol, overrides)
        builder = cls.get_builder()
        builder.structures = structures
        builder.temperatures = orm.List(inputs['temperatures'])
        builder.pressures = orm.List(inputs['pressures'])
        builder.parameters = orm.Dict(inputs.get('parameters', {}))
        builder.driver = orm.Str(inputs['driver'])
        builder.seed = orm.Int(inputs['seed'])
        builder.iteration = orm.Int(inputs['iteration'])
        builder.md.code = code
        builder.md.models = models
        if 'max_concurrent' in inputs:
            builder.max_concurrent = orm.Int(inputs['max_concurrent'])
        return builder

    def setup(self):
        """Lay out the grid of runs, one starting structure per dataset, and the throttle."""
        pbcs = [frame.pbc.tolist() for frame in self.inputs.structures.iter_frames()]
        runs = exploration_runs(
            pbcs, self.inputs.temperatures.get_list(), self.inputs.pressures.get_list(), self.inputs.seed.value
        )
        self.ctx.runs = [asdict(run) for run in runs]
        self.ctx.starting = {}
        self.ctx.results = {}
        if self.inputs.driver.value == 'lammps':
            code, options = self.inputs.lammps.code, self.inputs.lammps.get('options', orm.Dict()).get_dict()
            if isinstance(self.inputs.lammps.potential, PotentialData):
                self.ctx.model_file = lammps_model(self.inputs.lammps.potential, metadata={'call_link_label': 'model'})
        else:
            code, options = self.inputs.md.code, dict(self.inputs.md.get('metadata', {}).get('options', {}))
        self.ctx.max_concurrent = (
            self.inputs.max_concurrent.value
            if 'max_concurrent' in self.inputs
            else default_max_concurrent(code, options)
        )
        self.queue_jobs(list(range(len(runs))))
        self.report(
            f'{len(runs)} MD runs from {len(pbcs)} structures '
            f'({sum(run.ensemble == "npt" for run in runs)} NPT), at most {self.ctx.max_concurrent} at once'
        )

    def _starting_structure(self, index: int) -> PESData:
        """Return the one-frame dataset of structure ``index`` (made once, recorded by ``subset_dataset``)."""
        key = str(index)
        if key not in self.ctx.starting:
            self.ctx.starting[key] = subset_dataset(
                self.inputs.structures, orm.List([index]), metadata={'call_link_label': f'structure_{index}'}
            ).uuid
        return orm.load_node(self.ctx.starting[key])

    def _md_builder(self, job: int):
        """Return the builder of the MD calculation of run ``job`` with the driver."""
        if self.inputs.driver.value == 'lammps':
            return self._lammps_builder(job)
        run = MdRun(**self.ctx.runs[job])
        inputs = AttributeDict(self.exposed_inputs(MdCalculation, namespace='md'))
        parameters = self._run_parameters(job)
        inputs.structures = self._starting_structure(run.structure)
        inputs.parameters = orm.Dict(parameters)
        inputs.metadata = {**inputs.get('metadata', {}), 'call_link_label': f'md_{job}'}
        builder = MdCalculation.get_builder()
        builder.update(inputs)
        return builder

    def _run_parameters(self, job: int) -> dict:
        """Return the MD spec of run ``job``."""
        run = MdRun(**self.ctx.runs[job])
        return {**self.inputs.parameters.get_dict(), **run.spec(), 'iteration': self.inputs.iteration.value}

    def _lammps_builder(self, job: int):
        """Return the builder of the ``lammps.raw`` calculation of run ``job``."""
        run = MdRun(**self.ctx.runs[job])
        stage = self.inputs.lammps
        atoms = frame_to_atoms(self.inputs.structures.get_frame(run.structure))
        builder = get_lammps_builder(
            stage.code,
            atoms,
            stage.potential,
            self._run_parameters(job),
            options=stage.get('options', orm.Dict()).get_dict(),
            pair_style=stage.pair_style.value if 'pair_style' in stage else None,
            model_file=self.ctx.get('model_file'),
        )
        builder.metadata.call_link_label = f'md_{job}'
        return builder

    def run_md(self):
        """Start runs until the slots are full; wait for a running one."""
        return self.start_jobs(self._md_builder)

    def inspect_md(self):
        """Record every run that ended: its frames (also those written before a stability stop) and its outcome."""
        self.collect_ended(self._collect)

    def _collect(self, job: int, child: orm.ProcessNode) -> None:
        """Keep the outcome of run ``job``: its output parameters and frames, if any; report a run that failed."""
        outputs = {name: child.outputs[name].uuid for name in ('frames', 'output_parameters') if name in child.outputs}
        if self.inputs.driver.value == 'lammps' and child.is_finished_ok:
            outputs = {'frames': self._lammps_frames(job, child).uuid}
        self.ctx.results[str(job)] = outputs
        if not child.is_finished_ok:
            run = self.ctx.runs[job]
            kept = len(child.outputs.frames) if 'frames' in outputs else 0
            self.report(
                f'run {job} ({run["ensemble"]} {run["temperature"]} K, structure {run["structure"]}): '
                f'{child.process_label}<{child.pk}> exit status {child.exit_status}: {child.exit_message}; '
                f'kept its {kept} frames'
            )

    def _lammps_frames(self, job: int, child: orm.CalcJobNode) -> PESData:
        """Return the frames the LAMMPS run ``job`` dumped (recorded by ``frames_from_lammps``)."""
        symbols = frame_to_atoms(
            self.inputs.structures.get_frame(self.ctx.runs[job]['structure'])
        ).get_chemical_symbols()
        species = lammps_species(symbols, self.inputs.lammps.potential)
        return frames_from_lammps(
            child.outputs.retrieved,
            orm.List(species),
            orm.Dict(self._run_parameters(job)),
            metadata={'call_link_label': f'frames_{job}'},
        )

    def results(self):
        """Merge the frames of every run into ``frames``; attach the outcome of every run."""
        outcomes = {f'run_{job}': self.ctx.results.get(str(job), {}) for job in range(len(self.ctx.runs))}
        parameters = {
            label: orm.load_node(outcome.get('output_parameters', outcome.get('frames')))
            for label, outcome in outcomes.items()
            if outcome
        }
        self.out('runs', summarize_runs(orm.List(self.ctx.runs), **parameters, metadata={'call_link_label': 'runs'}))
        frames = {
            label: orm.load_node(outcome['frames'])
            for label, outcome in outcomes.items()
            if 'frames' in outcome and len(orm.load_node(outcome['frames']))
        }
        if not frames:
            return self.exit_codes.ERROR_NO_FRAMES
        merged = merge_datasets(**frames, metadata={'call_link_label': 'merge_frames'})
        self.out('frames', merged)
        self.report(f'{len(merged)} frames from {len(frames)} of {len(outcomes)} runs')
        return None
