"""Calcfunction of a campaign: its summary, from the nodes of every iteration (provenance kept)."""

from __future__ import annotations

from aiida.engine import calcfunction
from aiida.orm import Data, Dict, Str

from ...campaign.stopping import STOP_REASONS

KINDS = ('dataset', 'accuracy', 'calibration', 'thresholds', 'explored', 'selected', 'labelled')
"""The nodes of one iteration, passed as ``<kind>_<iteration>`` (``thresholds``: those the selection used)."""


def _iteration_summary(nodes: dict[str, Data]) -> dict:
    """Return the numbers of one iteration from its nodes (any may be missing)."""
    summary: dict = {}
    if 'dataset' in nodes:
        summary['dataset_size'] = len(nodes['dataset'])
        summary['split_counts'] = dict(nodes['dataset'].base.attributes.get('split_counts', {}))
    if 'accuracy' in nodes:
        summary['accuracy'] = nodes['accuracy'].get_dict()
    if 'calibration' in nodes:
        calibration = nodes['calibration'].get_dict()
        summary['thresholds'] = calibration['thresholds']
        summary['scores'] = {name: calibration[name]['scores'] for name in calibration['thresholds']}
        summary['slopes'] = {name: calibration[name]['slope'] for name in calibration['thresholds']}
    if 'thresholds' in nodes:  # what the selection used: calibrated, fixed, or the tolerances as a fallback
        used = nodes['thresholds'].get_dict()
        summary['thresholds'] = used.get('thresholds', used)
    for kind in ('explored', 'selected', 'labelled'):
        if kind in nodes:
            summary[kind] = len(nodes[kind])
    if 'selected' in summary and 'labelled' in summary:
        summary['failed'] = summary['selected'] - summary['labelled']
    return summary


@calcfunction
def summarize_campaign(stop_reason: Str, **nodes: Data) -> Dict:
    """Return the stop reason and, per iteration, the dataset size, accuracy, thresholds and frame counts.

    :param nodes: the nodes of iteration ``i`` as ``<kind>_<i>``, kind one of :data:`KINDS`.
    """
    iterations: dict[int, dict[str, Data]] = {}
    for label, node in nodes.items():
        kind, _, index = label.rpartition('_')
        if kind not in KINDS or not index.isdigit():
            raise ValueError(f'unknown campaign node `{label}`: expected <kind>_<iteration>, kind in {KINDS}')
        iterations.setdefault(int(index), {})[kind] = node
    table = [{'iteration': index, **_iteration_summary(iterations[index])} for index in sorted(iterations)]
    reason = stop_reason.value
    return Dict({'stop_reason': reason, 'stop_message': STOP_REASONS.get(reason, reason), 'iterations': table})
