"""``aiida-trainspot status``: what a campaign has done so far, read from its provenance."""

from __future__ import annotations

from aiida import orm
from aiida.common.links import LinkType

from ..campaign.stopping import STOP_REASONS


def _children_text(node: orm.WorkflowNode) -> str:
    """Return the counts of the processes called under ``node`` by state, failed ones named."""
    states: dict[str, int] = {}
    failed = []
    for child in node.called_descendants:
        state = child.process_state.value if child.process_state else 'created'
        key = 'failed' if child.is_finished and child.exit_status else state
        states[key] = states.get(key, 0) + 1
        if key in ('failed', 'excepted', 'killed'):
            exit_status = f' {child.exit_status}' if child.exit_status else ''
            failed.append(f'{child.process_label}<{child.pk}> ({key}{exit_status})')
    text = 'processes: ' + ', '.join(f'{count} {state}' for state, count in sorted(states.items()))
    return text + (f'\nfailed: {", ".join(failed[:10])}' + (' ...' if len(failed) > 10 else '') if failed else '')


def _iteration_lines(node: orm.WorkflowNode) -> list[str]:
    """Return one line per evaluated committee: dataset size, test RMSE and thresholds."""
    lines = []
    links = node.base.links.get_outgoing(link_type=LinkType.CALL_CALC, link_label_filter='accuracy_%').all()
    for link in sorted(links, key=lambda link: int(link.link_label.rpartition('_')[2])):
        iteration = link.link_label.rpartition('_')[2]
        accuracy = link.node.outputs.result.get_dict()
        everything = accuracy['all']
        test = accuracy.get('test', {})
        lines.append(
            f'iteration {iteration}: {everything["num_frames"]} labelled frames; committee RMSE on test '
            f'({test.get("num_frames", 0)} frames): energy {_mev(test.get("energy_rmse"))} meV/atom, forces '
            f'{_mev(test.get("forces_rmse"))} meV/Å'
        )
        calibration = node.base.links.get_outgoing(
            link_type=LinkType.CALL_CALC, link_label_filter=f'calibration_{iteration}'
        ).all()
        if calibration:
            thresholds = calibration[0].node.outputs.result['thresholds']
            lines.append(f'  thresholds: {thresholds}')
    return lines


def _mev(value) -> str:
    return 'n/a' if value is None else f'{value:.1f}'


def campaign_status(node: orm.WorkflowNode) -> str:
    """Return the status of the campaign ``node``: state, iterations so far, children, stop reason."""
    state = node.process_state.value if node.process_state else 'created'
    lines = [
        f'campaign {node.pk} ({node.process_label}): {state}'
        + (f', exit status {node.exit_status}' if node.is_finished and node.exit_status else '')
    ]
    lines.extend(_iteration_lines(node))
    lines.append(_children_text(node))
    if 'summary' in node.outputs:
        reason = node.outputs.summary['stop_reason']
        lines.append(f'stopped: {reason} ({STOP_REASONS.get(reason, reason)})')
    if 'committee' in node.outputs:
        lines.append(f'committee: {sorted((name, model.pk) for name, model in node.outputs.committee.items())}')
    return '\n'.join(lines)
