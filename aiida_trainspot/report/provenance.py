"""The campaign record of a finished ``TrainsPotWorkChain``, read from its provenance graph.

The one module of :mod:`aiida_trainspot.report` that reads AiiDA: every number comes from the campaign's outputs
(``summary``, ``evaluated_dataset``, the last ``calibration``) and from the processes it called; the rest of the
package turns the record into figures and HTML without AiiDA.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from aiida import orm

from ..dataset.frame import SPLITS as FRAME_SPLITS
from ..uncertainty.calibration import force_errors
from .record import (
    Calibration,
    CampaignFacts,
    CampaignRecord,
    DatasetSize,
    FrameCounts,
    IterationRecord,
    ParityData,
    PropertyCalibration,
    Rmse,
    Thresholds,
    UncertaintyData,
)

DFT_PLUGINS = ('quantumespresso.pw', 'trainspot.aims', 'trainspot.ase_reference')
TRAINING_PLUGINS = ('trainspot.mace_train', 'trainspot.metatrain')
MD_PLUGINS = ('trainspot.md', 'lammps.raw', 'lammps.base')
PROPERTIES = ('energy', 'forces', 'stress')


def _mev(value: float | None) -> float | None:
    return None if value is None else 1000.0 * value


def _iteration(entry: dict[str, Any]) -> IterationRecord:
    """Return the record of one iteration of the campaign's ``summary``."""
    counts = entry.get('split_counts', {})
    accuracy = entry.get('accuracy', {})

    def rmse(split: str) -> Rmse:
        values = accuracy.get(split, {})
        return Rmse(**{name: values.get(f'{name}_rmse') for name in PROPERTIES})

    calibration = None
    if 'slopes' in entry:
        scores = entry.get('scores', {})
        calibration = Calibration(
            **{
                name: PropertyCalibration(
                    slope=entry['slopes'].get(name),
                    tpr=(scores.get(name) or {}).get('tpr'),
                    ppv=(scores.get(name) or {}).get('ppv'),
                )
                for name in PROPERTIES
            }
        )
    thresholds = entry.get('thresholds', {})
    return IterationRecord(
        index=entry['iteration'],
        dataset=DatasetSize(**{split: counts.get(split, 0) for split in ('train', 'valid', 'test')}),
        validation_rmse=rmse('valid'),
        test_rmse=rmse('test'),
        thresholds=Thresholds(**{name: _mev(thresholds.get(name)) for name in PROPERTIES}),
        calibration=calibration,
        frames=FrameCounts(**{kind: entry.get(kind, 0) for kind in ('explored', 'selected', 'labelled', 'failed')}),
    )


def _descendant_plugins(node: orm.WorkflowNode) -> dict[str, int]:
    """Return the number of calculation jobs called under ``node`` per calculation plugin."""
    counts: dict[str, int] = {}
    for child in node.called_descendants:
        if isinstance(child, orm.CalcJobNode):
            plugin = (child.process_type or '').rpartition(':')[2]
            counts[plugin] = counts.get(plugin, 0) + 1
    return counts


def _facts(node: orm.WorkflowNode, stop_reason: str) -> CampaignFacts:
    """Return the campaign facts: identity, protocol, structures, codes, stop reason, wall time, run counts."""
    inputs = node.inputs
    codes = {
        'dft': inputs.labelling.code.full_label,
        'evaluate': inputs.evaluation.code.full_label,
        'md': inputs.exploration.md.code.full_label,
    }
    for engine in ('mace', 'metatrain'):
        if engine in inputs.training:
            codes['training'] = inputs.training[engine].train.code.full_label
    plugins = _descendant_plugins(node)
    return CampaignFacts(
        uuid=node.uuid,
        pk=node.pk,
        protocol=inputs.labelling.protocol.value,
        structures=[atoms.get_chemical_formula() for atoms in inputs.structures.iter_atoms()],
        codes=codes,
        stop_reason=stop_reason,
        wall_time=(node.mtime - node.ctime).total_seconds(),
        num_dft_runs=sum(plugins.get(name, 0) for name in DFT_PLUGINS),
        num_training_runs=sum(plugins.get(name, 0) for name in TRAINING_PLUGINS),
        num_md_runs=sum(plugins.get(name, 0) for name in MD_PLUGINS),
    )


def _split_columns(evaluated, splits: tuple[str, ...]) -> dict[str, list[np.ndarray]]:
    """Return per-frame true and committee-mean values of the labelled frames of ``splits``."""
    columns: dict[str, list[np.ndarray]] = {
        key: [] for key in ('e_true', 'e_pred', 'f_true', 'f_pred', 's_true', 's_pred')
    }
    columns.update(disagreement=[], force_error=[])
    codes = [FRAME_SPLITS.index(name) for name in splits]
    for batch in evaluated.iter_batches():
        block = batch.take(np.flatnonzero(batch.labelled & np.isin(batch.split, codes)))
        if not len(block):
            continue
        forces_mean = block.atom_arrays['committee_forces'].mean(axis=1)
        columns['e_true'].append(block.energy / block.natoms)
        columns['e_pred'].append(block.frame_arrays['committee_energy'].mean(axis=1) / block.natoms)
        columns['f_true'].append(block.forces.ravel())
        columns['f_pred'].append(forces_mean.ravel())
        columns['disagreement'].append(block.frame_arrays['force_disagreement'])
        columns['force_error'].append(force_errors(forces_mean, block.forces, block.natoms))
        if 'committee_stress' in block.frame_arrays:
            periodic = np.isfinite(block.stress).all(axis=(1, 2))
            columns['s_true'].append(block.stress[periodic].ravel())
            columns['s_pred'].append(block.frame_arrays['committee_stress'][periodic].mean(axis=1).ravel())
    return columns


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0)


def _parity(evaluated) -> ParityData | None:
    """Return the parity data of the test frames (the validation frames if there is no test frame)."""
    for splits in (('test',), ('valid',), ('train', 'valid', 'test')):
        columns = _split_columns(evaluated, splits)
        if columns['e_true']:
            break
    else:
        return None
    stress_true, stress_predicted = _joined(columns['s_true']), _joined(columns['s_pred'])
    has_stress = stress_true.size > 0
    return ParityData(
        energy_true=_joined(columns['e_true']),
        energy_predicted=_joined(columns['e_pred']),
        forces_true=_joined(columns['f_true']),
        forces_predicted=_joined(columns['f_pred']),
        stress_true=stress_true if has_stress else None,
        stress_predicted=stress_predicted if has_stress else None,
    )


def _uncertainty(node: orm.WorkflowNode, evaluated, iteration: int) -> UncertaintyData | None:
    """Return the force disagreement against the true error of the held-out frames, with the last calibration."""
    key = f'iteration_{iteration}'
    if key not in node.outputs.calibration:
        return None
    forces = node.outputs.calibration[key].get_dict()['forces']
    columns = _split_columns(evaluated, ('valid', 'test'))
    if len(_joined(columns['disagreement'])) < 2:
        columns = _split_columns(evaluated, ('train', 'valid', 'test'))
    scores = forces.get('scores') or {}
    return UncertaintyData(
        iteration=iteration,
        force_disagreement=1000.0 * _joined(columns['disagreement']),
        force_error=1000.0 * _joined(columns['force_error']),
        slope=forces.get('slope'),
        threshold=_mev(forces.get('threshold')),
        tolerance=_mev(forces.get('tolerance')),
        tpr=scores.get('tpr'),
        ppv=scores.get('ppv'),
    )


def campaign_record(node: orm.WorkflowNode) -> CampaignRecord:
    """Return the record of the finished campaign ``node``; raise ``ValueError`` if it has no summary yet."""
    if 'summary' not in node.outputs:
        raise ValueError('the campaign has no `summary` output: it has not finished (see `aiida-trainspot status`)')
    summary = node.outputs.summary.get_dict()
    iterations = [_iteration(entry) for entry in summary['iterations']]
    evaluated = node.outputs.evaluated_dataset if 'evaluated_dataset' in node.outputs else None
    last = iterations[-1].index if iterations else 0
    return CampaignRecord(
        campaign=_facts(node, summary['stop_reason']),
        iterations=iterations,
        parity=_parity(evaluated) if evaluated is not None else None,
        uncertainty=_uncertainty(node, evaluated, last) if evaluated is not None else None,
    )
