"""Zone analytics: people inside each zone over time, and how long they stayed (dwell:
median, 90th percentile, histogram; for a queue, the waiting time).

Zones belong to a camera, so the charts follow the analytics page's camera; with all of a
store's cameras the table lists every zone and the charts ask for one camera.
"""

from __future__ import annotations

from datetime import datetime

import holoviews as hv
import pandas as pd
import panel as pn

from ..display import html_text
from ..storage.zones import DWELL_BIN_EDGES_S, dwell_stats, zone_occupancy
from .layout import periodic

__all__ = ["ZoneCharts", "zone_table", "dwell_bin_labels"]

#: Height of each zone chart (pixels).
ZONE_CHART_HEIGHT = 280
#: How often the charts look for new zone events (milliseconds).
ZONE_REFRESH_MS = 3000
#: Colours of the zones' curves, in zone order (cycled).
ZONE_COLOURS = ("#8250df", "#bc4c00", "#1a7f37", "#0b6bcb", "#cf222e", "#6e7781")


def dwell_bin_labels() -> list[str]:
    """Labels of the dwell histogram's bins: ``0-5 s`` ... ``30 min+``."""

    def short(seconds: float) -> str:
        return f"{seconds / 60:g} min" if seconds >= 60 else f"{seconds:g} s"

    edges = DWELL_BIN_EDGES_S
    return [
        f"{short(lo)}+" if hi == float("inf") else f"{short(lo)}-{short(hi)}"
        for lo, hi in zip(edges[:-1], edges[1:], strict=True)
    ]


def zone_table(db, cameras: list, start: datetime, end: datetime) -> pd.DataFrame:
    """One row per zone of ``cameras``: its camera, whether it is a queue, the stays that
    ended in [start, end) and their median and 90th percentile (seconds)."""
    rows = []
    for camera in cameras:
        calibration = db.get_calibration(camera.id)
        if calibration is None or not calibration.zones:
            continue
        dwells = db.zone_dwells(camera.id, start, end)
        for zone in calibration.zones:
            stats = dwell_stats(dwells.get(zone.id, []))
            rows.append(
                {
                    "camera": camera.name,
                    "zone": zone.id,
                    "queue": zone.queue,
                    "stays": stats.stays,
                    "median_s": round(stats.median_s, 1),
                    "p90_s": round(stats.p90_s, 1),
                }
            )
    columns = ["camera", "zone", "queue", "stays", "median_s", "p90_s"]
    return pd.DataFrame(rows, columns=columns)


class ZoneCharts(pn.viewable.Viewer):
    """The zone table, occupancy per zone over time and the dwell histogram of one camera."""

    def __init__(self, app, **params) -> None:
        super().__init__(**params)
        self.app = app
        self.table = pn.pane.HTML(sizing_mode="stretch_width")
        # Not linked to the page's other charts: they share dimension names, not ranges.
        self.occupancy = pn.pane.HoloViews(
            sizing_mode="stretch_width", height=ZONE_CHART_HEIGHT, linked_axes=False
        )
        self.dwell = pn.pane.HoloViews(
            sizing_mode="stretch_width", height=ZONE_CHART_HEIGHT, linked_axes=False
        )
        self.data = pd.DataFrame()
        self.tz = "UTC"
        self._shown: tuple | None = None  # the arguments of the last show()
        self._newest_id = 0
        periodic(self.refresh, ZONE_REFRESH_MS)

    def show(
        self, cameras: list, camera_id: int | None, start: datetime, end: datetime, tz: str
    ) -> None:
        """Redraw for ``cameras`` (the table) and ``camera_id`` (the charts; None: none),
        times shown in the store's time zone ``tz``."""
        db, self.tz = self.app.db, tz
        self._shown = (cameras, camera_id, start, end, tz)
        self._newest_id = db.latest_zone_event_id([c.id for c in cameras])
        self.data = zone_table(db, cameras, start, end)
        self.table.object = self._table_html(camera_id is None)
        calibration = db.get_calibration(camera_id) if camera_id else None
        zones = calibration.zones if calibration is not None else ()
        self.occupancy.object = self._occupancy_chart(camera_id, zones, start, end)
        self.dwell.object = self._dwell_chart(camera_id, zones, start, end)
        visible = bool(zones)
        self.occupancy.visible = self.dwell.visible = visible

    def refresh(self) -> bool:
        """Redraw if zone events arrived since the last look (the periodic callback)."""
        if self._shown is None:
            return False
        cameras = self._shown[0]
        if self.app.db.latest_zone_event_id([c.id for c in cameras]) <= self._newest_id:
            return False
        self.show(*self._shown)
        return True

    def _table_html(self, all_cameras: bool) -> str:
        if self.data.empty:
            return '<p class="zv-zones-none">No zones: draw them on the calibration page.</p>'
        head = "".join(
            f"<th>{h}</th>"
            for h in ("Camera", "Zone", "Stays", "Median time inside", "90% stayed less than")
        )
        body = "".join(
            f'<tr data-zone="{html_text(r.zone)}"><td>{html_text(r.camera)}</td>'
            f"<td>{html_text(r.zone)}{' (queue: waiting time)' if r.queue else ''}</td>"
            f'<td class="zv-stays">{r.stays}</td><td class="zv-median">{r.median_s:g} s</td>'
            f'<td class="zv-p90">{r.p90_s:g} s</td></tr>'
            for r in self.data.itertuples()
        )
        note = "<p>Choose a camera to see its zones' charts.</p>" if all_cameras else ""
        return f'<h3>Zones</h3><table class="zv-zones"><tr>{head}</tr>{body}</table>{note}'

    def _occupancy_chart(self, camera_id, zones, start: datetime, end: datetime):
        curves = []
        for i, zone in enumerate(zones):
            series = zone_occupancy(self.app.db, camera_id, zone.id, start, end)
            if len(series) > 1 and series.iloc[0] == 0:
                series = series.iloc[1:]  # nobody inside before: start at the first event
            times = pd.DatetimeIndex(series.index).tz_convert(self.tz).tz_localize(None)
            curves.append(
                hv.Curve((times, series.to_numpy()), "time", "inside", label=zone.id).opts(
                    interpolation="steps-post", color=ZONE_COLOURS[i % len(ZONE_COLOURS)]
                )
            )
        if not curves:
            return hv.Curve([], "time", "inside")
        return hv.Overlay(curves).opts(
            title=f"People inside each zone ({self.tz} time)",
            responsive=True,
            height=ZONE_CHART_HEIGHT,
            legend_position="top_left",
        )

    def _dwell_chart(self, camera_id, zones, start: datetime, end: datetime):
        labels = dwell_bin_labels()
        dwells = self.app.db.zone_dwells(camera_id, start, end) if zones else {}
        rows = [
            (label, zone.id, count)
            for zone in zones
            for label, count in zip(
                labels, dwell_stats(dwells.get(zone.id, [])).histogram, strict=True
            )
        ]
        frame = pd.DataFrame(rows, columns=["time inside", "zone", "stays"])
        return hv.Bars(frame, ["time inside", "zone"], "stays").opts(
            title="Time inside (stays per bin; for a queue, the wait)",
            responsive=True,
            height=ZONE_CHART_HEIGHT,
            multi_level=False,
            xrotation=30,
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            self.table,
            pn.Row(self.occupancy, self.dwell, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )
