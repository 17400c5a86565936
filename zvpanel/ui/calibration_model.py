"""The calibration being edited, as parameters, and its drawing over the snapshot.

:class:`CalibrationModel` holds what an editor shows: the snapshot, the counting lines,
the zones, the ROI and the detection rate, and keeps :attr:`~CalibrationModel.problem`
and :attr:`~CalibrationModel.warnings` up to date with every change (a drag included).
It knows nothing of cameras, databases or servers, so it works in a notebook as it does
on the ``/calibrate`` page.

:class:`CalibrationDrawing` draws a model in image pixels (x right, y down) with
HoloViews: every element is a ``DynamicMap`` of the model's parameters, and the mouse
edits them through streams (``PolyDraw``/``PolyEdit`` for lines and zones, ``BoxEdit``
for the ROI) that write the model back. A stream sending what the model already holds
changes nothing (parameters only fire on a change), so the two never ping-pong.
HoloViews refreshes a served plot under its document's lock by itself, so the model may
be changed from any thread.
"""

from __future__ import annotations

import math

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..annotate import entry_arrow
from ..calibration import (
    MAX_DETECTION_FPS,
    MAX_LINES_AND_ZONES,
    MIN_DETECTION_FPS,
    Calibration,
    CountingLine,
    parse_calibration,
)
from ..calibration_check import CalibrationWarning, check_calibration
from ..errors import CalibrationError
from ..plots import frame_image, use_bokeh

__all__ = [
    "CalibrationModel",
    "CalibrationDrawing",
    "LINE_COLUMNS",
    "ZONE_COLUMNS",
    "LINE_COLOUR",
    "ZONE_COLOUR",
]

LINE_COLUMNS = ["id", "x1", "y1", "x2", "y2", "orientation"]
ZONE_COLUMNS = ["id", "queue", "points"]
#: Colour of counting lines (the browser tests find the line by this colour).
LINE_COLOUR = "#ff00ff"
#: Colour of zones (the browser tests find a zone by this colour).
ZONE_COLOUR = "#ff8c00"
ROI_COLOUR = "#00d5ff"
ARROW_COLOUR = "#ffd400"
BOX_COLOUR = "#00ff66"
#: Width of the drawing on the page (screen pixels); the height follows the image.
DRAWING_WIDTH = 768
#: Frame of the model before a snapshot arrives (width, height).
BLANK_SIZE = (640, 480)
ROI_PARAMS = ("use_roi", "roi_x1", "roi_y1", "roi_x2", "roi_y2")
#: Tooltip of the lines' PolyDraw tool (active when the page opens: dragging moves a line).
LINES_TOOL = "Draw or move counting lines"
VERTEX_TOOL = "Move the ends of lines and the corners of zones"
#: Drawn coordinates are kept to this many decimals (a tenth of a pixel).
DECIMALS = 1


def _table(columns: list[str], rows: list[dict] = ()) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=columns)


def _blank() -> np.ndarray:
    width, height = BLANK_SIZE
    return np.zeros((height, width, 3), dtype=np.uint8)


class CalibrationModel(param.Parameterized):
    """One camera's calibration while it is edited; validated on every change."""

    image = param.Array(
        default=_blank(), doc="The snapshot the calibration is drawn on (H x W x 3, BGR)."
    )
    lines = param.DataFrame(
        default=_table(LINE_COLUMNS),
        columns=LINE_COLUMNS,
        doc="Counting lines in image pixels, one per row: id, end points (x1, y1) and "
        "(x2, y2), and which crossing is an entry ('leftToRight' or 'rightToLeft').",
    )
    zones = param.DataFrame(
        default=_table(ZONE_COLUMNS),
        columns=ZONE_COLUMNS,
        doc="Zones, one per row: id, whether it is a queue, and its polygon's vertices "
        "[(x, y), ...] in image pixels.",
    )
    use_roi = param.Boolean(
        default=False, doc="Detect people only inside the region of interest (else everywhere)."
    )
    # Four numbers rather than one tuple: each is typed into its own input, and a cleared
    # or non-finite input stays what it is, to be named by the validation.
    roi_x1 = param.Number(default=0.0, allow_None=True, doc="ROI left edge (pixels).")
    roi_y1 = param.Number(default=0.0, allow_None=True, doc="ROI top edge (pixels).")
    roi_x2 = param.Number(default=0.0, allow_None=True, doc="ROI right edge (pixels).")
    roi_y2 = param.Number(default=0.0, allow_None=True, doc="ROI bottom edge (pixels).")
    detection_fps = param.Number(
        default=5.0,
        bounds=(MIN_DETECTION_FPS, MAX_DETECTION_FPS),
        step=0.5,
        doc=f"Detections per second of video ({MIN_DETECTION_FPS:g} to {MAX_DETECTION_FPS:g}).",
    )
    hysteresis = param.Dict(
        default={},
        doc="The calibration's other settings (anchor, min_distance, min_frames), kept as "
        "loaded: this editor does not change them.",
    )
    preview = param.DataFrame(
        default=_table(["x0", "y0", "x1", "y1", "confidence"]),
        doc="People a preview detected on the snapshot (boxes in pixels); not saved.",
    )
    calibration = param.ClassSelector(
        class_=Calibration, default=None, doc="The edited calibration when it is valid."
    )
    problem = param.String(default="", doc="Why the edited calibration is invalid ('' if valid).")
    warnings = param.List(
        default=[], item_type=CalibrationWarning, doc="Placement advice; it may be saved anyway."
    )

    @property
    def frame_size(self) -> tuple[int, int]:
        height, width = self.image.shape[:2]
        return width, height

    # ------------------------------------------------------------------ in and out
    def load(self, image: np.ndarray | None, calibration: Calibration | None) -> None:
        """Show ``image`` and ``calibration`` (a line across the middle if None), together."""
        image = image if image is not None else np.zeros_like(self.image)
        height, width = image.shape[:2]
        calibration = calibration or Calibration.single_line(
            width / 2, height * 0.1, width / 2, height * 0.9
        )
        roi = calibration.roi or (0.0, 0.0, float(width), float(height))
        self.param.update(
            image=image,
            lines=_table(LINE_COLUMNS, [line.model_dump() for line in calibration.lines]),
            zones=_table(ZONE_COLUMNS, [zone.model_dump() for zone in calibration.zones]),
            use_roi=calibration.roi is not None,
            **dict(zip(("roi_x1", "roi_y1", "roi_x2", "roi_y2"), roi, strict=True)),
            detection_fps=calibration.detection_fps,
            hysteresis=calibration.model_dump(include={"anchor", "min_distance", "min_frames"}),
            preview=self.preview.iloc[0:0],
        )

    def roi(self) -> tuple | None:
        """The ROI as typed (a cleared input stays None, for the validation to name)."""
        if not self.use_roi:
            return None
        return (self.roi_x1, self.roi_y1, self.roi_x2, self.roi_y2)

    def build(self) -> Calibration:
        """The edited calibration; :class:`CalibrationError` naming what is wrong."""
        # As typed: NaN stays NaN and a cleared cell None, each named by the validation.
        calibration = parse_calibration(
            {
                "roi": self.roi(),
                "lines": self.lines.to_dict("records"),
                "zones": self.zones.to_dict("records"),
                "detection_fps": self.detection_fps,
                **self.hysteresis,
            }
        )
        calibration.check_frame(*self.frame_size)
        return calibration

    @param.depends(
        "image", "lines", "zones", "use_roi", "roi_x1", "roi_y1", "roi_x2", "roi_y2",
        "detection_fps", watch=True, on_init=True,
    )  # fmt: skip
    def _validate(self) -> None:
        try:
            calibration, problem = self.build(), ""
        except CalibrationError as error:
            calibration, problem = None, str(error)
        warnings = check_calibration(calibration, self.frame_size) if calibration else []
        self.param.update(calibration=calibration, problem=problem, warnings=warnings)

    # ------------------------------------------------------------------ what the mouse did
    def draw_lines(self, data: dict) -> None:
        """A ``PolyDraw``/``PolyEdit`` stream's paths: the lines.

        A path keeps the id and orientation of the row it was drawn from (see
        :func:`_drawn`); a new one gets a free id. PolyDraw may leave more than two vertices: a line is first-to-last.
        """
        rows, taken = [], set(self.zones["id"])
        for old, xs, ys in _drawn(self.lines, data, _line_key):
            if len(xs) < 2:
                continue  # a line being drawn: one click so far
            line_id = old["id"] if old is not None else _free_id("line", taken)
            taken.add(line_id)
            drawn = _rounded((xs[0], ys[0], xs[-1], ys[-1]))
            ends = dict(zip(("x1", "y1", "x2", "y2"), drawn, strict=True))
            if old is not None:  # a typed gap drawn comes back as NaN: it stays what it was
                ends |= {k: old[k] for k, v in ends.items() if not _finite(v, old[k])}
            orientation = old["orientation"] if old is not None else "leftToRight"
            rows.append({"id": line_id, **ends, "orientation": orientation})
        self._set_if_changed("lines", _table(LINE_COLUMNS, rows))

    def draw_zones(self, data: dict) -> None:
        """A ``PolyDraw``/``PolyEdit`` stream's paths: the zones (like :meth:`draw_lines`)."""
        rows, taken = [], set(self.lines["id"])
        for old, xs, ys in _drawn(self.zones, data, _zone_key):
            zone_id = old["id"] if old is not None else _free_id("zone", taken)
            taken.add(zone_id)
            points = tuple(zip(_rounded(xs), _rounded(ys), strict=True))
            queue = bool(old["queue"]) if old is not None else False
            rows.append({"id": zone_id, "queue": queue, "points": points})
        self._set_if_changed("zones", _table(ZONE_COLUMNS, rows))

    def draw_roi(self, data: dict) -> None:
        """A ``BoxEdit`` stream's box: the ROI (none drawn: the ROI stays as it is)."""
        if len(data.get("x0", ())) == 0:
            return
        x0, y0, x1, y1 = (data[key][-1] for key in ("x0", "y0", "x1", "y1"))
        box = _rounded((min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))
        if self.use_roi and box == [_as_drawn(v) for v in self.roi()]:
            return  # the plot sending back the box it drew
        left, top, right, bottom = box
        self.param.update(use_roi=True, roi_x1=left, roi_y1=top, roi_x2=right, roi_y2=bottom)

    def _set_if_changed(self, name: str, table: pd.DataFrame) -> None:
        # A table is a new object each time: compare contents, at the precision drawing
        # keeps, so that what a plot sends back of what it drew is not a change again.
        if not table.equals(getattr(self, name).map(_as_drawn)):
            setattr(self, name, table)

    # ------------------------------------------------------------------ what is drawn
    def arrows(self) -> pd.DataFrame:
        """Per line, an arrow (x0, y0) -> (x1, y1) pointing to where people go to enter.
        Unfinished lines (a gap typed, one being drawn, still a point) have none."""
        rows = []
        for row in self.lines.to_dict("records"):
            try:
                line = CountingLine(**row)
            except ValueError:
                continue
            if line.length > 0:
                (x0, y0), (x1, y1) = entry_arrow(line)
                rows.append({"x0": x0, "y0": y0, "x1": x1, "y1": y1, "label": "IN"})
        return _table(["x0", "y0", "x1", "y1", "label"], rows)


def _drawn(table: pd.DataFrame, data: dict, key):
    """(row of ``table`` it was drawn from or None if new, xs, ys) per path of a stream's
    ``data``. A path still where a row is drawn is that row (so deleting one leaves the
    others their names); a moved one is the first row no path is at, in order."""
    paths = list(zip(data.get("xs", []), data.get("ys", []), strict=False))
    old = [key(row) for row in table.to_dict("records")]
    free = list(range(len(table)))
    at = {}
    for i, (xs, ys) in enumerate(paths):
        found = next((j for j in free if old[j] == key(_shape(xs, ys))), None)
        if found is not None:
            at[i] = found
            free.remove(found)
    for i, (xs, ys) in enumerate(paths):
        j = at.get(i, free.pop(0) if free else None)
        yield (table.iloc[j] if j is not None else None), xs, ys


def _shape(xs, ys) -> dict:
    """A drawn path as a row's geometry (both line ends and zone points)."""
    xs, ys = _rounded(xs), _rounded(ys)
    if not xs:
        return {"points": ()}
    ends = {"x1": xs[0], "y1": ys[0], "x2": xs[-1], "y2": ys[-1]}
    return {**ends, "points": tuple(zip(xs, ys, strict=True))}


def _line_key(row: dict) -> tuple:
    return tuple(_as_drawn(row[k]) for k in ("x1", "y1", "x2", "y2"))


def _zone_key(row: dict) -> tuple:
    return _as_drawn(tuple(row["points"]))


def _free_id(prefix: str, taken: set[str]) -> str:
    n = 1
    while f"{prefix}-{n}" in taken:
        n += 1
    return f"{prefix}-{n}"


def _rounded(values) -> list[float]:
    return [math.nan if v is None else round(float(v), DECIMALS) for v in values]


def _frame_height(image: np.ndarray) -> int:
    """Screen height of the drawing of ``image`` at :data:`DRAWING_WIDTH`, at scale."""
    height, width = image.shape[:2]
    return round(DRAWING_WIDTH * height / width)


def _outlines(zones: pd.DataFrame) -> list[dict]:
    return [{"x": [x for x, _ in pts], "y": [y for _, y in pts]} for pts in zones["points"]]


def _as_drawn(value):
    """``value`` at the precision drawing keeps (coordinates, tuples of them, others as is)."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, tuple):
        return tuple(_as_drawn(v) for v in value)
    return value


def _finite(*values) -> bool:
    """True if any of ``values`` is a finite number."""
    return any(v is not None and math.isfinite(v) for v in values)


def _lines_tool_active(plot, element) -> None:
    """HoloViews hook: dragging moves a line when the page opens (``active_tools`` names a
    kind of tool, and there are two PolyDraw tools: this one is told by its tooltip)."""
    toolbar = plot.state.toolbar
    toolbar.active_drag = next(t for t in toolbar.tools if t.description == LINES_TOOL)


class CalibrationDrawing(pn.viewable.Viewer):
    """The model drawn over its snapshot; the mouse edits lines, zones and the ROI."""

    model = param.ClassSelector(class_=CalibrationModel, doc="What is drawn and edited.")
    accepts = param.Callable(
        default=lambda: True,
        doc="Whether the mouse's edits are taken now (an editor loading another camera's "
        "picture drops edits of the one being replaced).",
    )

    def __init__(self, **params) -> None:
        super().__init__(**params)
        use_bokeh()
        model = self.model
        self.lines = hv.DynamicMap(self._lines, streams=[model.param.lines])
        self.zones = hv.DynamicMap(self._zones, streams=[model.param.zones])
        self.roi = hv.DynamicMap(self._roi, streams=[hv.streams.Params(model, list(ROI_PARAMS))])
        self.line_draw = hv.streams.PolyDraw(  # its tooltip is how _lines_tool_active finds it
            source=self.lines,
            drag=True,
            num_objects=MAX_LINES_AND_ZONES,
            show_vertices=True,
            vertex_style={"color": LINE_COLOUR},
            tooltip=LINES_TOOL,
        )
        # HoloViews gives both PolyEdit streams one vertex tool (its first tooltip).
        self.line_edit = hv.streams.PolyEdit(
            source=self.lines,
            vertex_style={"color": LINE_COLOUR},
            tooltip=VERTEX_TOOL,
        )
        self.zone_draw = hv.streams.PolyDraw(
            source=self.zones,
            drag=True,
            num_objects=MAX_LINES_AND_ZONES,
            show_vertices=True,
            vertex_style={"color": ZONE_COLOUR},
            tooltip="Draw or move zones",
        )
        self.zone_edit = hv.streams.PolyEdit(
            source=self.zones, vertex_style={"color": ZONE_COLOUR}, tooltip=VERTEX_TOOL
        )
        self.roi_edit = hv.streams.BoxEdit(
            source=self.roi, num_objects=1, tooltip="Draw or move the region of interest"
        )
        for stream, apply in (
            (self.line_draw, model.draw_lines),
            (self.line_edit, model.draw_lines),
            (self.zone_draw, model.draw_zones),
            (self.zone_edit, model.draw_zones),
            (self.roi_edit, model.draw_roi),
        ):
            stream.param.watch(lambda event, apply=apply: self._edited(apply, event.new), "data")
        self.overlay = self._overlay()
        self.pane = pn.pane.HoloViews(self.overlay)
        model.param.watch(self._fit_frame, "image")

    def _fit_frame(self, event: param.parameterized.Event) -> None:
        """A snapshot of another shape: the plot is drawn anew at its aspect ratio (a
        plot's size is fixed once drawn). A Panel pane: safe from any thread."""
        if _frame_height(event.new) != _frame_height(event.old):
            self.overlay = self._overlay()
            self.pane.object = self.overlay

    def _edited(self, apply, data: dict) -> None:
        if self.accepts():
            apply(data)

    def _overlay(self) -> hv.DynamicMap:
        model = self.model
        image = hv.DynamicMap(self._image, streams=[model.param.image])
        arrows = hv.DynamicMap(self._arrows, streams=[model.param.lines])
        boxes = hv.DynamicMap(self._boxes, streams=[model.param.preview])
        fills = hv.DynamicMap(self._zone_fills, streams=[model.param.zones])
        return (image * boxes * self.roi * fills * self.zones * self.lines * arrows).opts(
            frame_width=DRAWING_WIDTH,
            frame_height=_frame_height(model.image),
            invert_yaxis=True,
            xaxis=None,
            yaxis=None,
            hooks=[_lines_tool_active],
            toolbar="right",
        )

    # Each element: a function of the model's parameters (DynamicMap callbacks).
    def _image(self, image: np.ndarray) -> hv.RGB:
        height, width = image.shape[:2]
        return frame_image(image).opts(xlim=(0, width), ylim=(0, height), framewise=True)

    def _lines(self, lines: pd.DataFrame) -> hv.Path:
        paths = [{"x": [r.x1, r.x2], "y": [r.y1, r.y2]} for r in lines.itertuples()]
        return hv.Path(paths).opts(color=LINE_COLOUR, line_width=5)

    def _zones(self, zones: pd.DataFrame) -> hv.Path:
        # Edited as open paths: a plotted hv.Polygons closes its rings, so a polygon being
        # drawn would come back with a vertex more than the browser is drawing.
        return hv.Path(_outlines(zones)).opts(color=ZONE_COLOUR, line_width=3)

    def _zone_fills(self, zones: pd.DataFrame) -> hv.Polygons:
        return hv.Polygons(_outlines(zones)).opts(
            fill_color=ZONE_COLOUR, fill_alpha=0.2, line_alpha=0
        )

    def _roi(self, **values) -> hv.Rectangles:
        box = self.model.roi()
        drawn = [box] if box is not None and all(np.isfinite(v or np.nan) for v in box) else []
        return hv.Rectangles(drawn).opts(
            fill_color=ROI_COLOUR, fill_alpha=0.08, line_color=ROI_COLOUR, line_width=2,
            line_dash="dashed",
        )  # fmt: skip

    def _arrows(self, lines: pd.DataFrame) -> hv.Overlay:
        arrows = self.model.arrows()
        shafts = hv.Segments(arrows, kdims=["x0", "y0", "x1", "y1"]).opts(
            color=ARROW_COLOUR, line_width=3
        )
        labels = hv.Labels(arrows, kdims=["x1", "y1"], vdims=["label"]).opts(
            text_color=ARROW_COLOUR, text_font_style="bold", text_align="left"
        )
        return shafts * labels

    def _boxes(self, preview: pd.DataFrame) -> hv.Rectangles:
        return hv.Rectangles(preview, kdims=["x0", "y0", "x1", "y1"], vdims=["confidence"]).opts(
            fill_alpha=0, line_color=BOX_COLOUR, line_width=2
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self.pane
