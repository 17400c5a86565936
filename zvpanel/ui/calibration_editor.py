"""Calibration page: draw the ROI, counting lines and zones on a fresh snapshot, check, save.

The editing itself is :class:`~zvpanel.ui.calibration_model.CalibrationModel` (validated
on every change) drawn by :class:`~zvpanel.ui.calibration_model.CalibrationDrawing`; the
tables and inputs beside it are widgets of the same parameters. This module adds what a
served page needs: the camera to edit, its snapshot (taken once the page has loaded),
the preview, and Save, which writes the database and applies it to the running camera.

Threads: served with ``--num-threads``, a camera pick is read (snapshot, saved
calibration) in a worker thread and shown in one step in the document; a result for a
camera no longer picked is dropped, edits of the picture being replaced are dropped, and
a Save pressed while a picked camera loads waits for it. Save validates in the document,
so it writes what the page shows, onto the camera it was drawn for.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from functools import partial
from typing import TypeVar

import numpy as np
import pandas as pd
import panel as pn

from ..calibration import Calibration
from ..display import markdown_text
from ..errors import AuthError, NotFoundError, SourceError
from ..web.access import visible_cameras
from ..web.auth import Claims
from .calibration_model import CalibrationDrawing, CalibrationModel
from .layout import view_page
from .session import is_admin, require_admin

__all__ = ["CalibrationEditor", "calibration_page", "take_snapshot"]

log = logging.getLogger(__name__)
T = TypeVar("T")

ORIENTATIONS = ["leftToRight", "rightToLeft"]
HELP = (
    "Drag a **magenta line** to move it; with the vertex tool, press and hold a line or zone, "
    "then drag its ends or corners. Drag the **cyan box** for the region of interest "
    "(shift-drag draws a new one). To draw a line or an **orange zone**, pick its draw tool, "
    "press and hold to start, click to add corners, press and hold to finish. Click a shape "
    "and press Backspace to delete it. The **yellow arrow** points to the side people walk "
    "to when they *enter*."
)


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


class CalibrationEditor(pn.viewable.Viewer):
    """Edit one camera's calibration; :meth:`save` applies it (admins only)."""

    def __init__(self, app, claims: Claims | None, camera_id: int | None = None) -> None:
        super().__init__()
        self.app = app
        self.claims = claims
        self.admin = is_admin(app, claims)
        #: The camera whose snapshot and calibration the model holds (what Save writes to).
        self.loaded_camera_id: int | None = None
        self._save_after_load = False
        self.model = CalibrationModel()
        self.drawing = CalibrationDrawing(model=self.model, accepts=lambda: not self.loading)
        cameras = visible_cameras(app.db, claims.username if claims else None)
        self.camera_select = pn.widgets.Select(
            label="Camera", options={f"{c.name} (#{c.id})": c.id for c in cameras}, width=260
        )
        if camera_id is not None:
            self.camera_select.value = camera_id
        self._build_widgets()
        self.model.param.watch(lambda *_: self._report(), ["calibration", "problem", "warnings"])
        self.camera_select.param.watch(lambda e: self.load_camera(), "value")
        if cameras:  # the snapshot can take seconds: after the page is up, in a worker
            pn.state.onload(self.load_camera, threaded=True)

    def _build_widgets(self) -> None:
        model = self.model
        self.snapshot_button = pn.widgets.Button(label="New snapshot", color="default")
        self.snapshot_button.on_click(lambda e: self.refresh_snapshot())
        self.lines_table = pn.widgets.Tabulator.from_param(
            model.param.lines,
            show_index=False,
            editors={"orientation": {"type": "list", "values": ORIENTATIONS}},
            width=420,
        )
        self.zones_table = pn.widgets.Tabulator.from_param(
            model.param.zones,
            show_index=False,
            hidden_columns=["points"],
            editors={"queue": {"type": "tickCross"}},
            width=420,
        )
        self.use_roi = pn.widgets.Checkbox.from_param(model.param.use_roi)
        self.roi_inputs = [
            pn.widgets.FloatInput.from_param(model.param[name], step=1, width=90)
            for name in ("roi_x1", "roi_y1", "roi_x2", "roi_y2")
        ]
        self.fps = pn.widgets.FloatSlider.from_param(model.param.detection_fps, width=260)
        self.preview_button = pn.widgets.Button(label="Preview detection", color="primary")
        self.preview_button.on_click(self._preview_clicked)
        self.save_button = pn.widgets.Button(label="Save", color="success", disabled=True)
        self.save_button.on_click(self._save_clicked)
        # Messages name what users typed: shown as text (markdown_text), no TeX either.
        self.status = pn.pane.Alert(
            "Taking a snapshot...",
            alert_type="info",
            sizing_mode="stretch_width",
            disable_math=True,
        )

    # ------------------------------------------------------------------ threads
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
        """The camera the model shows: Save writes to it (the Select may be ahead)."""
        return self.loaded_camera_id

    @property
    def loading(self) -> bool:
        return self.camera_select.value != self.loaded_camera_id

    def load_camera(self) -> None:
        """Snapshot the picked camera and show its saved calibration (or a default)."""
        camera_id = self.camera_select.value
        self.save_button.disabled = True  # a Panel widget: safe from any thread
        pn.state.execute(partial(self._show_camera, *self._read_camera(camera_id)))

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
        self.loaded_camera_id = camera_id
        self.model.load(image, calibration)  # no picture: a blank one, not another camera's
        self._report()
        if error:
            self.show(error, "danger")
        self.save_button.disabled = not self.admin
        if self._save_after_load:
            self._save_after_load = False
            pn.state.execute(self._save_clicked)

    def refresh_snapshot(self) -> None:
        """A new snapshot of the shown camera (its calibration stays as edited)."""
        camera_id = self.loaded_camera_id
        image, error = self._snapshot(camera_id)
        pn.state.execute(partial(self._show_snapshot, camera_id, image, error))

    def _show_snapshot(self, camera_id: int, image: np.ndarray | None, error: str | None) -> None:
        if camera_id != self.loaded_camera_id or self.loading:
            return  # another camera is shown or coming
        if image is None:
            self.show(error, "danger")
            return
        self.model.image = image

    # ------------------------------------------------------------------ checking, preview, save
    def _report(self) -> None:
        """Say what is wrong with the edited calibration, or that it is fine (live)."""
        if self.loading:
            return  # the model holds a camera being replaced
        model = self.model
        if model.calibration is None:
            self.show(model.problem, "danger")
            return
        calibration = model.calibration
        zones = f", {len(calibration.zones)} zone(s)" if calibration.zones else ""
        summary = (
            f"Valid: {len(calibration.lines)} line(s){zones}, detection at "
            f"{calibration.detection_fps:g}/s" + ("" if self.admin else " (only admins can save)")
        )
        # Placement advice (near an edge, outside the ROI): it may be saved all the same.
        if model.warnings:
            advice = "; ".join(w.message for w in model.warnings)
            self.show(f"{summary}. Check the placement: {advice}", "warning")
        else:
            self.show(summary, "success")

    def preview(self) -> int | None:
        """Run detection with the UNSAVED ROI on the snapshot; draw boxes; return their number.

        Any thread: the model and the status are parameters and Panel panes."""
        calibration, camera_id, image = self.model.calibration, self.camera_id, self.model.image
        if calibration is None:
            return None
        detections = self.app.detector.detect(image, calibration.roi)
        if camera_id != self.camera_id:
            return None  # boxes of a camera no longer shown
        boxes = pd.DataFrame(detections.xyxy, columns=["x0", "y0", "x1", "y1"])
        self.model.preview = boxes.assign(confidence=detections.confidence)
        where = "in the region of interest" if calibration.roi else "in the frame"
        self.show(f"Preview: {len(detections)} people detected {where} (not saved).", "info")
        return len(detections)

    async def _preview_clicked(self, event=None) -> None:
        """The button: the model runs in a worker thread, so the server's event loop (other
        sessions, the video streams) does not wait for it."""
        self.preview_button.loading = True
        try:
            await asyncio.to_thread(self.preview)
        finally:
            self.preview_button.loading = False

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
        """Write the model's calibration to the camera it shows; that camera's id, or None."""
        try:
            require_admin(self.app, self.claims, "change a calibration")
        except AuthError as error:
            self.show(str(error), "danger")
            return None
        if self.loading:  # the picked camera's lines are not on screen yet
            self._save_after_load = True
            self.show("Saving once the picked camera's calibration is shown...", "info")
            return None
        camera_id, calibration = self.camera_id, self.model.calibration
        if calibration is None or camera_id is None:
            self._report()
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

    # ------------------------------------------------------------------ layout
    def __panel__(self) -> pn.viewable.Viewable:
        if not self.camera_select.options:
            return pn.pane.Alert("No cameras yet: an admin can add one on the Admin page.")
        controls = pn.Column(
            pn.Row(self.camera_select, self.snapshot_button),
            "**Counting lines**",
            self.lines_table,
            "**Zones**",
            self.zones_table,
            self.use_roi,
            pn.Row(*self.roi_inputs),
            self.fps,
            pn.Row(self.preview_button, self.save_button),
            self.status,
            width=440,
        )
        return pn.Column(
            pn.pane.Markdown(HELP, sizing_mode="stretch_width"),
            pn.Row(self.drawing, controls),
            sizing_mode="stretch_width",
        )


def calibration_page(app=None, claims: Claims | None = None) -> pn.Column:
    return view_page("Calibration", "/calibrate", CalibrationEditor, app, claims)
