"""Calcfunction of the initial dataset generation: its summary, from the nodes of every round (provenance kept)."""

from __future__ import annotations

from aiida.engine import calcfunction
from aiida.orm import Data, Dict, List, Str

from ...campaign.initial_dataset import STOP_REASONS, ensemble_force_mae, member_force_mae, target_mae

KINDS = ('sampled', 'labelled', 'dataset', 'errors')
"""The nodes of one round, passed as ``<kind>_<round>`` (``errors_<round>_<member>``: one per trained member)."""


def _round_summary(nodes: dict[str, Data], errors: dict[int, Dict], epochs: int | None) -> dict:
    """Return the numbers of one round from its nodes (any may be missing)."""
    summary: dict = {}
    for kind in ('sampled', 'labelled'):
        if kind in nodes:
            summary[kind] = len(nodes[kind])
    if 'dataset' in nodes:
        summary['dataset_size'] = len(nodes['dataset'])
        summary['split_counts'] = dict(nodes['dataset'].base.attributes.get('split_counts', {}))
    if epochs is not None:
        summary['epochs'] = epochs
    if errors:
        members = [errors[member].get_dict() for member in sorted(errors)]
        summary['member_force_mae'] = [member_force_mae(values) for values in members]
        summary['force_mae'] = ensemble_force_mae(members)
    return summary


@calcfunction
def summarize_initial_dataset(stop_reason: Str, parameters: Dict, epochs: List, **nodes: Data) -> Dict:
    """Return the stop reason, the stopping accuracy and, per round, frame counts, epochs and force MAEs (eV/Å).

    :param parameters: the parameters of the run (``desired_accuracy``, ``accuracy_scale``...).
    :param epochs: the epochs each member trained in each round.
    :param nodes: the nodes of round ``r`` as ``<kind>_<r>``, kind one of :data:`KINDS`; the ``errors`` of member
        ``k`` as ``errors_<r>_<k>``. ``force_mae`` is the mean of the members' validation force MAEs, all measured on
        the same validation frames.
    """
    rounds: dict[int, dict[str, Data]] = {}
    errors: dict[int, dict[int, Dict]] = {}
    for label, node in nodes.items():
        kind, *indices = label.split('_')
        if kind not in KINDS or len(indices) != (2 if kind == 'errors' else 1) or not all(map(str.isdigit, indices)):
            raise ValueError(f'unknown node `{label}`: expected <kind>_<round> or errors_<round>_<member>, {KINDS}')
        if kind == 'errors':
            errors.setdefault(int(indices[0]), {})[int(indices[1])] = node
        else:
            rounds.setdefault(int(indices[0]), {})[kind] = node
    per_round = epochs.get_list()
    table = []
    for index in sorted(set(rounds) | set(errors)):
        trained = per_round[index] if index < len(per_round) else None
        table.append({'round': index, **_round_summary(rounds.get(index, {}), errors.get(index, {}), trained)})
    reason = stop_reason.value
    return Dict(
        {
            'stop_reason': reason,
            'stop_message': STOP_REASONS.get(reason, reason),
            'target_force_mae': target_mae(parameters.get_dict()),
            'num_rounds': len(table),
            'total_epochs': sum(per_round),
            'rounds': table,
        }
    )
