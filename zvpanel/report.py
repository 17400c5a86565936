"""The evaluation report as one standalone HTML page with plots (works offline).

Plots: true vs counted crossings over time for each line, true/counted/matched per line
and direction, and where along each line (and where in the frame) crossings are missed or
counted wrongly. Bokeh's JavaScript is inlined, so the file opens without a network.
"""

from __future__ import annotations

from pathlib import Path

import holoviews as hv
import numpy as np
import pandas as pd

from .calibration import Calibration
from .display import html_text
from .evaluation import EvaluationReport
from .geometry import segment_param
from .plots import in_image_space, lines_overlay, use_bokeh

__all__ = [
    "event_outcomes",
    "report_plots",
    "write_html_report",
    "save_standalone",
    "POSITION_BINS",
]

#: Bins along a line (start to end) in the "where are misses" histogram.
POSITION_BINS = 10
#: Width in screen pixels of the report's charts.
PLOT_WIDTH = 760
PLOT_HEIGHT = 300
OUTCOME_COLORS = {"matched": "#2ca02c", "missed": "#d62728", "spurious": "#ff7f0e"}


def event_outcomes(
    result: EvaluationReport, calibration: Calibration | None = None
) -> pd.DataFrame:
    """One row per true and per counted crossing with what became of it.

    ``outcome``: ``matched`` (a true crossing that was counted), ``missed`` (a true crossing
    nobody counted) or ``spurious`` (a counted event matching no true crossing). Matched
    counted events are left out (their true crossing stands for them). ``position`` is where
    along the line the crossing happened (0 = start, 1 = end) when the calibration is given.
    """
    matched_true = {t for t, _ in result.matches}
    matched_counted = {c for _, c in result.matches}
    rows = []
    for source, events, matched, missing in (
        ("true", result.true_events, matched_true, "missed"),
        ("counted", result.counted_events, matched_counted, "spurious"),
    ):
        for i, event in enumerate(events):
            if source == "counted" and i in matched:
                continue
            rows.append(
                {
                    "line_id": event.line_id,
                    "direction": event.direction,
                    "frame": event.frame_index,
                    "track_id": event.track_id,
                    "x": float(event.point[0]),
                    "y": float(event.point[1]),
                    "outcome": "matched" if i in matched else missing,
                }
            )
    table = pd.DataFrame(
        rows, columns=["line_id", "direction", "frame", "track_id", "x", "y", "outcome"]
    )
    if calibration is not None:
        lines = {line.id: line for line in calibration.lines}
        table["position"] = [
            float(
                np.clip(
                    segment_param(lines[r.line_id].start, lines[r.line_id].end, (r.x, r.y)), 0, 1
                )
            )
            if r.line_id in lines
            else np.nan
            for r in table.itertuples()
        ]
    return table


def _cumulative(result: EvaluationReport, line_id: str, fps: float | None) -> hv.Overlay:
    curves = []
    scale = 1.0 / fps if fps else 1.0
    for source, events in (("true", result.true_events), ("counted", result.counted_events)):
        for direction, plural, dash in (("entry", "entries", "solid"), ("exit", "exits", "dashed")):
            frames = sorted(
                e.frame_index for e in events if (e.line_id, e.direction) == (line_id, direction)
            )
            x = np.array([0, *frames, result.frames], dtype=float) * scale
            y = np.array([0, *range(1, len(frames) + 1), len(frames)])
            curves.append(
                hv.Curve((x, y), "time", "crossings", label=f"{source} {plural}").opts(
                    interpolation="steps-post",
                    line_dash=dash,
                    color="#1f77b4" if source == "true" else "#ff7f0e",
                    line_width=2,
                )
            )
    xlabel = "time (s)" if fps else "frame"
    return hv.Overlay(curves).opts(
        title=f"{line_id}: crossings over time, true vs counted",
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
        xlabel=xlabel,
        legend_position="top_left",
        show_grid=True,
    )


def _per_direction_bars(result: EvaluationReport) -> hv.Bars:
    rows = []
    for s in result.scores:
        for what, value in (("true", s.true), ("counted", s.counted), ("matched", s.matched)):
            rows.append({"line": f"{s.line_id} {s.direction}", "what": what, "crossings": value})
    bars = hv.Bars(pd.DataFrame(rows), kdims=["line", "what"], vdims=["crossings"])
    # Keep the lines in calibration order and the bars in reading order, not alphabetical.
    bars = bars.redim.values(
        line=list(dict.fromkeys(r["line"] for r in rows)), what=["true", "counted", "matched"]
    )
    return bars.opts(
        title="Per line and direction: true, counted and matched crossings",
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
        tools=["hover"],
        color="what",
        cmap={"true": "#1f77b4", "counted": "#ff7f0e", "matched": "#2ca02c"},
        xlabel="",
        show_legend=False,
    )


def _position_histogram(outcomes: pd.DataFrame, line_id: str) -> hv.Bars:
    edges = np.linspace(0.0, 1.0, POSITION_BINS + 1)
    mine = outcomes[outcomes["line_id"] == line_id]
    rows = []
    for outcome in OUTCOME_COLORS:
        counts, _ = np.histogram(mine.loc[mine["outcome"] == outcome, "position"], bins=edges)
        for left, n in zip(edges[:-1], counts, strict=True):
            rows.append({"position": f"{left:.1f}", "outcome": outcome, "crossings": int(n)})
    return hv.Bars(pd.DataFrame(rows), kdims=["position", "outcome"], vdims=["crossings"]).opts(
        stacked=True,
        title=f"{line_id}: where along the line (0 = start, 1 = end) crossings are missed",
        width=PLOT_WIDTH,
        height=PLOT_HEIGHT,
        tools=["hover"],
        cmap=OUTCOME_COLORS,
        legend_position="top_right",
    )


def _outcome_points(
    outcomes: pd.DataFrame, calibration: Calibration | None, frame_size: tuple[int, int] | None
) -> hv.Overlay:
    layers = [
        hv.Points(
            outcomes[outcomes["outcome"] == outcome],
            kdims=["x", "y"],
            vdims=["line_id", "direction", "frame", "track_id"],
            label=outcome,
        ).opts(color=color, size=8, tools=["hover"])
        for outcome, color in OUTCOME_COLORS.items()
    ]
    plot = hv.Overlay(layers)
    if calibration is not None:
        plot = lines_overlay(calibration.lines, color="#333333") * plot
    title = "Where in the frame crossings were matched, missed and spurious"
    if frame_size is None:
        return plot.opts(title=title, width=PLOT_WIDTH, height=PLOT_HEIGHT * 2, invert_yaxis=True)
    return in_image_space(plot, frame_size, title=title, width=PLOT_WIDTH)


def report_plots(
    result: EvaluationReport,
    calibration: Calibration | None = None,
    *,
    fps: float | None = None,
    frame_size: tuple[int, int] | None = None,
) -> list[hv.Element | hv.Overlay]:
    """The report's plots, in page order (usable on their own in a notebook)."""
    use_bokeh()
    line_ids = list(dict.fromkeys(s.line_id for s in result.scores))
    outcomes = event_outcomes(result, calibration)
    plots: list = [_cumulative(result, line_id, fps) for line_id in line_ids]
    plots.append(_per_direction_bars(result))
    if calibration is not None:
        plots.extend(_position_histogram(outcomes, line_id) for line_id in line_ids)
    plots.append(_outcome_points(outcomes, calibration, frame_size))
    return plots


def _summary_html(result: EvaluationReport, title: str) -> str:
    def pct(value: float | None) -> str:
        return "-" if value is None else f"{100 * value:.0f}%"

    return (
        f"<h1>{html_text(title)}</h1>"
        f"<p>{result.frames} frames; {len(result.true_events)} true and "
        f"{len(result.counted_events)} counted crossings; {len(result.matches)} matched within "
        f"{result.window_frames:g} frames. Precision {pct(result.precision)}, recall "
        f"{pct(result.recall)}, worst error per line and direction "
        f"{pct(result.max_relative_error)}.</p>"
        f"<pre>{html_text(result.format_table())}</pre>"
    )


def _standalone_resources():
    """Bokeh's inline resources without the external files of other model classes.

    Bokeh links the ``__css__``/``__javascript__`` URLs of every model class imported in
    the process (Panel's Tabulator, once a dashboard has run in it). The report uses none
    of them and must open offline, so it links none.
    """
    from bokeh.resources import Resources

    class StandaloneResources(Resources):
        def _collect_external_resources(self, resource_attr):  # noqa: ARG002
            return []

        def clone(self, *, components=None):
            twin = super().clone(components=components)
            twin.__class__ = StandaloneResources  # Bokeh's clone() builds a plain Resources
            return twin

    return StandaloneResources(mode="inline")


def write_html_report(
    result: EvaluationReport,
    path: str | Path,
    *,
    calibration: Calibration | None = None,
    fps: float | None = None,
    frame_size: tuple[int, int] | None = None,
    title: str = "zvpanel counting accuracy",
) -> Path:
    """Write ``result`` (from :func:`zvpanel.evaluation.evaluate`) as a standalone HTML page.

    ``calibration`` (the evaluated lines) adds the lines to the frame plot and the
    "where along the line" histograms; ``fps`` puts time in seconds instead of frames;
    ``frame_size`` (w, h) draws the frame plot at the frame's scale. Returns the path.
    """
    from bokeh.models import Div

    plots = report_plots(result, calibration, fps=fps, frame_size=frame_size)
    models = [Div(text=_summary_html(result, title), width=PLOT_WIDTH)]
    models.extend(hv.render(plot, backend="bokeh") for plot in plots)
    return save_standalone(models, path, title)


def save_standalone(models: list, path: str | Path, title: str) -> Path:
    """Write Bokeh ``models`` one under the other as an HTML page that opens offline
    (Bokeh's JavaScript inlined, no external file linked). Returns the path."""
    from bokeh.io import save
    from bokeh.layouts import column

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    layout = column(*models, sizing_mode="stretch_width")
    save(layout, filename=str(path), resources=_standalone_resources(), title=title)
    return path
