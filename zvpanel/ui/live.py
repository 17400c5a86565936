"""Live page: annotated video of one or several cameras, their status and counts."""

from __future__ import annotations

import panel as pn
import param

from ..display import html_text, markdown_text
from ..engine.result import CameraStatus
from ..web.access import visible_cameras, visible_stores
from ..web.auth import Claims
from .layout import periodic, view_page
from .streaming_image import StreamingImage

__all__ = ["CameraTile", "LiveView", "live_page", "STATUS_REFRESH_MS", "MAX_TILES"]

#: How often status and counts are refreshed in the browser (milliseconds).
STATUS_REFRESH_MS = 1000
#: Cameras shown at once in the grid (each one is a live stream to the browser).
MAX_TILES = 4
#: Widest a tile gets (pixels): a single camera should not fill a wide screen.
TILE_MAX_WIDTH = 900

_STATE_COLOURS = {
    "online": "#1a7f37",
    "starting": "#6e7781",
    "reconnecting": "#bf8700",
    "offline": "#cf222e",
    "stopped": "#6e7781",
}

_TILE_CSS = """
.zv-status { font-family: system-ui, sans-serif; font-size: 0.95em; line-height: 1.5; }
.zv-badge { color: #fff; padding: 1px 8px; border-radius: 10px; font-weight: 600; }
.zv-warn { color: #9a6700; font-weight: 600; }
.zv-counts b { font-size: 1.2em; }
"""


def status_html(
    status: CameraStatus | None,
    counts: dict[str, dict[str, int]] | None,
    zones: dict[str, dict] | None = None,
) -> str:
    """The status block under a camera's video (pure, so tests can read it)."""
    if status is None:
        return (
            '<div class="zv-status"><span class="zv-badge" style="background:#6e7781" '
            'data-state="none">not running</span> the engine has not started this camera '
            "(disabled or not calibrated)</div>"
        )
    colour = _STATE_COLOURS.get(status.state, "#6e7781")
    parts = [
        f'<span class="zv-badge" style="background:{colour}" data-state="{status.state}">'
        f"{status.state}</span>"
    ]
    if status.last_error:
        parts.append(f' <span class="zv-reason">{html_text(status.last_error)}</span>')
    parts.append(
        f'<br>Detection rate: <span class="zv-fps">{status.actual_fps:.1f}</span> of '
        f"{status.target_fps:.1f} fps target · {status.processing_ms:.0f} ms per frame"
        f' · <span class="zv-gated">{100 * status.gated_share:.0f}%</span> skipped (no motion)'
    )
    if status.hardware_limited:
        parts.append(
            ' <span class="zv-warn" data-hardware-limited="1">hardware limited: '
            "the machine cannot keep the target rate</span>"
        )
    counts = counts or {}
    entries = sum(c["entries"] for c in counts.values())
    exits = sum(c["exits"] for c in counts.values())
    per_line = ", ".join(
        f"{html_text(line)}: {c['entries']} in / {c['exits']} out" for line, c in counts.items()
    )
    parts.append(
        f'<br><span class="zv-counts">Entries <b class="zv-entries">{entries}</b> · '
        f'Exits <b class="zv-exits">{exits}</b></span>'
    )
    if len(counts) > 1:
        parts.append(f"<br><small>{per_line}</small>")
    parts.extend(_zone_html(zone_id, zone) for zone_id, zone in (zones or {}).items())
    return f'<div class="zv-status">{"".join(parts)}</div>'


def _zone_html(zone_id: str, zone: dict) -> str:
    """One zone's line: people inside now; for a queue its length and longest wait."""
    name = html_text(zone_id)
    inside = int(zone["occupancy"])
    if zone["queue"]:
        return (
            f'<br><span class="zv-zone" data-zone="{name}">Queue {name}: '
            f'<b class="zv-occupancy">{inside}</b> waiting, longest '
            f"{float(zone['longest_inside_s']):.0f} s</span>"
        )
    return (
        f'<br><span class="zv-zone" data-zone="{name}">Zone {name}: '
        f'<b class="zv-occupancy">{inside}</b> inside</span>'
    )


class CameraTile(pn.viewable.Viewer):
    """One camera: its video, status, detection rate and running counts."""

    camera_id = param.Integer(doc="Camera shown.")
    title = param.String(doc="Heading of the tile.")

    def __init__(self, app, **params) -> None:
        super().__init__(**params)
        self.app = app
        self.image = StreamingImage(camera_id=self.camera_id, sizing_mode="stretch_width")
        self.status = pn.pane.HTML(stylesheets=[_TILE_CSS], sizing_mode="stretch_width")
        self.refresh()

    def refresh(self) -> None:
        status = self.app.hub.status(self.camera_id)
        latest = self.app.hub.latest(self.camera_id)
        counts = latest.counts if latest is not None else None
        zones = latest.zones if latest is not None else None
        if (
            counts is None
            and self.app.engine is not None
            and self.app.engine.worker(self.camera_id)
        ):
            counts = self.app.engine.counts(self.camera_id)
        self.status.object = status_html(status, counts, zones)

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.pane.Markdown(f"### {markdown_text(self.title)}", margin=(0, 5), disable_math=True),
            self.image,
            self.status,
            sizing_mode="stretch_width",
            max_width=TILE_MAX_WIDTH,
            styles={"border": "1px solid #d0d7de", "border-radius": "6px"},
            css_classes=["zv-tile"],
        )


class LiveView(pn.viewable.Viewer):
    """A grid of camera tiles; the user picks which cameras (up to :data:`MAX_TILES`)."""

    columns = param.Integer(default=2, bounds=(1, 4), doc="Tiles per row.")

    def __init__(self, app, claims: Claims | None = None, **params) -> None:
        super().__init__(**params)
        self.app = app
        username = claims.username if claims else None
        cameras = visible_cameras(app.db, username)
        stores = {s.id: s.name for s in visible_stores(app.db, username)}
        self.names = {c.id: f"{stores.get(c.store_id, '?')} / {c.name}" for c in cameras}
        # Choices.js shows option labels as HTML: the names go in escaped.
        self.options = {html_text(name): cid for cid, name in self.names.items()}
        self.picker = pn.widgets.MultiChoice(
            label="Cameras",
            options=self.options,
            value=list(self.options.values())[:MAX_TILES],
            max_items=MAX_TILES,
            sizing_mode="stretch_width",
        )
        self.columns_input = pn.widgets.IntSlider.from_param(
            self.param.columns, label="Tiles per row", width=200
        )
        self.grid = pn.GridBox(ncols=self.columns, sizing_mode="stretch_width")
        self.tiles: list[CameraTile] = []
        self.picker.param.watch(self._rebuild, "value")
        self.param.watch(self._layout, "columns")
        self._rebuild()
        periodic(self.refresh, STATUS_REFRESH_MS)

    def _rebuild(self, *_) -> None:
        """Tiles for the picked cameras; a camera still picked keeps its tile (and stream)."""
        kept = {tile.camera_id: tile for tile in self.tiles}
        self.tiles = [
            kept.get(cid) or CameraTile(self.app, camera_id=cid, title=self.names[cid])
            for cid in self.picker.value
            if cid in self.names  # the value comes from the browser: only cameras offered
        ]
        self._layout()
        self.grid.objects = self.tiles

    def _layout(self, *_) -> None:
        self.grid.ncols = min(self.columns, max(1, len(self.tiles)))

    def refresh(self) -> None:
        for tile in self.tiles:
            tile.refresh()

    def __panel__(self) -> pn.viewable.Viewable:
        if not self.options:
            return pn.pane.Alert("No cameras yet: an admin can add one on the Admin page.")
        return pn.Column(
            pn.Row(self.picker, self.columns_input, sizing_mode="stretch_width"),
            self.grid,
            sizing_mode="stretch_width",
        )


def live_page(app=None, claims: Claims | None = None) -> pn.Column:
    """The whole live page for the current session (or the given claims, in tests)."""
    return view_page("Live", "/live", LiveView, app, claims)
