"""Tuning one line by hand: drag it on a frame, move the sliders, see the counts against the
ground truth, recomputed from cached detections (the model never runs again).

:class:`TuningView` takes a :class:`~zvpanel.tuning.DetectionCache` built at the lowest
confidence the slider allows: a higher confidence keeps a subset of its boxes and a lower
detection rate a subset of its frames (see :mod:`zvpanel.tuning`), so every slider position
is a view of that one model run. Tracking depends only on the confidence and the rate and is
kept per pair; moving the line or the hysteresis only recounts. It works in a notebook and
in ``panel serve`` alike (the same Panel and HoloViews pieces as the dashboards).
"""

from __future__ import annotations

import time
from collections import OrderedDict

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..calibration import MAX_DETECTION_FPS, MIN_DETECTION_FPS, Calibration, parse_calibration
from ..detections import Detections
from ..errors import CalibrationError
from ..evaluation import DEFAULT_MATCH_WINDOW_S, EvaluationReport, GroundTruth, evaluate
from ..plots import frame_image, use_bokeh
from ..tuning import DetectionCache, count_events, track_frames

__all__ = ["TuningView", "LINE_ID", "MAX_TRACKED_RUNS"]

#: The id of the line being tuned (in the table and the events).
LINE_ID = "line"
#: Tracked runs (one per confidence and rate) kept for moving back to earlier slider values.
MAX_TRACKED_RUNS = 16
#: Width of the frame on screen (pixels); the height follows the frame's aspect ratio.
DRAWING_WIDTH = 640
LINE_COLOUR = "cyan"
TABLE_COLUMNS = ["line", "direction", "true", "counted", "matched", "error"]


class TuningView(pn.viewable.Viewer):
    """One counting line on a frame, the counter's settings as sliders, and its counts per
    direction against the ground truth, recomputed whenever either changes."""

    line = param.NumericTuple(
        default=(0.0, 0.0, 1.0, 1.0),
        length=4,
        doc="The counting line x1, y1, x2, y2 in frame pixels (drawn or dragged on the frame); "
        "by default a vertical line through the middle of the frame.",
    )
    confidence = param.Number(
        default=0.25, bounds=(0.01, 0.95), step=0.05, doc="Detections below it are ignored."
    )
    min_distance = param.Number(
        default=4.0,
        bounds=(0.0, 200.0),
        step=1.0,
        doc="Hysteresis: pixels past the line before a side counts.",
    )
    min_frames = param.Integer(
        default=1, bounds=(1, 30), doc="Hysteresis: detections on the new side before it counts."
    )
    detection_fps = param.Number(
        default=5.0,
        bounds=(MIN_DETECTION_FPS, MAX_DETECTION_FPS),
        step=0.5,
        doc="Detections per second of video (at most the video's own rate).",
    )
    report = param.ClassSelector(
        class_=EvaluationReport, default=None, constant=True, doc="The newest evaluation."
    )
    error = param.String(default="", constant=True, doc="Why the settings cannot be counted.")
    seconds = param.Number(default=0.0, constant=True, doc="Time the last recount took.")

    def __init__(
        self,
        cache: DetectionCache,
        gt: GroundTruth,
        image: np.ndarray,
        *,
        imgsz: int = 640,
        tracker: str = "bytetrack",
        track_buffer: int = 30,
        **params,
    ) -> None:
        height, width = image.shape[:2]
        params.setdefault("line", (width / 2, 0.0, width / 2, float(height)))  # a first line
        super().__init__(**params)
        self.cache, self.gt, self.image = cache, gt, image
        self.imgsz, self.tracker, self.track_buffer = int(imgsz), tracker, int(track_buffer)
        # The cache holds boxes down to its base confidence, frames up to the video's rate.
        self.param.confidence.bounds = (cache.base_confidence, 0.95)
        self.param.detection_fps.bounds = (MIN_DETECTION_FPS, min(MAX_DETECTION_FPS, cache.fps))
        self._check_bounds()
        self.frames = min(cache.max_frames or gt.num_frames, gt.num_frames)
        self._tracked: OrderedDict[tuple[float, float], list[tuple[int, Detections]]] = (
            OrderedDict()
        )
        use_bokeh()
        self.drawn = hv.DynamicMap(self._path, streams=[self.param.line])
        self.line_draw = hv.streams.PolyDraw(
            source=self.drawn, drag=True, num_objects=1, show_vertices=True,
            vertex_style={"color": LINE_COLOUR}, tooltip="Draw or move the counting line",
        )  # fmt: skip
        self.line_edit = hv.streams.PolyEdit(
            source=self.drawn, vertex_style={"color": LINE_COLOUR}, tooltip="Move its ends"
        )
        for stream in (self.line_draw, self.line_edit):
            stream.param.watch(lambda event: self.draw_line(event.new), "data")
        self.param.watch(
            lambda *_: self.recount(),
            ["line", "confidence", "min_distance", "min_frames", "detection_fps"],
        )
        self.recount()

    def _check_bounds(self) -> None:
        for name in ("confidence", "detection_fps"):
            low, high = self.param[name].bounds
            if not low <= getattr(self, name) <= high:
                raise ValueError(f"{name}={getattr(self, name)!r} is outside [{low}, {high}]")

    # ------------------------------------------------------------------ model
    def draw_line(self, data: dict | None) -> None:
        """A ``PolyDraw``/``PolyEdit`` stream's path: first to last vertex is the line
        (PolyDraw may leave more vertices, or none while the user starts a new path)."""
        xs, ys = ((data or {}).get("xs") or [[]])[-1], ((data or {}).get("ys") or [[]])[-1]
        if len(xs) < 2 or len(ys) < 2:
            return
        self.line = (float(xs[0]), float(ys[0]), float(xs[-1]), float(ys[-1]))

    def calibration(self) -> Calibration:
        """The line and the sliders as a calibration (raises ``CalibrationError``)."""
        x1, y1, x2, y2 = self.line
        return parse_calibration(
            {
                "lines": [{"id": LINE_ID, "x1": x1, "y1": y1, "x2": x2, "y2": y2}],
                "detection_fps": self.detection_fps,
                "min_distance": self.min_distance,
                "min_frames": self.min_frames,
            }
        )

    def recount(self) -> None:
        """Count the cached detections with the current line and settings; a line the
        calibration refuses (e.g. of no length) leaves the last report and says why."""
        started = time.perf_counter()
        try:
            calibration = self.calibration()
        except CalibrationError as error:
            with param.edit_constant(self):
                self.error = str(error)
            return
        events = count_events(self._tracked_run(), calibration)
        report = evaluate(
            calibration,
            self.gt,
            events,
            frames=self.frames,
            window_frames=DEFAULT_MATCH_WINDOW_S * self.cache.fps,
        )
        with param.edit_constant(self):
            self.param.update(report=report, error="", seconds=time.perf_counter() - started)

    def _tracked_run(self) -> list[tuple[int, Detections]]:
        rate = self.cache.rate(self.detection_fps)
        key = (self.confidence, rate)
        if key not in self._tracked:
            frames = self.cache.detections(self.confidence, self.imgsz, rate)
            self._tracked[key], _ = track_frames(
                frames, self.tracker, self.track_buffer, rate, self.cache.fps
            )
            if len(self._tracked) > MAX_TRACKED_RUNS:
                self._tracked.popitem(last=False)
        self._tracked.move_to_end(key)
        return self._tracked[key]

    def table(self) -> pd.DataFrame:
        """Counted against true per direction (``error`` = counted - true)."""
        if self.report is None:
            return pd.DataFrame(columns=TABLE_COLUMNS)
        return pd.DataFrame(
            [
                {
                    "line": s.line_id,
                    "direction": s.direction,
                    "true": s.true,
                    "counted": s.counted,
                    "matched": s.matched,
                    "error": s.error,
                }
                for s in self.report.scores
            ],
            columns=TABLE_COLUMNS,
        )

    def summary(self) -> str:
        """One line: precision and recall of the counted events, and the recount time."""
        if self.error:
            return f"Not counted: {self.error}"
        report = self.report
        pct = lambda v: "-" if v is None else f"{100 * v:.0f}%"  # noqa: E731
        return (
            f"{len(report.counted_events)} counted, {len(report.true_events)} true crossings "
            f"in {report.frames} frames: precision {pct(report.precision)}, recall "
            f"{pct(report.recall)} (recounted in {1000 * self.seconds:.0f} ms)"
        )

    # ------------------------------------------------------------------ view
    def _path(self, line: tuple[float, float, float, float]) -> hv.Path:
        x1, y1, x2, y2 = line
        return hv.Path([{"x": [x1, x2], "y": [y1, y2]}]).opts(color=LINE_COLOUR, line_width=4)

    def _scene(self) -> hv.DynamicMap:
        height, width = self.image.shape[:2]
        frame = frame_image(self.image).opts(xlim=(0, width), ylim=(0, height))
        return (frame * self.drawn).opts(
            frame_width=DRAWING_WIDTH,
            frame_height=round(DRAWING_WIDTH * height / width),
            invert_yaxis=True,
            xaxis=None,
            yaxis=None,
            active_tools=["poly_draw"],
            toolbar="right",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        sliders = pn.Param(
            self.param,
            parameters=["confidence", "min_distance", "min_frames", "detection_fps"],
            widgets={
                "confidence": pn.widgets.FloatSlider,
                "min_distance": pn.widgets.FloatSlider,
                "min_frames": pn.widgets.IntSlider,
                "detection_fps": pn.widgets.FloatSlider,
            },
            show_name=False,
        )
        table = pn.widgets.Tabulator(
            pn.bind(lambda _: self.table(), self.param.report),
            disabled=True,
            show_index=False,
        )
        summary = pn.pane.Markdown(
            pn.bind(lambda *_: self.summary(), self.param.report, self.param.error)
        )
        return pn.Row(
            pn.pane.HoloViews(self._scene(), linked_axes=False),
            pn.Column(sliders, summary, table),
        )
