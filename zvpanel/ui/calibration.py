"""Calibration page: draw the ROI and counting lines on a fresh snapshot, check, preview, save.

The drawing is a Bokeh figure in image pixel coordinates (x right, y down):

* the ROI is a ``Rect`` edited with ``BoxEditTool`` (drag it, or shift-drag a new one);
* the counting lines are a ``MultiLine`` edited with ``PolyDrawTool`` (drag a whole line,
  draw a new one) and ``PolyEditTool`` (double-click a line, then drag its end points);
* each line's entry side is drawn as an arrow crossing the line, labelled ``IN``.

Numeric inputs and the drawing are kept in sync both ways. Nothing reaches the engine
until an admin presses Save, which validates (``Calibration`` + ``check_frame``), writes
the database and applies it to the running camera with ``engine.reload_camera``.

Threads: served with ``--num-threads``, Panel calls watchers and button callbacks in a
worker pool, outside the Bokeh document's lock, and a Bokeh model changed there breaks
the session (``_pending_writes should be non-None``). So every change of the editor's
state and figure runs in the document (:meth:`CalibrationEditor._in_document`); slow
reads (a snapshot, the database) happen before, in the worker. The form is what Save
writes: the lines are those of :attr:`CalibrationEditor.camera_id`, the camera they
were loaded for, and a Save pressed while a picked camera loads waits for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from typing import TypeVar

import numpy as np
import panel as pn
from bokeh.models import (
    Arrow,
    BoxEditTool,
    ColumnDataSource,
    LabelSet,
    NormalHead,
    PolyDrawTool,
    PolyEditTool,
    Range1d,
)
from bokeh.plotting import figure

from ..annotate import entry_direction
from ..calibration import (
    MAX_DETECTION_FPS,
    MIN_DETECTION_FPS,
    Calibration,
    CountingLine,
    parse_calibration,
)
from ..calibration_check import check_calibration
from ..display import markdown_text
from ..errors import AuthError, CalibrationError, NotFoundError, SourceError
from ..web.access import visible_cameras
from ..web.auth import Claims
from .layout import page
from .session import is_admin, require_admin, session_claims

__all__ = [
    "CalibrationEditor",
    "calibration_page",
    "take_snapshot",
    "entry_arrow",
    "LINE_COLOUR",
    "FIGURE_NAME",
]

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Colour of counting lines (the browser tests find the line by this colour).
LINE_COLOUR = "#ff00ff"
ROI_COLOUR = "#00d5ff"
ARROW_COLOUR = "#ffd400"
#: Length of the entry arrow drawn across each line (pixels of the image).
ARROW_LENGTH = 60.0
FIGURE_NAME = "calibration-figure"
#: Width of the drawing on the page (pixels); the height follows the image's aspect ratio.
FIGURE_WIDTH = 768
ORIENTATIONS = {"left to right is entry": "leftToRight", "right to left is entry": "rightToLeft"}


def take_snapshot(app, camera_id: int) -> np.ndarray:
    """A fresh BGR frame of the camera.

    The engine's newest frame when the camera runs (its source is read only once, by the
    engine); otherwise the source is opened once for one frame.
    """
    latest = app.hub.latest(camera_id)
    if latest is not None:
        return latest.frame.image.copy()
    from ..sources import describe_source, iter_frames

    camera = app.db.get_camera(camera_id)
    for frame in iter_frames(camera.source, max_frames=1):
        return frame.image
    raise SourceError(
        f"camera {camera_id}: source {describe_source(camera.source)!r} gave no frame"
    )


def entry_arrow(
    line: CountingLine, length: float = ARROW_LENGTH
) -> tuple[float, float, float, float]:
    """(x_start, y_start, x_end, y_end) of an arrow across the line's middle, pointing to the
    side people come to when they ENTER (see :attr:`CountingLine.entry_side`)."""
    ux, uy = entry_direction(line)
    mx, my = (line.x1 + line.x2) / 2, (line.y1 + line.y2) / 2
    half = length / 2
    return (mx - ux * half, my - uy * half, mx + ux * half, my + uy * half)


def _rgba(image_bgr: np.ndarray) -> np.ndarray:
    """An (H, W) uint32 RGBA image for Bokeh's ``image_rgba``."""
    height, width = image_bgr.shape[:2]
    rgba = np.empty((height, width, 4), dtype=np.uint8)
    rgba[..., 0] = image_bgr[..., 2]
    rgba[..., 1] = image_bgr[..., 1]
    rgba[..., 2] = image_bgr[..., 0]
    rgba[..., 3] = 255
    return rgba.view(np.uint32).reshape(height, width)


def _default_calibration(width: int, height: int) -> Calibration:
    return Calibration.single_line(width / 2, height * 0.1, width / 2, height * 0.9)


class CalibrationEditor(pn.viewable.Viewer):
    """Edit one camera's calibration; :meth:`save` applies it (admins only)."""

    def __init__(self, app, claims: Claims | None, camera_id: int | None = None) -> None:
        super().__init__()
        self.app = app
        self.claims = claims
        self.admin = is_admin(app, claims)
        self._syncing = False
        #: The camera whose snapshot and calibration the form shows (what Save writes to).
        self.loaded_camera_id: int | None = None
        self._save_after_load = False
        cameras = visible_cameras(app.db, claims.username if claims else None)
        self.camera_select = pn.widgets.Select(
            label="Camera", options={f"{c.name} (#{c.id})": c.id for c in cameras}, width=260
        )
        if camera_id is not None:
            self.camera_select.value = camera_id
        self.snapshot_button = pn.widgets.Button(label="New snapshot", color="default")
        self.roi_enabled = pn.widgets.Checkbox(label="Use a region of interest", value=True)
        self.roi_inputs = [
            pn.widgets.FloatInput(label=n, step=1, width=90)
            for n in ("ROI x1", "ROI y1", "ROI x2", "ROI y2")
        ]
        self.line_select = pn.widgets.Select(label="Line", width=150)
        self.line_id = pn.widgets.TextInput(label="Line name", width=150)
        self.line_inputs = [
            pn.widgets.FloatInput(label=n, step=1, width=90) for n in ("x1", "y1", "x2", "y2")
        ]
        self.orientation = pn.widgets.RadioButtonGroup(options=ORIENTATIONS, value="leftToRight")
        self.add_line_button = pn.widgets.Button(label="Add line")
        self.remove_line_button = pn.widgets.Button(label="Remove line")
        self.fps = pn.widgets.FloatInput(
            label=f"Detection rate (per second, {MIN_DETECTION_FPS:g}-{MAX_DETECTION_FPS:g})",
            step=0.5,
            width=260,
        )
        self.preview_button = pn.widgets.Button(label="Preview detection", color="primary")
        self.save_button = pn.widgets.Button(label="Save", color="success", disabled=not self.admin)
        # Messages name what users typed: shown as text (markdown_text), no TeX either.
        self.status = pn.pane.Alert(
            "", alert_type="info", sizing_mode="stretch_width", visible=False, disable_math=True
        )
        self.lines: list[dict] = []
        self.width = self.height = 0
        self.image: np.ndarray | None = None
        self._build_figure()
        if cameras:  # building the page: nothing else holds its document yet
            self._show_camera(*self._read_camera(self.camera_select.value))
        self._wire()

    # ------------------------------------------------------------------ building
    def _build_figure(self) -> None:
        self.image_source = ColumnDataSource({"image": [], "dw": [], "dh": []})
        self.roi_source = ColumnDataSource({"x": [], "y": [], "width": [], "height": []})
        self.lines_source = ColumnDataSource({"xs": [], "ys": []})
        self.vertex_source = ColumnDataSource({"x": [], "y": []})
        self.arrow_source = ColumnDataSource(
            {"x_start": [], "y_start": [], "x_end": [], "y_end": [], "label": []}
        )
        self.detection_source = ColumnDataSource(
            {"left": [], "right": [], "top": [], "bottom": [], "label": [], "lx": [], "ly": []}
        )
        fig = figure(
            name=FIGURE_NAME,
            x_range=Range1d(0, 1),
            y_range=Range1d(1, 0),  # image rows go down
            tools="pan,wheel_zoom,reset",
            toolbar_location="right",
            min_border=0,
            match_aspect=True,
            frame_width=FIGURE_WIDTH,
            frame_height=FIGURE_WIDTH * 3 // 4,
        )
        fig.axis.visible = False
        fig.grid.visible = False
        fig.image_rgba(image="image", x=0, y=0, dw="dw", dh="dh", source=self.image_source)
        fig.quad(
            left="left",
            right="right",
            top="top",
            bottom="bottom",
            source=self.detection_source,
            fill_alpha=0,
            line_color="#00ff66",
            line_width=2,
        )
        fig.add_layout(
            LabelSet(
                x="lx",
                y="ly",
                text="label",
                source=self.detection_source,
                text_color="#00ff66",
                text_font_size="11px",
                y_offset=2,
            )
        )
        roi = fig.rect(
            x="x",
            y="y",
            width="width",
            height="height",
            source=self.roi_source,
            fill_alpha=0.08,
            fill_color=ROI_COLOUR,
            line_color=ROI_COLOUR,
            line_width=2,
            line_dash="dashed",
        )
        lines = fig.multi_line(
            xs="xs", ys="ys", source=self.lines_source, line_color=LINE_COLOUR, line_width=5
        )
        vertices = fig.scatter(x="x", y="y", source=self.vertex_source, size=10, color=LINE_COLOUR)
        fig.add_layout(
            Arrow(
                end=NormalHead(size=14, fill_color=ARROW_COLOUR, line_color=ARROW_COLOUR),
                x_start="x_start",
                y_start="y_start",
                x_end="x_end",
                y_end="y_end",
                source=self.arrow_source,
                line_color=ARROW_COLOUR,
                line_width=3,
            )
        )
        fig.add_layout(
            LabelSet(
                x="x_end",
                y="y_end",
                text="label",
                source=self.arrow_source,
                text_color=ARROW_COLOUR,
                text_font_style="bold",
                x_offset=4,
            )
        )
        box_edit = BoxEditTool(renderers=[roi], num_objects=1, description="Edit the ROI box")
        poly_draw = PolyDrawTool(
            renderers=[lines], drag=True, description="Move or draw counting lines"
        )
        poly_edit = PolyEditTool(
            renderers=[lines], vertex_renderer=vertices, description="Move line end points"
        )
        fig.add_tools(box_edit, poly_draw, poly_edit)
        fig.toolbar.active_drag = poly_draw
        self.figure = fig
        self.figure_pane = pn.pane.Bokeh(fig)

    def _wire(self) -> None:
        # Loading reads in the calling (worker) thread, then shows in the document.
        self.camera_select.param.watch(lambda e: self.load_camera(), "value")
        self.snapshot_button.on_click(lambda e: self.refresh_snapshot())
        # The browser's drawing tools: Bokeh calls these in the document already.
        self.roi_source.on_change("data", self._roi_drawn)
        self.lines_source.on_change("data", self._lines_drawn)
        # Everything else only changes the form: in the document, one change at a time.
        for widget in (*self.roi_inputs, self.roi_enabled):
            widget.param.watch(self._in_document_of(self._roi_typed), "value")
        self.line_select.param.watch(self._in_document_of(self._show_line), "value")
        for widget in (*self.line_inputs, self.line_id, self.orientation):
            widget.param.watch(self._in_document_of(self._line_typed), "value")
        self.add_line_button.on_click(self._in_document_of(self.add_line))
        self.remove_line_button.on_click(self._in_document_of(self.remove_line))
        self.fps.param.watch(self._in_document_of(self.validate), "value")
        self.preview_button.on_click(self._preview_clicked)
        self.save_button.on_click(self._save_clicked)

    # ------------------------------------------------------------------ threads
    def _in_document(self, change: Callable[[], object]) -> None:
        """Run ``change`` where it may touch the figure: under the document's lock.

        ``pn.state.execute`` runs it at once when this thread holds the document (a
        callback on the server's loop), else on the server's next tick. Without a
        server session (tests, notebooks) nothing else runs: it runs at once.
        """
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            change()
        else:
            pn.state.execute(change)

    def _in_document_of(self, method: Callable[[], object]) -> Callable[..., None]:
        """A watcher/on_click callback that runs ``method()`` in the document."""
        return lambda *event: self._in_document(method)

    async def _under_lock(self, compute: Callable[[], T]) -> T:
        """``compute()`` run under the document's lock, awaited from a coroutine."""
        doc = pn.state.curdoc
        if doc is None or doc.session_context is None:
            return compute()
        done: asyncio.Future = asyncio.get_running_loop().create_future()

        def run() -> None:
            try:
                done.set_result(compute())
            except Exception as error:  # handed to the awaiting coroutine
                done.set_exception(error)

        doc.add_next_tick_callback(run)
        return await done

    # ------------------------------------------------------------------ loading
    @property
    def camera_id(self) -> int | None:
        """The camera the form shows: Save writes to it (the Select may be ahead)."""
        return self.loaded_camera_id

    @property
    def loading(self) -> bool:
        return self.camera_select.value != self.loaded_camera_id

    def load_camera(self) -> None:
        """Snapshot the picked camera and show its saved calibration (or a default)."""
        camera_id = self.camera_select.value
        self._disable_save(True)  # a Panel widget: safe from any thread
        self._in_document(partial(self._show_camera, *self._read_camera(camera_id)))

    def _read_camera(
        self, camera_id: int
    ) -> tuple[int, np.ndarray | None, Calibration | None, str | None]:
        """The slow part of loading (any thread): snapshot, saved calibration, error."""
        image, error = self._snapshot(camera_id)
        return camera_id, image, self.app.db.get_calibration(camera_id), error

    def _snapshot(self, camera_id: int) -> tuple[np.ndarray | None, str | None]:
        try:
            return take_snapshot(self.app, camera_id), None
        except (SourceError, NotFoundError) as error:
            return None, f"No snapshot: {error}"

    def _show_camera(
        self,
        camera_id: int,
        image: np.ndarray | None,
        calibration: Calibration | None,
        error: str | None,
    ) -> None:
        """Show one camera's snapshot and calibration, together (in the document)."""
        if camera_id != self.camera_select.value:
            return  # another camera was picked meanwhile: its own load follows
        self.detection_source.data = {k: [] for k in self.detection_source.data}
        if image is None:  # no picture: a blank one of the last size, not another camera's
            height, width = self.image.shape[:2] if self.image is not None else (480, 640)
            image = np.zeros((height, width, 3), dtype=np.uint8)
        self._show_image(image)
        self.loaded_camera_id = camera_id
        self.set_calibration(calibration or _default_calibration(self.width, self.height))
        if error:
            self.show(error, "danger")
        self._disable_save(False)
        if self._save_after_load:
            self._save_after_load = False
            pn.state.execute(self._save_clicked)

    def _disable_save(self, loading: bool) -> None:
        self.save_button.disabled = loading or not self.admin

    def refresh_snapshot(self) -> None:
        """A new snapshot of the shown camera (its calibration stays as edited)."""
        camera_id = self.loaded_camera_id
        image, error = self._snapshot(camera_id)
        self._in_document(partial(self._show_snapshot, camera_id, image, error))

    def _show_snapshot(self, camera_id: int, image: np.ndarray | None, error: str | None) -> None:
        if camera_id != self.loaded_camera_id or self.loading:
            return  # another camera is shown or coming
        if image is None:
            self.show(error, "danger")
            return
        self._show_image(image)
        self.validate()

    def _show_image(self, image: np.ndarray) -> None:
        self.image = image
        self.height, self.width = image.shape[:2]
        self.image_source.data = {"image": [_rgba(image)], "dw": [self.width], "dh": [self.height]}
        self.figure.x_range.update(start=0, end=self.width)
        self.figure.y_range.update(start=self.height, end=0)
        self.figure.frame_height = round(FIGURE_WIDTH * self.height / self.width)

    def set_calibration(self, calibration: Calibration) -> None:
        """Show ``calibration`` in the drawing and the inputs."""
        self.lines = [line.model_dump() for line in calibration.lines]
        roi = calibration.roi
        with self._quietly():
            self.roi_enabled.value = roi is not None
            values = roi or (0, 0, self.width, self.height)
            for widget, value in zip(self.roi_inputs, values, strict=True):
                widget.value = float(value)
            self.fps.value = calibration.detection_fps
            self.line_select.options = [line["id"] for line in self.lines]
            self.line_select.value = self.lines[0]["id"]
        self._show_line()
        self._draw_roi()
        self._draw_lines()
        self.validate()

    # ------------------------------------------------------------------ drawing <-> inputs
    @contextmanager
    def _quietly(self) -> Iterator[None]:
        """Changes of inputs and drawing made inside do not call the editor's own
        watchers back (they would redo what is being done). Everything runs in the
        document (one thread), so one flag suffices; it nests."""
        was, self._syncing = self._syncing, True
        try:
            yield
        finally:
            self._syncing = was

    def _roi_values(self) -> tuple[float | None, ...]:
        """As typed: an emptied input stays None (validation names it), never 0."""
        return tuple(w.value for w in self.roi_inputs)

    def _draw_roi(self) -> None:
        values = self._roi_values()
        if not self.roi_enabled.value or not all(v is not None and math.isfinite(v) for v in values):
            self.roi_source.data = {"x": [], "y": [], "width": [], "height": []}
            return
        x1, y1, x2, y2 = values
        self.roi_source.data = {
            "x": [(x1 + x2) / 2],
            "y": [(y1 + y2) / 2],
            "width": [abs(x2 - x1)],
            "height": [abs(y2 - y1)],
        }

    def _roi_drawn(self, attr, old, new) -> None:
        # While a picked camera loads, an edit is of the picture being replaced: dropped.
        if self._syncing or self.loading or not new.get("x"):
            return
        x, y, w, h = (float(new[k][-1]) for k in ("x", "y", "width", "height"))
        with self._quietly():
            self.roi_enabled.value = True
            for widget, value in zip(
                self.roi_inputs, (x - w / 2, y - h / 2, x + w / 2, y + h / 2), strict=True
            ):
                widget.value = round(value, 1)
        self.validate()

    def _roi_typed(self, *_) -> None:
        if self._syncing:
            return
        with self._quietly():
            self._draw_roi()
        self.validate()

    def _draw_lines(self) -> None:
        xs = [[ln["x1"], ln["x2"]] for ln in self.lines]
        ys = [[ln["y1"], ln["y2"]] for ln in self.lines]
        with self._quietly():
            self.lines_source.data = {"xs": xs, "ys": ys}
        self._draw_arrows()

    def _draw_arrows(self) -> None:
        arrows = []
        for ln in self.lines:
            try:
                arrows.append(entry_arrow(CountingLine(**ln)))
            except ValueError:
                continue  # an unfinished line has no arrow yet
        self.arrow_source.data = {
            "x_start": [a[0] for a in arrows],
            "y_start": [a[1] for a in arrows],
            "x_end": [a[2] for a in arrows],
            "y_end": [a[3] for a in arrows],
            "label": ["IN"] * len(arrows),
        }

    def _lines_drawn(self, attr, old, new) -> None:
        """The browser moved, drew or deleted a line: update the line list and inputs."""
        if self._syncing or self.loading:  # an edit of the camera being replaced
            return
        xs, ys = list(new.get("xs", [])), list(new.get("ys", []))
        lines = []
        for i, (lx, ly) in enumerate(zip(xs, ys, strict=False)):
            if len(lx) < 2:
                continue
            base = (
                self.lines[i]
                if i < len(self.lines)
                else {"id": self._new_line_id(lines), "orientation": "leftToRight"}
            )
            # PolyDraw may leave more than two vertices: a counting line is first-to-last.
            lines.append(
                {
                    **base,
                    "x1": round(float(lx[0]), 1),
                    "y1": round(float(ly[0]), 1),
                    "x2": round(float(lx[-1]), 1),
                    "y2": round(float(ly[-1]), 1),
                }
            )
        self.lines = lines
        self._refresh_line_select()
        self._draw_arrows()
        self.validate()

    def _new_line_id(self, taken: list[dict] | None = None) -> str:
        used = {ln["id"] for ln in (taken if taken is not None else self.lines)}
        n = 1
        while f"line-{n}" in used:
            n += 1
        return f"line-{n}"

    def _refresh_line_select(self) -> None:
        current = self.line_select.value
        ids = [ln["id"] for ln in self.lines]
        with self._quietly():
            self.line_select.options = ids
            self.line_select.value = current if current in ids else (ids[0] if ids else None)
        self._show_line()

    def _current_index(self) -> int | None:
        for i, ln in enumerate(self.lines):
            if ln["id"] == self.line_select.value:
                return i
        return None

    def _show_line(self) -> None:
        index = self._current_index()
        with self._quietly():
            if index is None:
                return
            ln = self.lines[index]
            self.line_id.value = ln["id"]
            for widget, key in zip(self.line_inputs, ("x1", "y1", "x2", "y2"), strict=True):
                widget.value = float(ln[key])
            self.orientation.value = ln["orientation"]

    def _line_typed(self, *_) -> None:
        if self._syncing:
            return
        index = self._current_index()
        if index is None:
            return
        values = dict(
            zip(
                ("x1", "y1", "x2", "y2"),
                (w.value for w in self.line_inputs),  # as typed: validation names a gap
                strict=True,
            )
        )
        new_id = (self.line_id.value or "").strip() or self.lines[index]["id"]
        self.lines[index] = {
            **self.lines[index],
            **values,
            "id": new_id,
            "orientation": self.orientation.value,
        }
        self._draw_lines()
        self._refresh_line_select_to(new_id)
        self.validate()

    def _refresh_line_select_to(self, line_id: str) -> None:
        with self._quietly():
            self.line_select.options = [ln["id"] for ln in self.lines]
            self.line_select.value = line_id

    def add_line(self) -> None:
        w, h = self.width or 640, self.height or 480
        new = {
            "id": self._new_line_id(),
            "x1": w * 0.25,
            "y1": h / 2,
            "x2": w * 0.75,
            "y2": h / 2,
            "orientation": "leftToRight",
        }
        self.lines.append(new)
        self._draw_lines()
        self._refresh_line_select_to(new["id"])
        self._show_line()
        self.validate()

    def remove_line(self) -> None:
        index = self._current_index()
        if index is None or len(self.lines) <= 1:
            self.show("A calibration needs at least one counting line.", "warning")
            return
        del self.lines[index]
        self._draw_lines()
        self._refresh_line_select()
        self.validate()

    # ------------------------------------------------------------------ checking, preview, save
    def calibration(self) -> Calibration:
        """The edited calibration; :class:`CalibrationError` naming what is wrong."""
        current = (
            self.app.db.get_calibration(self.camera_id) if self.camera_id is not None else None
        )
        extra = {}
        if current is not None:
            extra = {
                "anchor": current.anchor,
                "min_distance": current.min_distance,
                "min_frames": current.min_frames,
            }
        calibration = parse_calibration(
            {
                "roi": list(self._roi_values()) if self.roi_enabled.value else None,
                "lines": [dict(ln) for ln in self.lines],
                "detection_fps": self.fps.value,
                **extra,
            }
        )
        calibration.check_frame(self.width, self.height)
        return calibration

    def validate(self) -> Calibration | None:
        """Check the edited calibration and say what is wrong (or that it is fine)."""
        if self._syncing:
            return None
        try:
            calibration = self.calibration()
        except CalibrationError as error:
            self.show(str(error), "danger")
            return None
        summary = (
            f"Valid: {len(calibration.lines)} line(s), detection at {calibration.detection_fps:g}/s"
            + ("" if self.admin else " (only admins can save)")
        )
        # Placement advice (near an edge, outside the ROI): it may be saved all the same.
        warnings = check_calibration(calibration, (self.width, self.height)) if self.width else []
        if warnings:
            advice = "; ".join(w.message for w in warnings)
            self.show(f"{summary}. Check the placement: {advice}", "warning")
        else:
            self.show(summary, "success")
        return calibration

    def preview(self) -> int | None:
        """Run detection with the UNSAVED ROI on the snapshot; draw boxes; return their number."""
        calibration = self.validate()
        if calibration is None or self.image is None:
            return None
        return self._show_preview(
            calibration, self.app.detector.detect(self.image, calibration.roi)
        )

    async def _preview_clicked(self, event=None) -> None:
        """The button: the model runs in a worker thread, so the server's event loop (other
        sessions, the video streams) does not wait for it."""
        calibration = self.validate()
        if calibration is None or self.image is None:
            return
        camera_id, image = self.camera_id, self.image
        self.preview_button.loading = True
        try:
            detections = await asyncio.to_thread(self.app.detector.detect, image, calibration.roi)
        finally:
            self.preview_button.loading = False
        await self._under_lock(partial(self._show_preview, calibration, detections, camera_id))

    def _show_preview(
        self, calibration: Calibration, detections, camera_id: int | None = None
    ) -> int | None:
        if camera_id is not None and camera_id != self.camera_id:
            return None  # boxes of a camera no longer shown
        boxes = detections.xyxy
        self.detection_source.data = {
            "left": boxes[:, 0].tolist(),
            "right": boxes[:, 2].tolist(),
            "top": boxes[:, 1].tolist(),
            "bottom": boxes[:, 3].tolist(),
            "label": [f"{c:.2f}" for c in detections.confidence.tolist()],
            "lx": boxes[:, 0].tolist(),
            "ly": boxes[:, 1].tolist(),
        }
        where = "in the region of interest" if calibration.roi else "in the frame"
        self.show(f"Preview: {len(detections)} people detected {where} (not saved).", "info")
        return len(detections)

    def save(self) -> bool:
        """Validate, write the database, apply to the running engine. Admins only.

        Call it where the document is held (tests do); the Save button goes through
        :meth:`_save_clicked`.
        """
        camera_id = self._write()
        if camera_id is None:
            return False
        self._apply(camera_id)
        return True

    async def _save_clicked(self, event=None) -> None:
        """The button: validating and writing run in the document, so they see what it
        shows; the engine (which may wait for a stuck camera) is told from a thread."""
        camera_id = await self._under_lock(self._write)
        if camera_id is not None:
            await asyncio.to_thread(self._apply, camera_id)

    def _write(self) -> int | None:
        """Write the form's calibration to the camera it shows; that camera's id, or None."""
        try:
            require_admin(self.app, self.claims, "change a calibration")
        except AuthError as error:
            self.show(str(error), "danger")
            return None
        if self.loading:  # the picked camera's lines are not on screen yet
            self._save_after_load = True
            self.show("Saving once the picked camera's calibration is shown...", "info")
            return None
        camera_id = self.camera_id
        calibration = self.validate()
        if calibration is None or camera_id is None:
            return None
        try:
            self.app.db.set_calibration(camera_id, calibration)
        except (NotFoundError, ValueError) as error:
            self.show(f"Not saved: {error}", "danger")
            return None
        log.info("calibration of camera %s saved by %s", camera_id, self.claims.username)
        return camera_id

    def _apply(self, camera_id: int) -> None:
        if self.app.engine is not None:
            self.app.engine.reload_camera(camera_id)
        self.show("Saved and applied to the running camera.", "success")

    def show(self, text: str, kind: str) -> None:
        self.status.object = markdown_text(text)  # line ids in messages are typed by users
        self.status.alert_type = kind
        self.status.visible = True

    # ------------------------------------------------------------------ layout
    def __panel__(self) -> pn.viewable.Viewable:
        if not self.camera_select.options:
            return pn.pane.Alert("No cameras yet: an admin can add one on the Admin page.")
        help_text = pn.pane.Markdown(
            "Drag the **magenta line** to move it (line tool), double-click it to move its ends "
            "(vertex tool), drag the **cyan box** to set the region of interest (box tool). "
            "The **yellow arrow** points to the side people walk to when they *enter*.",
            sizing_mode="stretch_width",
        )
        controls = pn.Column(
            pn.Row(self.camera_select, self.snapshot_button),
            self.roi_enabled,
            pn.Row(*self.roi_inputs),
            pn.Row(self.line_select, self.line_id),
            pn.Row(*self.line_inputs),
            self.orientation,
            pn.Row(self.add_line_button, self.remove_line_button),
            self.fps,
            pn.Row(self.preview_button, self.save_button),
            self.status,
            width=420,
        )
        return pn.Column(help_text, pn.Row(self.figure_pane, controls), sizing_mode="stretch_width")


def calibration_page(app=None, claims: Claims | None = None) -> pn.Column:
    from ..app import get_app

    app = app or get_app()
    claims = claims or session_claims(app)
    body = CalibrationEditor(app, claims) if claims is not None else None
    return page("Calibration", "/calibrate", body, claims, app)
