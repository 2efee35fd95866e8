"""The HTML summary of a campaign: one self-contained ``index.html`` beside the figures and the record's JSON.

No external CSS or JavaScript; every string from the record is HTML-escaped. Every number cell carries the exact
value in ``data-value`` (``repr`` of the float, empty when missing) and its dotted record path in ``data-field``, so
the page can be read back by a program; the visible text is rounded to four significant digits.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from .plots import write_figures
from .record import PROPERTIES, UNITS, CampaignRecord, IterationRecord

RECORD_FILE = 'record.json'
INDEX_FILE = 'index.html'

CAPTIONS = {
    'parity': 'Final committee against DFT on the test set (energy per atom, force and stress components).',
    'rmse': 'Validation and test RMSE of the committee per iteration (log scale).',
    'dataset': 'Labelled frames per iteration, stacked by split.',
    'uncertainty': 'True force error against committee disagreement at the last calibration.',
    'thresholds': 'Disagreement threshold used to select frames, per iteration.',
}

STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 80em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #bbb; padding: 0.2em 0.6em; }
td.number { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #eee; }
figure { display: inline-block; margin: 0 1em 1em 0; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
.stop { font-weight: bold; }
"""


def format_number(value: float | int | None) -> str:
    """Return ``value`` as shown in the report: integers as they are, floats to 4 significant digits, ``—`` if None."""
    if value is None:
        return '—'
    if isinstance(value, int):
        return str(value)
    return f'{value:.4g}'


def format_duration(seconds: float) -> str:
    """Return ``seconds`` as ``H:MM:SS``."""
    minutes, rest = divmod(round(seconds), 60)
    return f'{minutes // 60}:{minutes % 60:02d}:{rest:02d}'


def _cell(value: float | int | None, field: str, text: str | None = None) -> str:
    """Return a number cell with the exact value and its record path as data attributes; ``text`` overrides display."""
    exact = '' if value is None else repr(value)
    shown = escape(format_number(value) if text is None else text)
    return f'<td class="number" data-field="{escape(field)}" data-value="{escape(exact)}">{shown}</td>'


def _table(header: list[str], rows: list[list[str]], caption: str, name: str) -> str:
    """Return an HTML table; ``header`` is escaped, the cells of ``rows`` are already HTML."""
    head = ''.join(f'<th>{escape(title)}</th>' for title in header)
    body = ''.join(f'<tr>{"".join(row)}</tr>\n' for row in rows)
    return f'<table id="{name}"><caption>{escape(caption)}</caption>\n<tr>{head}</tr>\n{body}</table>'


def _facts(record: CampaignRecord) -> str:
    """Return the table of campaign facts."""
    facts = record.campaign
    text_rows = {
        'UUID': facts.uuid,
        'protocol': facts.protocol,
        'structures': ', '.join(facts.structures) or '—',
        'codes': ', '.join(f'{role}: {label}' for role, label in facts.codes.items()) or '—',
        'stop reason': facts.stop_reason,
    }
    rows = [[f'<th>{escape(key)}</th>', f'<td>{escape(value)}</td>'] for key, value in text_rows.items()]
    rows.append(['<th>wall time</th>', _cell(facts.wall_time, 'campaign.wall_time', format_duration(facts.wall_time))])
    numbers = {
        'PK': 'pk',
        'DFT runs': 'num_dft_runs',
        'training runs': 'num_training_runs',
        'MD runs': 'num_md_runs',
    }
    rows += [
        [f'<th>{escape(key)}</th>', _cell(getattr(facts, name), f'campaign.{name}')] for key, name in numbers.items()
    ]
    return _table(['fact', 'value'], rows, 'Campaign', 'campaign')


def _iteration_tables(iterations: tuple[IterationRecord, ...]) -> str:
    """Return the per-iteration tables: data and accuracy, then exploration and calibration."""
    accuracy, calibration = [], []
    for position, it in enumerate(iterations):
        where = f'iterations[{position}]'
        row = [_cell(it.index, f'{where}.index')]
        row += [_cell(getattr(it.dataset, split), f'{where}.dataset.{split}') for split in ('train', 'valid', 'test')]
        for part in ('validation_rmse', 'test_rmse'):
            row += [_cell(getattr(getattr(it, part), name), f'{where}.{part}.{name}') for name in PROPERTIES]
        accuracy.append(row)
        row = [_cell(it.index, f'{where}.index')]
        row += [_cell(getattr(it.frames, key), f'{where}.frames.{key}') for key in ('explored', 'selected')]
        row += [_cell(getattr(it.frames, key), f'{where}.frames.{key}') for key in ('labelled', 'failed')]
        row += [_cell(getattr(it.thresholds, name), f'{where}.thresholds.{name}') for name in PROPERTIES]
        for key in ('slope', 'tpr', 'ppv'):
            for name in PROPERTIES:
                value = None if it.calibration is None else getattr(getattr(it.calibration, name), key)
                row.append(_cell(value, f'{where}.calibration.{name}.{key}'))
        calibration.append(row)
    units = [f'{name} ({UNITS[name]})' for name in PROPERTIES]
    header = ['iteration', 'train', 'valid', 'test', *[f'valid RMSE {u}' for u in units]]
    header += [f'test RMSE {u}' for u in units]
    first = _table(header, accuracy, 'Dataset and committee accuracy per iteration', 'accuracy')
    header = ['iteration', 'explored', 'selected', 'labelled', 'failed', *[f'threshold {u}' for u in units]]
    header += [f'{key} {name}' for key in ('slope', 'TPR', 'PPV') for name in PROPERTIES]
    second = _table(header, calibration, 'Exploration and calibration per iteration', 'calibration')
    return f'{first}\n{second}'


def _final(record: CampaignRecord) -> str:
    """Return the table of the final committee's test-set RMSE (from the parity data), or a note without it."""
    if record.parity is None:
        return '<p>No test-set predictions of the final committee.</p>'
    rows = [
        [f'<th>{escape(f"{name} ({UNITS[name]})")}</th>', _cell(record.parity.rmse(name), f'parity.rmse.{name}')]
        for name in PROPERTIES
    ]
    return _table(['property', 'test RMSE'], rows, 'Final committee on the test set', 'final')


def _figures(paths: dict[str, Path]) -> str:
    """Return the figures, each linked to its PNG file."""
    items = []
    for name, path in paths.items():
        src = escape(path.name)
        caption = escape(CAPTIONS[name])
        items.append(
            f'<figure id="figure-{name}"><a href="{src}"><img src="{src}" alt="{caption}"></a>'
            f'<figcaption><a href="{src}">{src}</a>: {caption}</figcaption></figure>'
        )
    return '\n'.join(items)


def render_html(record: CampaignRecord, figures: dict[str, Path]) -> str:
    """Return the HTML page of ``record`` showing the figures ``figures`` (name → path, linked by file name)."""
    title = escape(f'Campaign report {record.campaign.uuid}')
    stop = escape(record.campaign.stop_reason)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>{STYLE}</style>
</head>
<body>
<h1>{title}</h1>
<p>Stopped after {len(record.iterations)} iteration(s): <span class="stop" id="stop-reason">{stop}</span></p>
{_facts(record)}
<h2>Final committee</h2>
{_final(record)}
<h2>Iterations</h2>
{_iteration_tables(record.iterations)}
<h2>Figures</h2>
{_figures(figures)}
<p>The data behind this page: <a href="{RECORD_FILE}">{RECORD_FILE}</a>.</p>
</body>
</html>
"""


def write_report(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the figures, ``record.json`` and ``index.html`` of ``record`` into ``directory``; return the HTML path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    figures = write_figures(record, directory)
    (directory / RECORD_FILE).write_text(record.to_json(), encoding='utf-8')
    index = directory / INDEX_FILE
    index.write_text(render_html(record, figures), encoding='utf-8')
    return index
