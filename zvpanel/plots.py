"""HoloViews plots of footage, trajectories, lines and evaluation results (Bokeh backend).

Everything drawn over a camera frame uses image pixels with y pointing down, like the
calibration: x from 0 to the width, y from 0 at the top to the height at the bottom.
"""

from __future__ import annotations

from collections.abc import Iterable

import holoviews as hv
import numpy as np
import pandas as pd

from .calibration import CountingLine
from .tracks import Heatmap

__all__ = [
    "FRAME_PLOT_WIDTH",
    "use_bokeh",
    "frame_image",
    "heatmap_image",
    "lines_overlay",
    "trajectories",
    "in_image_space",
    "speed_histogram",
    "candidate_scores",
    "accuracy_vs_speed",
    "setting_effect",
    "errors_by_direction",
]

#: Width and height in screen pixels of charts that are not drawn over a frame.
CHART_WIDTH = 700
CHART_HEIGHT = 320

#: Width in screen pixels of plots drawn over a camera frame.
FRAME_PLOT_WIDTH = 640


def use_bokeh() -> None:
    """Make Bokeh the HoloViews backend (once, without notebook output): options are
    validated against the current backend."""
    if "bokeh" not in hv.Store.renderers:
        import holoviews.plotting.bokeh  # noqa: F401
    if hv.Store.current_backend != "bokeh":
        hv.Store.set_current_backend("bokeh")


def frame_image(image: np.ndarray, bgr: bool = True) -> hv.RGB:
    """A decoded frame (H x W x 3, BGR as OpenCV gives it) in image pixel coordinates."""
    use_bokeh()
    height, width = image.shape[:2]
    rgb = image[..., ::-1] if bgr else image
    # hv.Image's first row is at the top of its bounds (largest y); with the y axis
    # inverted that is the bottom of the screen, so the rows are flipped first.
    return hv.RGB(np.ascontiguousarray(np.flipud(rgb)), bounds=(0, 0, width, height))


def heatmap_image(heat: Heatmap, label: str = "anchor points") -> hv.Image:
    """A :class:`~zvpanel.tracks.Heatmap` as an image over the frame (empty cells transparent)."""
    use_bokeh()
    width, height = heat.frame_size
    counts = np.where(heat.counts > 0, heat.counts, np.nan)
    return hv.Image(
        np.flipud(counts), bounds=(0, 0, width, height), vdims=[label], label=label
    ).opts(
        cmap="fire",
        alpha=0.7,
        colorbar=True,
        tools=["hover"],
        clipping_colors={"NaN": (0, 0, 0, 0)},
    )


def lines_overlay(lines: Iterable[CountingLine], color: str = "cyan") -> hv.Overlay:
    """Counting lines as segments, each labelled with its id at its middle."""
    use_bokeh()
    lines = list(lines)
    table = pd.DataFrame(
        {
            "x1": [line.x1 for line in lines],
            "y1": [line.y1 for line in lines],
            "x2": [line.x2 for line in lines],
            "y2": [line.y2 for line in lines],
            "line": [line.id for line in lines],
        }
    )
    table["xm"] = (table["x1"] + table["x2"]) / 2
    table["ym"] = (table["y1"] + table["y2"]) / 2
    segments = hv.Segments(table, kdims=["x1", "y1", "x2", "y2"], vdims=["line"]).opts(
        color=color, line_width=3, tools=["hover"]
    )
    labels = hv.Labels(table, kdims=["xm", "ym"], vdims=["line"]).opts(
        text_color=color, text_align="left", text_baseline="bottom", text_font_size="10pt"
    )
    return segments * labels


def trajectories(tracks: pd.DataFrame, max_tracks: int | None = None) -> hv.Path:
    """Each track's anchor path, coloured by track id."""
    use_bokeh()
    paths = []
    for i, (track_id, track) in enumerate(tracks.groupby("track_id")):
        if max_tracks is not None and i >= max_tracks:
            break
        paths.append(
            {"x": track["x"].to_numpy(), "y": track["y"].to_numpy(), "track_id": int(track_id)}
        )
    return hv.Path(paths, vdims=["track_id"]).opts(
        color="track_id", cmap="Category20", line_width=2, alpha=0.8
    )


def in_image_space(
    plot: hv.Element | hv.Overlay,
    frame_size: tuple[float, float],
    title: str = "",
    width: int = FRAME_PLOT_WIDTH,
) -> hv.Overlay:
    """Shows ``plot`` over the whole ``(w, h)`` frame with y pointing down, at scale 1:1."""
    use_bokeh()
    frame_w, frame_h = frame_size
    overlay = plot if isinstance(plot, hv.Overlay) else hv.Overlay([plot])
    return overlay.opts(
        title=title,
        width=width,
        height=round(width * frame_h / frame_w),
        xlim=(0, frame_w),
        ylim=(0, frame_h),
        invert_yaxis=True,
        xlabel="x (px)",
        ylabel="y (px)",
    )


def speed_histogram(per_track: pd.DataFrame, bins: int = 20) -> hv.Histogram:
    """Typical walking speeds: tracks per median speed (px/s), from :func:`zvpanel.tracks.speeds`."""
    use_bokeh()
    values = per_track["speed_px_s"].dropna().to_numpy(float)
    counts, edges = np.histogram(values, bins=bins) if len(values) else (np.zeros(1), [0, 1])
    return hv.Histogram((edges, counts), kdims=["speed (px/s)"], vdims=["tracks"]).opts(
        title="Median walking speed per track", width=CHART_WIDTH, height=CHART_HEIGHT
    )


def candidate_scores(scores: pd.DataFrame) -> hv.Bars:
    """Clean crossings per candidate line (:func:`zvpanel.tracks.line_crossing_counts`), in the
    table's order; hover shows crossings, tracks and quick re-crossings."""
    use_bokeh()
    return hv.Bars(
        scores, kdims=["line_id"], vdims=["score", "crossings", "tracks", "recrossings"]
    ).opts(
        title="Candidate lines: clean crossings (crossings - 2 x quick re-crossings)",
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        tools=["hover"],
        xlabel="candidate line",
    )


def accuracy_vs_speed(results: pd.DataFrame) -> hv.Scatter:
    """Worst error per line and direction against processing cost, one point per combination
    of a :func:`zvpanel.tuning.run_sweep` result, coloured by detection rate."""
    use_bokeh()
    hover = [c for c in results.columns if not c.startswith("err ")]
    return hv.Scatter(
        results,
        kdims=["cost_ms_per_s"],
        vdims=["max_error", *[c for c in hover if c not in ("cost_ms_per_s", "max_error")]],
    ).opts(
        color="detection_fps",
        cmap="viridis",
        colorbar=True,
        size=8,
        alpha=0.7,
        tools=["hover"],
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        xlabel="processing per second of video (ms)",
        ylabel="worst |error| per line and direction",
        title="Accuracy against speed (lower left is better)",
    )


def setting_effect(results: pd.DataFrame, setting: str, metric: str = "max_error") -> hv.BoxWhisker:
    """How one setting moves ``metric`` over all the other combinations."""
    use_bokeh()
    table = results[[setting, metric]].assign(**{setting: results[setting].astype(str)})
    return hv.BoxWhisker(table, kdims=[setting], vdims=[metric]).opts(
        title=f"{metric} by {setting}", width=CHART_WIDTH // 2, height=CHART_HEIGHT
    )


def errors_by_direction(row: dict | pd.Series, title: str = "counted - true") -> hv.Bars:
    """The ``err <line> <direction>`` columns of one sweep row as bars."""
    use_bokeh()
    items = [(k[4:], v) for k, v in dict(row).items() if str(k).startswith("err ")]
    table = pd.DataFrame(items, columns=["line and direction", "counted - true"])
    return hv.Bars(table, kdims=["line and direction"], vdims=["counted - true"]).opts(
        title=title, width=CHART_WIDTH, height=CHART_HEIGHT, tools=["hover"]
    )
