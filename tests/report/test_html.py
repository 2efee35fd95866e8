import json
from html.parser import HTMLParser

import pytest

from aiida_trainspot.report import FIGURES, CampaignRecord, write_report

from .conftest import make_record

pytestmark = pytest.mark.kernel

MALICIOUS = '<script>alert("x")</script>'


class ReportParser(HTMLParser):
    """Collect the tags, the number cells (field → exact value, text), the links and the table rows of a page."""

    def __init__(self):
        """Start with nothing collected."""
        super().__init__()
        self.tags, self.links, self.images, self.text = [], [], [], []
        self.cells = {}
        self.rows = {}
        self._cell = self._table = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append(tag)
        if tag == 'table':
            self._table = attrs['id']
            self.rows[self._table] = []
        if tag == 'tr' and self._table:
            self.rows[self._table].append([])
        if tag == 'td' and 'data-field' in attrs:
            self._cell = attrs['data-field']
            self.cells[self._cell] = [attrs['data-value'], '']
            self.rows[self._table][-1].append(self._cell)
        if tag == 'a':
            self.links.append(attrs['href'])
        if tag == 'img':
            self.images.append(attrs['src'])

    def handle_endtag(self, tag):
        if tag == 'td':
            self._cell = None
        if tag == 'table':
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell:
            self.cells[self._cell][1] += data


def parse(path):
    parser = ReportParser()
    parser.feed(path.read_text(encoding='utf-8'))
    return parser


def record_value(data, record, field):
    """Return the value at the dotted ``field`` path of the record (``parity.rmse.X`` is computed)."""
    if field.startswith('parity.rmse.'):
        return record.parity.rmse(field.rsplit('.', 1)[1])
    value = data
    for part in field.replace('[', '.').replace(']', '').split('.'):
        value = value[int(part)] if part.isdigit() else value[part]
    return value


@pytest.fixture(scope='module', params=[True, False], ids=['stress', 'no-stress'])
def written(request, tmp_path_factory):
    """Return a record (with or without stress) and the index.html of its report, written once per module."""
    record = make_record(stress=request.param)
    directory = tmp_path_factory.mktemp('report') / 'report'
    index = write_report(record, directory)
    assert index == directory / 'index.html'
    return record, index


def test_report_writes_figures_record_and_page(written):
    record, index = written
    page = parse(index)
    assert sorted(page.images) == sorted(FIGURES.values())
    for name in [*FIGURES.values(), 'record.json']:
        assert name in page.links
        assert (index.parent / name).is_file()
    assert CampaignRecord.from_json((index.parent / 'record.json').read_text(encoding='utf-8')) == record


def test_every_iteration_is_listed(written):
    record, index = written
    page = parse(index)
    for table in ('accuracy', 'calibration'):
        rows = [row for row in page.rows[table] if row]
        assert [page.cells[row[0]][0] for row in rows] == [str(it.index) for it in record.iterations]


def test_numbers_in_the_page_are_those_of_the_record(written):
    record, index = written
    stress = record.parity.stress_true is not None
    data = record.to_dict()
    page = parse(index)
    per_iteration = 1 + 3 + 6 + 4 + 3 + 9  # index, splits, RMSE, frames, thresholds, calibration
    assert len(page.cells) == 5 + 3 + per_iteration * len(record.iterations)  # + campaign facts, final RMSE
    missing = 0
    for field, (exact, text) in page.cells.items():
        expected = record_value(data, record, field)
        if expected is None:
            assert (exact, text) == ('', '—'), field
            missing += 1
            continue
        assert float(exact) == expected, field
        if field != 'campaign.wall_time':
            assert float(text) == pytest.approx(expected, rel=1e-3), field
    assert page.cells['campaign.wall_time'][1] == '0:25:34'
    assert page.cells['iterations[0].calibration.energy.ppv'] == ['', '—']
    assert missing >= (10 if stress else 18)


def test_user_strings_are_escaped(tmp_path):
    record = make_record(structures=('diamond', MALICIOUS, 'a & b'))
    data = record.to_dict()
    data['campaign']['stop_reason'] = '<b>budget</b> "spent"'
    data['campaign']['codes']['dft'] = '"><img src=x onerror=alert(1)>'
    index = write_report(CampaignRecord.from_dict(data), tmp_path)
    html = index.read_text(encoding='utf-8')
    assert MALICIOUS not in html
    assert '&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;' in html
    assert 'a &amp; b' in html
    page = parse(index)
    assert 'script' not in page.tags and 'b' not in page.tags
    assert sorted(page.images) == sorted(FIGURES.values())
    assert MALICIOUS in ''.join(page.text)
    assert '<b>budget</b> "spent"' in ''.join(page.text)


def test_page_is_self_contained(written):
    html = written[1].read_text(encoding='utf-8')
    page = parse(written[1])
    assert 'http://' not in html and 'https://' not in html
    assert 'link' not in page.tags and 'script' not in page.tags
    assert all('/' not in link for link in page.links)


def test_report_of_a_bare_record(tmp_path, record):
    bare = CampaignRecord(campaign=record.campaign)
    page = parse(write_report(bare, tmp_path))
    assert [row for row in page.rows['accuracy'] if row] == []
    assert 'No test-set predictions of the final committee.' in ''.join(page.text)
    assert json.loads((tmp_path / 'record.json').read_text(encoding='utf-8'))['iterations'] == []


def test_iteration_without_calibration_or_validation_data(tmp_path, record):
    data = record.to_dict()
    data['iterations'][3].update(calibration=None, validation_rmse={'energy': None, 'forces': None, 'stress': None})
    changed = CampaignRecord.from_dict(data)
    page = parse(write_report(changed, tmp_path))
    for field in ('validation_rmse.forces', 'calibration.forces.slope', 'calibration.energy.tpr'):
        assert page.cells[f'iterations[3].{field}'] == ['', '—']
    assert page.cells['iterations[2].calibration.forces.slope'][0] == repr(
        record.iterations[2].calibration.forces.slope
    )
