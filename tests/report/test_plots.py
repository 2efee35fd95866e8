import numpy as np
import pytest
from PIL import Image

from aiida_trainspot.report import FIGURES, CampaignRecord, write_figures
from aiida_trainspot.report.plots import PLOTTERS, parity_figure, rmse_figure, uncertainty_figure

from .conftest import make_record

pytestmark = pytest.mark.kernel

PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'


def assert_valid_png(path):
    """Assert that ``path`` is a complete PNG of a real figure: signature, decodable, not blank, > 10 kB."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    assert path.stat().st_size > 10_000
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        pixels = np.asarray(image.convert('L'))
    assert min(pixels.shape) > 300
    assert len(np.unique(pixels)) > 20, 'the figure is (nearly) blank'
    return pixels.shape


@pytest.mark.parametrize('stress', [True, False], ids=['stress', 'no-stress'])
def test_every_figure_is_a_valid_png(tmp_path, stress):
    assert set(FIGURES) == set(PLOTTERS)
    record = make_record(stress=stress)
    for name, plotter in PLOTTERS.items():
        path = plotter(record, tmp_path / 'sub')
        assert path == tmp_path / 'sub' / FIGURES[name]
        assert_valid_png(path)


def test_parity_has_a_stress_panel_only_with_stress(tmp_path):
    with_stress = assert_valid_png(PLOTTERS['parity'](make_record(stress=True), tmp_path / 'a'))
    without = assert_valid_png(PLOTTERS['parity'](make_record(stress=False), tmp_path / 'b'))
    assert with_stress[1] == pytest.approx(1.5 * without[1], rel=0.02)


def test_parity_titles_carry_the_rmse(record):
    titles = [axes.get_title() for axes in parity_figure(record).axes]
    expected = [
        f'RMSE {record.parity.rmse(name):.3g} {unit}'
        for name, unit in [('energy', 'meV/atom'), ('forces', 'meV/Å'), ('stress', 'meV/Å³')]
    ]
    assert len(titles) == 3
    for title, part in zip(titles, expected, strict=True):
        assert part in title


def test_rmse_axes_are_logarithmic_and_hold_every_iteration(record):
    axes = rmse_figure(record).axes
    assert [a.get_yscale() for a in axes] == ['log'] * 3
    test_line = axes[1].get_lines()[1]
    assert list(test_line.get_xdata()) == [0, 1, 2, 3]
    assert list(test_line.get_ydata()) == [it.test_rmse.forces for it in record.iterations]


def test_uncertainty_legend_has_slope_threshold_and_rates(record):
    (axes,) = uncertainty_figure(record).axes
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert 'calibration: error = 2.1 × disagreement' in labels
    assert 'threshold 23.8 meV/Å (TPR 83%, PPV 61%)' in labels
    assert 'tolerance 50 meV/Å' in labels


def test_undefined_rates_show_as_not_available(record):
    data = record.to_dict()
    data['uncertainty'].update(tpr=None, ppv=None)
    (axes,) = uncertainty_figure(CampaignRecord.from_dict(data)).axes
    labels = [text.get_text() for text in axes.get_legend().get_texts()]
    assert any('TPR n/a, PPV n/a' in label for label in labels)


def test_a_record_without_data_still_gives_every_figure(tmp_path, record):
    paths = write_figures(CampaignRecord(campaign=record.campaign), tmp_path)
    assert set(paths) == set(FIGURES)
    for name, path in paths.items():
        assert path == tmp_path / FIGURES[name]
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.stat().st_size > 3_000
