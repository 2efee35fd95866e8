"""The figures of the campaign report, drawn from a :class:`~aiida_trainspot.report.record.CampaignRecord`.

Matplotlib's Agg canvas, no pyplot (no global state, no display needed). One function per figure, ``plot_*``; each
takes the record and an output directory, writes ``directory / FIGURES[name]`` and returns that path. The matching
``*_figure`` functions return the :class:`~matplotlib.figure.Figure` without writing it. A figure whose data the
campaign does not have (no stress, no calibration yet) still gets written, with a note saying what is missing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .record import PARITY_UNITS, PROPERTIES, UNITS, CampaignRecord

FIGURES = {
    'parity': 'parity.png',
    'rmse': 'rmse.png',
    'dataset': 'dataset_growth.png',
    'uncertainty': 'uncertainty.png',
    'thresholds': 'thresholds.png',
}
"""Figure name → file name inside the report directory."""

DPI = 110
TITLES = {'energy': 'Energy', 'forces': 'Forces', 'stress': 'Stress'}
SPLIT_COLOURS = {'train': '#1f77b4', 'valid': '#ff7f0e', 'test': '#2ca02c'}


def _save(figure: Figure, directory: str | Path, name: str) -> Path:
    """Write ``figure`` as PNG to ``directory / FIGURES[name]`` and return the path."""
    path = Path(directory) / FIGURES[name]
    path.parent.mkdir(parents=True, exist_ok=True)
    FigureCanvasAgg(figure)
    figure.savefig(path, dpi=DPI, format='png')
    return path


def _note(axes: Axes, text: str) -> None:
    """Write ``text`` in the middle of an empty ``axes``."""
    axes.text(0.5, 0.5, text, ha='center', va='center', transform=axes.transAxes, color='0.4', wrap=True)
    axes.set_xticks([])
    axes.set_yticks([])


def format_rate(value: float | None) -> str:
    """Return a TPR or PPV as a percentage, or ``n/a`` when undefined."""
    return 'n/a' if value is None else f'{100 * value:.0f}%'


def _parity_panel(
    axes: Axes, name: str, true: np.ndarray | None, predicted: np.ndarray | None, rmse: float | None
) -> None:
    """Draw the parity panel of property ``name``: predicted against true, the diagonal and the RMSE in the title."""
    unit = PARITY_UNITS[name]
    if true is None or not len(true):
        axes.set_title(TITLES[name])
        _note(axes, f'no {name} in the test set')
        return
    low = float(min(true.min(), predicted.min()))
    high = float(max(true.max(), predicted.max()))
    pad = 0.05 * (high - low) or 0.05 * abs(high) or 0.05
    limits = (low - pad, high + pad)
    axes.plot(limits, limits, color='0.5', lw=1, ls='--', label='y = x')
    axes.scatter(true, predicted, s=8, alpha=0.6, edgecolors='none', label=f'{len(true)} values')
    axes.set_xlim(limits)
    axes.set_ylim(limits)
    axes.set_aspect('equal', adjustable='box')
    axes.locator_params(nbins=5)
    axes.set_xlabel(f'DFT ({unit})')
    axes.set_ylabel(f'committee mean ({unit})')
    axes.set_title(f'{TITLES[name]}: RMSE {rmse:.3g} {UNITS[name]}')
    axes.legend(loc='upper left', fontsize='small')


def parity_figure(record: CampaignRecord) -> Figure:
    """Return the final committee's predictions against DFT on the test set: energy, forces and stress if present."""
    parity = record.parity
    names = [name for name in PROPERTIES if name != 'stress' or (parity is not None and parity.stress_true is not None)]
    figure = Figure(figsize=(4.2 * len(names), 4.4), layout='constrained')
    axes_list = figure.subplots(1, len(names), squeeze=False)[0]
    for axes, name in zip(axes_list, names, strict=True):
        if parity is None:
            axes.set_title(TITLES[name])
            _note(axes, 'no test-set predictions')
            continue
        true, predicted = getattr(parity, f'{name}_true'), getattr(parity, f'{name}_predicted')
        _parity_panel(axes, name, true, predicted, parity.rmse(name))
    figure.suptitle('Final committee on the test set')
    return figure


def _per_iteration_panels(
    record: CampaignRecord, title: str, series: dict[str, Callable], log: bool, ylabel: str
) -> Figure:
    """Return a figure with one panel per property plotting each of ``series`` (label → getter) per iteration.

    A getter maps ``(iteration, property)`` to a value or ``None``; ``None`` values are left out.
    """
    figure = Figure(figsize=(12.6, 4.0), layout='constrained')
    axes_list = figure.subplots(1, len(PROPERTIES), squeeze=False)[0]
    for axes, name in zip(axes_list, PROPERTIES, strict=True):
        axes.set_title(TITLES[name])
        drawn = False
        for (label, getter), marker in zip(series.items(), 'os^', strict=False):
            points = [(it.index, getter(it, name)) for it in record.iterations]
            points = [(x, y) for x, y in points if y is not None and (y > 0 or not log)]
            if points:
                x, y = zip(*points, strict=True)
                axes.plot(x, y, marker=marker, label=label)
                drawn = True
        if not drawn:
            _note(axes, f'no {name} values')
            continue
        if log:
            axes.set_yscale('log')
        axes.set_xlabel('iteration')
        axes.set_ylabel(f'{ylabel} ({UNITS[name]})')
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.legend(fontsize='small')
    figure.suptitle(title)
    return figure


def rmse_figure(record: CampaignRecord) -> Figure:
    """Return the committee's validation and test RMSE per iteration (log scale), one panel per property."""
    series = {
        'validation': lambda it, name: getattr(it.validation_rmse, name),
        'test': lambda it, name: getattr(it.test_rmse, name),
    }
    return _per_iteration_panels(record, 'Committee RMSE per iteration', series, log=True, ylabel='RMSE')


def thresholds_figure(record: CampaignRecord) -> Figure:
    """Return the disagreement threshold used for selection per iteration, one panel per property."""
    series = {'threshold': lambda it, name: getattr(it.thresholds, name)}
    return _per_iteration_panels(record, 'Selection threshold per iteration', series, log=False, ylabel='threshold')


def dataset_figure(record: CampaignRecord) -> Figure:
    """Return the labelled dataset per iteration as bars stacked by split (train, valid, test)."""
    figure = Figure(figsize=(6.4, 4.2), layout='constrained')
    axes = figure.subplots()
    axes.set_title('Labelled dataset per iteration')
    if not record.iterations:
        _note(axes, 'no iterations')
        return figure
    x = np.array([it.index for it in record.iterations])
    bottom = np.zeros(len(x))
    for split, colour in SPLIT_COLOURS.items():
        counts = np.array([getattr(it.dataset, split) for it in record.iterations], dtype=float)
        axes.bar(x, counts, bottom=bottom, color=colour, label=split, width=0.7)
        bottom += counts
    axes.set_xlabel('iteration')
    axes.set_ylabel('frames')
    axes.set_xticks(x)
    axes.legend(fontsize='small', loc='upper left')
    return figure


def uncertainty_figure(record: CampaignRecord) -> Figure:
    """Return true force error against committee disagreement at the last calibration, with the fitted line.

    The legend holds the calibration slope, the threshold with its TPR and PPV, and the tolerance. Axes are
    logarithmic when every value is positive.
    """
    data = record.uncertainty
    figure = Figure(figsize=(6.4, 5.2), layout='constrained')
    axes = figure.subplots()
    if data is None or not len(data.force_disagreement):
        axes.set_title('Uncertainty against true error')
        _note(axes, 'no calibration in this campaign')
        return figure
    x, y = data.force_disagreement, data.force_error
    log = bool(np.all(x > 0) and np.all(y > 0))
    axes.scatter(x, y, s=10, alpha=0.6, edgecolors='none', label=f'{len(x)} labelled frames')
    unit = UNITS['forces']
    line_x = np.geomspace(x.min(), x.max(), 50) if log else np.linspace(0, x.max(), 50)
    if data.slope is not None:
        axes.plot(
            line_x, data.slope * line_x, color='C3', label=f'calibration: error = {data.slope:.3g} × disagreement'
        )
    if data.threshold is not None:
        rates = f'TPR {format_rate(data.tpr)}, PPV {format_rate(data.ppv)}'
        axes.axvline(data.threshold, color='C2', ls='--', label=f'threshold {data.threshold:.3g} {unit} ({rates})')
    if data.tolerance is not None:
        axes.axhline(data.tolerance, color='0.4', ls=':', label=f'tolerance {data.tolerance:.3g} {unit}')
    if log:
        axes.set_xscale('log')
        axes.set_yscale('log')
    axes.set_xlabel(f'committee force disagreement ({unit})')
    axes.set_ylabel(f'true force error of the committee mean ({unit})')
    axes.set_title(f'Uncertainty against true error (iteration {data.iteration})')
    axes.legend(fontsize='small', loc='upper left')
    return figure


BUILDERS: dict[str, Callable[[CampaignRecord], Figure]] = {
    'parity': parity_figure,
    'rmse': rmse_figure,
    'dataset': dataset_figure,
    'uncertainty': uncertainty_figure,
    'thresholds': thresholds_figure,
}
"""Figure name → the function that draws it (in memory)."""


def plot_parity(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the parity figure of the test set (:func:`parity_figure`) and return its path."""
    return _save(parity_figure(record), directory, 'parity')


def plot_rmse(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the RMSE-per-iteration figure (:func:`rmse_figure`) and return its path."""
    return _save(rmse_figure(record), directory, 'rmse')


def plot_dataset_growth(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the dataset-growth figure (:func:`dataset_figure`) and return its path."""
    return _save(dataset_figure(record), directory, 'dataset')


def plot_uncertainty(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the uncertainty-against-error figure (:func:`uncertainty_figure`) and return its path."""
    return _save(uncertainty_figure(record), directory, 'uncertainty')


def plot_thresholds(record: CampaignRecord, directory: str | Path) -> Path:
    """Write the threshold-per-iteration figure (:func:`thresholds_figure`) and return its path."""
    return _save(thresholds_figure(record), directory, 'thresholds')


PLOTTERS: dict[str, Callable[[CampaignRecord, str | Path], Path]] = {
    'parity': plot_parity,
    'rmse': plot_rmse,
    'dataset': plot_dataset_growth,
    'uncertainty': plot_uncertainty,
    'thresholds': plot_thresholds,
}
"""Figure name → the function that writes it."""


def write_figures(record: CampaignRecord, directory: str | Path) -> dict[str, Path]:
    """Write every figure of the report into ``directory`` and return figure name → path."""
    return {name: plotter(record, directory) for name, plotter in PLOTTERS.items()}
