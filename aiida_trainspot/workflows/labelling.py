"""``AbInitioLabellingWorkChain``: DFT energies, forces and stresses for every frame of a dataset."""

from __future__ import annotations

from aiida import orm
from aiida.engine import ToContext, WorkChain, calcfunction
from aiida.plugins import WorkflowFactory
from aiida_pseudo.groups.family import PseudoPotentialFamily

from ..calculations.functions.labels import labels_from_pw
from ..data import PESData
from ..dataset import frame_to_atoms

PwBaseWorkChain = WorkflowFactory('quantumespresso.pw.base')


@calcfunction
def frame_structure(dataset: PESData, index: orm.Int) -> orm.StructureData:
    """Return frame ``index`` of ``dataset`` as the ``StructureData`` a DFT code takes."""
    return orm.StructureData(ase=frame_to_atoms(dataset.get_frame(index.value)))


def validate_inputs(inputs, _):
    """Return a message naming the first invalid input, checked before any calculation starts."""
    code = inputs['code']
    if code.default_calc_job_plugin != 'quantumespresso.pw':
        return f'`code` {code.full_label} runs `{code.default_calc_job_plugin}`, expected `quantumespresso.pw`'
    if inputs['protocol'].value not in PwBaseWorkChain.get_available_protocols():
        return (
            f'unknown `protocol` {inputs["protocol"].value!r}: choose from {PwBaseWorkChain.get_available_protocols()}'
        )
    family_label = inputs['pseudo_family'].value
    family = orm.QueryBuilder().append(PseudoPotentialFamily, filters={'label': family_label}).first(flat=True)
    if family is None:
        return f'`pseudo_family` {family_label!r} does not exist: run `aiida-trainspot setup` or install it'
    missing = sorted(set(inputs['dataset'].species) - set(family.elements))
    if missing:
        return f'`pseudo_family` {family_label!r} has no pseudopotential for {missing}'
    if len(inputs['dataset']) == 0:
        return '`dataset` is empty'
    return None


class AbInitioLabellingWorkChain(WorkChain):
    """Label every frame of a dataset with Quantum ESPRESSO, one ``PwBaseWorkChain`` per frame.

    Each frame gets its own protocol inputs (k-point mesh from the spacing, convergence threshold from its atom count,
    cutoffs from the pseudopotential family), and ``PwBaseWorkChain``'s error handlers deal with what they can. A
    frame whose DFT still fails stays in the output without labels and with its failure reason.
    """

    @classmethod
    def define(cls, spec):
        """Define the process specification."""
        super().define(spec)
        spec.input('dataset', valid_type=PESData, help='The frames to label.')
        spec.input('code', valid_type=orm.AbstractCode, help='The `pw.x` code (plugin `quantumespresso.pw`).')
        spec.input('pseudo_family', valid_type=orm.Str, help='Label of the pseudopotential family with cutoffs.')
        spec.input(
            'protocol',
            valid_type=orm.Str,
            default=lambda: orm.Str('fast'),
            help='`PwBaseWorkChain` protocol applied to each frame: `fast`, `balanced` or `stringent`.',
        )
        spec.input(
            'overrides',
            valid_type=orm.Dict,
            required=False,
            help='Overrides of the `PwBaseWorkChain` protocol inputs, applied to each frame.',
        )
        spec.input(
            'options',
            valid_type=orm.Dict,
            required=False,
            help='`metadata.options` of each pw.x job (resources, walltime, ...).',
        )
        spec.inputs.validator = validate_inputs
        spec.outline(cls.run_labelling, cls.inspect_labelling, cls.results)
        spec.output('labelled_dataset', valid_type=PESData, help='The frames with labels, or with failure reasons.')
        spec.exit_code(
            401, 'ERROR_ALL_LABELLING_FAILED', message='The DFT calculation of every frame failed: see the report.'
        )

    def run_labelling(self):
        """Submit one ``PwBaseWorkChain`` per frame."""
        overrides = {**(self.inputs.overrides.get_dict() if 'overrides' in self.inputs else {})}
        overrides['pseudo_family'] = self.inputs.pseudo_family.value
        options = self.inputs.options.get_dict() if 'options' in self.inputs else None
        children = {}
        for index in range(len(self.inputs.dataset)):
            structure = frame_structure(
                self.inputs.dataset, orm.Int(index), metadata={'call_link_label': f'structure_{index}'}
            )
            builder = PwBaseWorkChain.get_builder_from_protocol(
                self.inputs.code, structure, self.inputs.protocol.value, overrides=overrides, options=options
            )
            builder.metadata.call_link_label = f'pw_{index}'
            children[f'pw_{index}'] = self.submit(builder)
        self.report(f'submitted {len(children)} PwBaseWorkChain for the frames of PESData<{self.inputs.dataset.pk}>')
        return ToContext(**children)

    def inspect_labelling(self):
        """Collect the results of the finished children and the reasons of the failed ones."""
        self.ctx.results, self.ctx.failures = {}, {}
        for index in range(len(self.inputs.dataset)):
            child = self.ctx[f'pw_{index}']
            if child.is_finished_ok:
                self.ctx.results[f'parameters_{index}'] = child.outputs.output_parameters
                self.ctx.results[f'trajectory_{index}'] = child.outputs.output_trajectory
                continue
            reason = f'PwBaseWorkChain<{child.pk}> failed with exit status {child.exit_status}: {child.exit_message}'
            self.ctx.failures[str(index)] = reason
            self.report(f'frame {index}: {reason}')
        if not self.ctx.results:
            return self.exit_codes.ERROR_ALL_LABELLING_FAILED
        return None

    def results(self):
        """Attach the labelled dataset."""
        labelled = labels_from_pw(
            self.inputs.dataset,
            orm.Dict(self.ctx.failures),
            **self.ctx.results,
            metadata={'call_link_label': 'collect_labels'},
        )
        self.out('labelled_dataset', labelled)
        self.report(f'labelled {len(self.ctx.results) // 2} of {len(self.inputs.dataset)} frames')
