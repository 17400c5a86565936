"""Analytics page: entries/exits over time, occupancy, per-camera breakdown, CSV downloads,
and a heat map of where people walk.

Times are shown in the store's time zone; hours and days are that zone's hours and days.
The database does the counting (:mod:`zvpanel.storage.queries`: bins, per-camera totals,
rolled-up old hours included); only the raw-events download reads single events. The
charts re-query when new events arrive (checked every :data:`REFRESH_MS`).

Bins in which the cameras were down, or only partly watching
(:mod:`zvpanel.storage.coverage`), are shaded and labelled, never shown as a plain zero;
the binned CSV has their ``coverage`` share (empty where it is unknown). The heat map
adds up the chosen camera's hourly heat grids over the chosen dates, over its snapshot.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import holoviews as hv
import numpy as np
import pandas as pd
import panel as pn
import param

from ..display import csv_frame
from ..plots import frame_image, heatmap_image, in_image_space
from ..storage.activity import HEAT_COLUMNS, HEAT_ROWS
from ..storage.coverage import (
    COVERED_SHARE,
    camera_coverage,
    coverage_share,
    heat_grid,
    latest_status_change,
)
from ..storage.queries import (
    EventFilter,
    binned_counts,
    events_frame,
    latest_event_id,
    occupancy,
    per_camera,
)
from ..tracks import Heatmap
from ..web.access import visible_stores
from ..web.auth import Claims
from .layout import periodic, view_page
from .zones import ZoneCharts

__all__ = ["AnalyticsView", "analytics_page", "REFRESH_MS", "DEFAULT_DAYS"]

hv.extension("bokeh", logo=False)

#: How often the page looks for new events (milliseconds).
REFRESH_MS = 3000
#: Days shown when the page opens (ending today, in the store's time zone).
DEFAULT_DAYS = 7
ALL_CAMERAS = 0
ENTRY_COLOUR, EXIT_COLOUR = "#1a7f37", "#cf222e"
CHART_HEIGHT = 300
#: Shading of bins without coverage (the cameras were down) and with partial coverage.
DOWN_COLOUR, PARTIAL_COLOUR = "#57606a", "#d4a72c"
#: Frame size assumed for a heat map when the camera gives no snapshot (16:9).
NO_SNAPSHOT_SIZE = (1280, 720)
#: Length of one bin of each bin size; the two bars of a bin fill 40 % of it.
BIN_WIDTHS = {"h": pd.Timedelta(hours=1), "D": pd.Timedelta(days=1)}


def _local_naive(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """Local wall-clock times without the zone (Bokeh would convert aware times to UTC)."""
    return index.tz_localize(None) if index.tz is not None else index


def _timeline_range(times: pd.DatetimeIndex, width: pd.Timedelta) -> tuple:
    """The x range of the timeline: every bin whole, and one bin's width of margin each side.

    Left to HoloViews the range hugs the bars, which fill only part of their bin: one bin
    became an axis a few minutes wide with its bars cut off at the edges.
    """
    return times.min() - width, times.max() + 2 * width


def _with_coverage(counts: pd.DataFrame, coverage: pd.Series) -> pd.DataFrame:
    """The counts with a ``coverage`` column. Every bin whose coverage is known is there:
    a watched bin without events is a true zero, an unwatched one is shaded."""
    index = counts.index.union(coverage.dropna().index)
    out = counts.reindex(index, fill_value=0)
    out["coverage"] = coverage.reindex(index).round(3)
    out.index.name = "timestamp"
    return out


def _shading(binned: pd.DataFrame, width: pd.Timedelta, top: float) -> hv.Overlay | None:
    """Full-height bands behind the bars of bins the cameras did not watch, or not all of."""
    times, share = _local_naive(binned.index), binned["coverage"]
    layers = []
    for label, colour, which in (
        ("camera down", DOWN_COLOUR, share == 0),
        ("partly covered", PARTIAL_COLOUR, (share > 0) & (share < COVERED_SHARE)),
    ):
        bands = [(t, 0, t + width, top) for t, w in zip(times, which.to_numpy(), strict=True) if w]
        if bands:
            layers.append(
                hv.Rectangles(bands, label=label).opts(color=colour, alpha=0.3, line_alpha=0)
            )
    return hv.Overlay(layers) if layers else None


@dataclass(frozen=True)
class ChartData:
    """What the charts show, read in one go: counts per bin and per camera, occupancy,
    and the newest event id (to notice new events)."""

    counts: pd.DataFrame  # entries, exits and coverage per bin
    cameras: pd.DataFrame
    occupancy: pd.DataFrame
    newest_id: int = 0
    newest_change: int = 0  # the newest camera status change, to notice a camera going down
    heat: np.ndarray = field(default_factory=lambda: np.zeros((HEAT_ROWS, HEAT_COLUMNS)))

    @classmethod
    def empty(cls) -> ChartData:
        return cls(
            pd.DataFrame(columns=["entries", "exits", "coverage"]),
            pd.DataFrame(columns=["camera_id", "camera_name", "entries", "exits"]),
            pd.DataFrame(columns=["occupancy", "date"]),
        )


class AnalyticsView(pn.viewable.Viewer):
    """Charts and downloads for a store (all cameras) or one camera, over a date range."""

    bin = param.Selector(default="h", objects={"By hour": "h", "By day": "D"}, doc="Bin size.")

    def __init__(self, app, claims: Claims | None = None, **params) -> None:
        super().__init__(**params)
        self.app = app
        stores = visible_stores(app.db, claims.username if claims else None)
        self.store_select = pn.widgets.Select(
            label="Store", options={s.name: s.id for s in stores}, width=220
        )
        self.camera_select = pn.widgets.Select(label="Camera", width=220)
        self.bin_select = pn.widgets.RadioButtonGroup.from_param(self.param.bin, label="Bins")
        self.date_range = pn.widgets.DateRangePicker(label="Dates (store's time zone)", width=260)
        self.events_download = pn.widgets.FileDownload(
            callback=self._events_csv,
            filename="events.csv",
            label="Download raw events (CSV)",
            color="primary",
            width=260,
        )
        self.binned_download = pn.widgets.FileDownload(
            callback=self._binned_csv,
            filename="counts.csv",
            label="Download binned counts (CSV)",
            width=260,
        )
        self.summary = pn.pane.HTML(sizing_mode="stretch_width")
        self.timeline = pn.pane.HoloViews(sizing_mode="stretch_width", height=CHART_HEIGHT)
        self.occupancy_chart = pn.pane.HoloViews(sizing_mode="stretch_width", height=CHART_HEIGHT)
        self.camera_chart = pn.pane.HoloViews(sizing_mode="stretch_width", height=CHART_HEIGHT)
        self.heatmap = pn.pane.HoloViews()
        self.heat_caption = pn.pane.HTML()
        self.zones = ZoneCharts(app)
        self._snapshots: dict[int, np.ndarray | None] = {}  # camera id -> its frame, once
        self.data = ChartData.empty()
        self.last_event_id = self.last_change_id = 0
        # True while a store change resets the filters: one update at the end, not three.
        self._resetting_filters = False
        self.store_select.param.watch(lambda e: self._store_changed(), "value")
        for widget in (self.camera_select, self.date_range):
            widget.param.watch(lambda e: self._filter_changed(), "value")
        self.param.watch(lambda e: self.update(), "bin")
        if stores:
            self._store_changed()
        periodic(self.refresh, REFRESH_MS)

    # ------------------------------------------------------------------ filters
    @property
    def store(self):
        return self.app.db.get_store(self.store_select.value)

    def _store_changed(self) -> None:
        store = self.store
        cameras = self.app.db.list_cameras(store.id, include_deleted=True)
        options = {"All cameras": ALL_CAMERAS}
        options.update({f"{c.name}{' (deleted)' if c.archived else ''}": c.id for c in cameras})
        today = datetime.now(store.tz).date()
        self._resetting_filters = True
        try:
            self.camera_select.options = options
            self.camera_select.value = ALL_CAMERAS
            self.date_range.value = (today - timedelta(days=DEFAULT_DAYS - 1), today)
        finally:
            self._resetting_filters = False
        self.update()

    def _filter_changed(self) -> None:
        if not self._resetting_filters:
            self.update()

    def utc_window(self) -> tuple[datetime, datetime]:
        """The selected local dates as a UTC [start, end) window."""
        tz = ZoneInfo(self.store.timezone)
        first, last = self.date_range.value or (date.today(), date.today())
        start = datetime.combine(first, time.min, tz)
        end = datetime.combine(last + timedelta(days=1), time.min, tz)
        return start, end

    def event_filter(self) -> EventFilter:
        start, end = self.utc_window()
        camera = self.camera_select.value or None
        return EventFilter(self.store_select.value, camera, start, end)

    def query(self) -> ChartData:
        """Everything the charts show, counted by the database."""
        db, where, tz = self.app.db, self.event_filter(), self.store.timezone
        flush = self.app.settings.activity_flush_seconds
        coverage = coverage_share(camera_coverage(db, self.bin, tz, where, None, flush))
        heat = heat_grid(db, where.camera_id, where.start, where.end) if where.camera_id else None
        return ChartData(
            counts=_with_coverage(binned_counts(db, self.bin, tz, where), coverage),
            cameras=per_camera(db, where),
            occupancy=occupancy(db, tz, where),
            newest_id=latest_event_id(db, where),
            newest_change=latest_status_change(db, where),
            heat=ChartData.empty().heat if heat is None else heat,
        )

    # ------------------------------------------------------------------ data
    def update(self) -> None:
        """Re-read the counts and redraw everything."""
        if self.store_select.value is None:
            return
        self.data = self.query()
        self.last_event_id = max(self.last_event_id, self.data.newest_id)
        self.last_change_id = max(self.last_change_id, self.data.newest_change)
        self._draw()

    def refresh(self) -> bool:
        """Redraw if events arrived, or a camera went down or came back, since the last look
        (the periodic callback)."""
        if self.store_select.value is None:
            return False
        db, where = self.app.db, self.event_filter()
        if (
            latest_event_id(db, where) <= self.last_event_id
            and latest_status_change(db, where) <= self.last_change_id
        ):
            return False
        self.update()
        return True

    def binned(self) -> pd.DataFrame:
        return self.data.counts

    # ------------------------------------------------------------------ charts
    def _draw(self) -> None:
        tz = self.store.timezone
        counts = self.data.counts
        entries, exits = int(counts["entries"].sum()), int(counts["exits"].sum())
        self.summary.object = (
            f'<div style="font-size:1.1em">Entries <b id="zv-total-entries">{entries}</b> · '
            f'Exits <b id="zv-total-exits">{exits}</b> · events shown in {tz} time'
            f"{self._gaps_note()}</div>"
        )
        self.timeline.object = self._timeline_chart()
        self.occupancy_chart.object = self._occupancy_chart()
        self.camera_chart.object = self._camera_chart()
        self.heatmap.object = self._heat_chart()
        where = self.event_filter()
        cameras = self.app.db.list_cameras(self.store.id, include_deleted=True)
        shown = [c for c in cameras if where.camera_id in (None, c.id)]
        self.zones.show(shown, where.camera_id, where.start, where.end, tz)

    def _gaps_note(self) -> str:
        gaps = int((self.data.counts["coverage"] < COVERED_SHARE).sum())
        if not gaps:
            return ""
        label = "hour" if self.bin == "h" else "day"
        return (
            f' · <span id="zv-coverage-gaps" style="color:{DOWN_COLOUR}">{gaps} {label}(s) '
            "with a camera down or partly covered (shaded)</span>"
        )

    def _timeline_chart(self):
        label = "hour" if self.bin == "h" else "day"
        if self.data.counts.empty:
            return hv.Curve([], "time", "people").opts(
                title=f"Entries and exits per {label}: no events"
            )
        binned = self.binned()
        times = _local_naive(binned.index)
        width = BIN_WIDTHS[self.bin]
        offset = width * 0.2  # width of one bar: entries, then exits beside them
        entry_bars = hv.Rectangles(
            [(t, 0, t + offset, v) for t, v in zip(times, binned["entries"], strict=True)],
            label="entries",
        ).opts(color=ENTRY_COLOUR, line_alpha=0)
        exit_bars = hv.Rectangles(
            [
                (t + offset, 0, t + 2 * offset, v)
                for t, v in zip(times, binned["exits"], strict=True)
            ],
            label="exits",
        ).opts(color=EXIT_COLOUR, line_alpha=0)
        top = max(1, int(binned[["entries", "exits"]].to_numpy().max()))
        shading = _shading(binned, width, top)
        bars = entry_bars * exit_bars if shading is None else shading * entry_bars * exit_bars
        return bars.opts(
            title=f"Entries and exits per {label} ({self.store.timezone})",
            xlabel="time",
            ylabel="people",
            xlim=_timeline_range(times, width),
            responsive=True,
            height=CHART_HEIGHT,
            legend_position="top_left",
            show_legend=True,
        )

    def _occupancy_chart(self):
        occ = self.data.occupancy
        if occ.empty:
            return hv.Curve([], "time", "inside").opts(title="Occupancy: no events")
        curve = hv.Curve(
            (_local_naive(pd.DatetimeIndex(occ.index)), occ["occupancy"]),
            "time",
            "inside",
            label="inside",
        ).opts(interpolation="steps-post", color="#0b6bcb", line_width=2)
        # The same bands as the timeline: a flat line where the cameras were down is not
        # "nobody inside".
        top = max(1, int(occ["occupancy"].max()))
        shading = _shading(self.binned(), BIN_WIDTHS[self.bin], top)
        chart = curve if shading is None else shading * curve
        return chart.opts(
            title="Occupancy through the day (entries - exits)",
            responsive=True,
            height=CHART_HEIGHT,
        )

    def _camera_chart(self):
        table = self.data.cameras
        if table.empty:
            return hv.Bars([], ["camera", "direction"], "people").opts(
                title="Per camera: no events"
            )
        rows = [
            (r.camera_name, direction, int(r.entries if direction == "entry" else r.exits))
            for r in table.itertuples()
            for direction in ("entry", "exit")
        ]
        bars = hv.Bars(rows, ["camera", "direction"], "people")
        return bars.opts(
            title="Entries and exits per camera",
            responsive=True,
            height=CHART_HEIGHT,
            color="direction",
            cmap={"entry": ENTRY_COLOUR, "exit": EXIT_COLOUR},
            xlabel="",
        )

    def _heat_chart(self):
        """The chosen camera's heat grid over its snapshot (cells nobody entered clear)."""
        camera_id = self.camera_select.value
        self.heatmap.visible = bool(camera_id)
        if not camera_id:
            self.heat_caption.object = "<i>Choose a camera to see where people walk.</i>"
            return None
        grid = self.data.heat
        snapshot = self._snapshot(camera_id)
        height, width = snapshot.shape[:2] if snapshot is not None else NO_SNAPSHOT_SIZE[::-1]
        heat = Heatmap(
            grid.astype(float),
            np.linspace(0, width, HEAT_COLUMNS + 1),
            np.linspace(0, height, HEAT_ROWS + 1),
        )
        layers = [frame_image(snapshot)] if snapshot is not None else []
        if grid.any():
            layers.append(heatmap_image(heat, label="visits"))
        self.heat_caption.object = (
            f'<span id="zv-heat-visits" data-visits="{int(grid.sum())}" '
            f'data-cells="{int((grid > 0).sum())}">{int(grid.sum())} visits in '
            f"{int((grid > 0).sum())} of {grid.size} cells</span>"
            + ("" if snapshot is not None else " (no snapshot: the camera gave no frame)")
        )
        overlay = hv.Overlay(layers) if layers else hv.Overlay([hv.Curve([])])
        return in_image_space(overlay, (width, height), title="Where people walk")

    def _snapshot(self, camera_id: int) -> np.ndarray | None:
        """The camera's frame, taken once per page (opening a stream takes a while)."""
        if camera_id not in self._snapshots:
            from .calibration_editor import take_snapshot

            try:
                self._snapshots[camera_id] = take_snapshot(self.app, camera_id)
            except Exception:  # an unreachable camera still gets its heat map, without frame
                self._snapshots[camera_id] = None
        return self._snapshots[camera_id]

    # ------------------------------------------------------------------ downloads
    def _events_csv(self) -> io.StringIO:
        """The raw events of the selection (hours rolled up by retention are only in the
        binned counts)."""
        where = self.event_filter()
        df = events_frame(self.app.db, where.store_id, where.camera_id, where.start, where.end)
        if not df.empty:
            df["local_time"] = pd.DatetimeIndex(df["timestamp"]).tz_convert(self.store.timezone)
        self.events_download.filename = self._filename("events")
        return io.StringIO(csv_frame(df).to_csv(index=False))

    def _binned_csv(self) -> io.StringIO:
        binned = self.binned()
        self.binned_download.filename = self._filename("hourly" if self.bin == "h" else "daily")
        return io.StringIO(csv_frame(binned).to_csv(index_label="timestamp"))

    def _filename(self, what: str) -> str:
        first, last = self.date_range.value
        return f"zvpanel-{what}-store{self.store_select.value}-{first}-{last}.csv"

    def __panel__(self) -> pn.viewable.Viewable:
        if not self.store_select.options:
            return pn.pane.Alert("No stores yet: an admin can add one on the Admin page.")
        filters = pn.Row(
            self.store_select,
            self.camera_select,
            self.date_range,
            pn.Column(pn.pane.Markdown("Bins", margin=(0, 10)), self.bin_select),
        )
        downloads = pn.Row(self.events_download, self.binned_download)
        return pn.Column(
            filters,
            self.summary,
            downloads,
            self.timeline,
            pn.Row(self.occupancy_chart, self.camera_chart, sizing_mode="stretch_width"),
            pn.Column(self.heat_caption, self.heatmap),
            self.zones,
            sizing_mode="stretch_width",
        )


def analytics_page(app=None, claims: Claims | None = None) -> pn.Column:
    return view_page("Analytics", "/analytics", AnalyticsView, app, claims)
