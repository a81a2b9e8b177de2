"""PNG plots of a synthetic run (from its report): the per-language funnel (samples left after each stage) and the
label co-occurrence matrix of the kept set beside the plan's. Object-oriented matplotlib on the Agg canvas under
the default style, saved with `mmaff.eval.plots.save_png` (no Software tag): identical reports, identical bytes."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import matplotlib.style
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mmaff.eval.plots import DPI, save_png


def _figure(size: tuple[float, float]) -> Figure:
    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def funnel_figure(report: Mapping[str, Any]) -> Figure:
    stages, languages = report["stages"], list(report["per_language"])
    with matplotlib.style.context("default"):
        figure = _figure((min(4.0 + 0.55 * len(languages), 16.0), 4.4))
        axes = figure.add_subplot()
        width = 0.8 / len(stages)
        x = np.arange(len(languages))
        for i, stage in enumerate(stages):
            left = [report["per_language"][lang]["funnel"][stage] for lang in languages]
            axes.bar(x + (i - (len(stages) - 1) / 2) * width, left, width, label=stage)
        axes.set_xticks(x, languages)
        axes.set_ylabel("samples left")
        axes.set_title(f"{report['recipe']}: samples left after each stage")
        axes.legend(fontsize=7, ncols=min(len(stages), 5))
    return figure


def cooccurrence_figure(report: Mapping[str, Any]) -> Figure:
    labels = report["labels"]
    with matplotlib.style.context("default"):
        figure = _figure((min(5.0 + 0.9 * len(labels), 18.0), min(2.8 + 0.42 * len(labels), 10.0)))
        for i, which in enumerate(("plan", "kept")):
            counts = np.array(report["cooccurrence"][which], dtype=float)
            axes = figure.add_subplot(1, 2, i + 1)
            image = axes.imshow(counts, cmap="Blues")
            axes.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
            axes.set_yticks(range(len(labels)), labels, fontsize=7)
            axes.set_title(f"{which} (diagonal: label count)", fontsize=9)
            figure.colorbar(image, ax=axes, shrink=0.7)
    return figure


def write_plots(report: Mapping[str, Any], folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    return [
        save_png(funnel_figure(report), folder / "funnel.png"),
        save_png(cooccurrence_figure(report), folder / "cooccurrence.png"),
    ]
