"""Store overview, the landing page: every store's day so far in one sortable table, each
camera's health, and a weekday x hour heat map of the chosen store's last four weeks.

The numbers come from :mod:`zvpanel.storage.overview` (counted by the database for all
stores at once, in each store's time zone); camera health from the result hub, the same
source the live page reads (filled by this process's engine or, with ``ZVPANEL_ENGINE=0``,
by the bus). Names enter the tables as escaped HTML (:func:`zvpanel.display.html_text`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

import holoviews as hv
import pandas as pd
import panel as pn

from ..display import html_text
from ..engine.result import CameraStatus
from ..storage.coverage import StoreGaps, store_gaps
from ..storage.overview import (
    COMPARED_WEEKS,
    TREND_DAYS,
    PastDays,
    StoreDay,
    last_event_times,
    store_days,
    weekly_heat,
)
from ..web.access import visible_cameras, visible_stores
from ..web.auth import Claims
from .layout import periodic, view_page

__all__ = ["OverviewView", "overview_page", "sparkline_svg", "REFRESH_MS", "HEALTH_REFRESH_MS"]

hv.extension("bokeh", logo=False)

#: How often the stores are counted again (milliseconds).
REFRESH_MS = 30_000
#: How often the cameras' health is read again (the hub's statuses are in memory).
HEALTH_REFRESH_MS = 2_000
#: Rows of a table page (50 stores are two pages, sorted as a whole).
PAGE_ROWS = 25
HEAT_HEIGHT = 320
SPARK_WIDTH, SPARK_HEIGHT = 120, 24
SPARK_COLOUR = "#0b6bcb"
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
#: Columns whose cells are HTML we built (names escaped in them): shown, not as text.
_HTML = {"type": "html"}

Clock = Callable[[], datetime]
#: Whole past days' counts, shared by every overview session of this process.
PAST_DAYS = PastDays()


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def sparkline_svg(values: Sequence[int]) -> str:
    """A small inline SVG line of ``values`` (numbers only: nothing typed by a user)."""
    top = max(max(values, default=0), 1)
    step = SPARK_WIDTH / max(len(values) - 1, 1)
    points = " ".join(
        f"{i * step:.1f},{SPARK_HEIGHT - 1 - (SPARK_HEIGHT - 2) * int(v) / top:.1f}"
        for i, v in enumerate(values)
    )
    return (
        f'<svg class="zv-spark" width="{SPARK_WIDTH}" height="{SPARK_HEIGHT}" '
        f'data-values="{",".join(str(int(v)) for v in values)}">'
        f'<polyline points="{points}" fill="none" stroke="{SPARK_COLOUR}" '
        'stroke-width="1.5"/></svg>'
    )


def _peak(day: StoreDay) -> str:
    if day.peak_hour is None:
        return "-"
    return f"{day.peak_hour:02d}:00 ({day.peak_entries})"


def _versus(day: StoreDay) -> float | None:
    """Today against the usual, in percent (None when the usual is zero)."""
    return round(100 * (day.today / day.usual - 1), 1) if day.usual else None


def _gap_flag(gaps: StoreGaps | None, camera_names: dict[int, str]) -> str:
    """Today's coverage: a flag naming the cameras when some hour was not all watched."""
    if gaps is None or math.isnan(gaps.coverage):  # no camera ever recorded: unknown
        return '<span class="zv-gaps" data-gap-hours="0">-</span>'
    if not gaps.has_gaps:
        return '<span class="zv-gaps" data-gap-hours="0">none</span>'
    names = ", ".join(html_text(camera_names.get(c, f"camera {c}")) for c in gaps.cameras_with_gaps)
    return (
        f'<span class="zv-gaps" data-gap-hours="{gaps.gap_hours}" style="color:#cf222e">'
        f"&#9888; {gaps.gap_hours} h not fully covered ({names})</span>"
    )


def _health(statuses: list[CameraStatus | None]) -> str:
    online = sum(1 for s in statuses if s is not None and s.state == "online")
    text = f"{online}/{len(statuses)} online"
    limited = sum(1 for s in statuses if s is not None and s.hardware_limited)
    return text + (f", {limited} hardware limited" if limited else "")


class OverviewView(pn.viewable.Viewer):
    """The stores table, the cameras table and the heat map of the stores a user may see."""

    def __init__(self, app, claims: Claims | None = None, clock: Clock = _utc_now) -> None:
        super().__init__()
        self.app = app
        self.clock = clock
        username = claims.username if claims else None
        self.stores = visible_stores(app.db, username)
        self.store_names = {s.id: s.name for s in self.stores}
        # Read after the stores: a camera of a store added in between waits for a reload.
        cameras = visible_cameras(app.db, username)
        self.cameras = [c for c in cameras if c.store_id in self.store_names]
        self.table = pn.widgets.Tabulator(
            disabled=True,
            selectable=1,
            show_index=False,
            hidden_columns=["store_id"],
            formatters={"store": _HTML, "gaps today": _HTML, f"last {TREND_DAYS} days": _HTML},
            sortable={f"last {TREND_DAYS} days": False},
            pagination="local",
            page_size=PAGE_ROWS,
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            css_classes=["zv-overview-stores"],
        )
        self.camera_table = pn.widgets.Tabulator(
            disabled=True,
            show_index=False,
            formatters={"store": _HTML, "camera": _HTML, "reason": _HTML},
            pagination="local",
            page_size=PAGE_ROWS,
            sizing_mode="stretch_width",
            layout="fit_data_stretch",
            css_classes=["zv-overview-cameras"],
        )
        self.store_select = pn.widgets.Select(
            label="Heat map of store", options={s.name: s.id for s in self.stores}, width=260
        )
        self.heat = pn.pane.HoloViews(
            sizing_mode="stretch_width", height=HEAT_HEIGHT, css_classes=["zv-heat"]
        )
        self.store_select.param.watch(lambda e: self.draw_heat(), "value")
        self.table.param.watch(self._row_selected, "selection")
        self.days: list[StoreDay] = []
        self.gaps: dict[int, StoreGaps] = {}
        self.refresh()
        self.draw_heat()
        periodic(self.refresh, REFRESH_MS)
        periodic(self.refresh_health, HEALTH_REFRESH_MS)

    # ------------------------------------------------------------------ tables
    def refresh(self) -> None:
        """Count every store again and read the cameras' health (the periodic callback)."""
        now = self.clock()
        flush = self.app.settings.activity_flush_seconds
        self.gaps = store_gaps(self.app.db, self.stores, now=now, flush_seconds=flush)
        self.days = store_days(self.app.db, self.stores, now, PAST_DAYS)
        self.refresh_health()

    def refresh_health(self) -> None:
        """Show the cameras' newest health beside the last counts; a table whose content
        did not change is not sent to the browser again."""
        for table, frame in (
            (self.table, self.stores_frame(self.days, self.gaps)),
            (self.camera_table, self.cameras_frame()),
        ):
            if table.value is None or not frame.equals(table.value):
                table.value = frame

    def _status(self, camera_id: int) -> CameraStatus | None:
        return self.app.hub.status(camera_id) if self.app.hub is not None else None

    def stores_frame(
        self, days: list[StoreDay], gaps: dict[int, StoreGaps] | None = None
    ) -> pd.DataFrame:
        by_store: dict[int, list[CameraStatus | None]] = {s.id: [] for s in self.stores}
        camera_names = {c.id: c.name for c in self.cameras}
        gaps = gaps or {}
        for camera in self.cameras:
            by_store[camera.store_id].append(self._status(camera.id))
        rows = [
            {
                "store_id": d.store_id,
                "store": html_text(d.name),
                "today": d.today,
                "last week": d.last_week,
                f"{COMPARED_WEEKS}-week mean": round(d.usual, 1),
                "vs mean %": _versus(d),
                "inside now": d.occupancy,
                "peak hour": _peak(d),
                "cameras": _health(by_store[d.store_id]),
                "gaps today": _gap_flag(gaps.get(d.store_id), camera_names),
                f"last {TREND_DAYS} days": sparkline_svg(d.daily),
            }
            for d in days
        ]
        return pd.DataFrame(rows, columns=_STORE_COLUMNS)

    def cameras_frame(self) -> pd.DataFrame:
        last = last_event_times(self.app.db, [c.id for c in self.cameras])
        zones = {s.id: s.tz for s in self.stores}
        rows = []
        for camera in self.cameras:
            status = self._status(camera.id)
            seen = last[camera.id]
            rows.append(
                {
                    "store": html_text(self.store_names[camera.store_id]),
                    "camera": html_text(camera.name),
                    "state": "not running" if status is None else status.state,
                    "rate (fps)": "-"
                    if status is None
                    else f"{status.actual_fps:.1f} of {status.target_fps:.1f}",
                    "hardware limited": bool(status is not None and status.hardware_limited),
                    "last event": "-"
                    if seen is None
                    else seen.astimezone(zones[camera.store_id]).strftime("%Y-%m-%d %H:%M:%S"),
                    "reason": "" if status is None else html_text(status.reason or ""),
                }
            )
        return pd.DataFrame(rows, columns=_CAMERA_COLUMNS)

    def _row_selected(self, event) -> None:
        if event.new and not self.table.value.empty:
            row = self.table.value.iloc[event.new[0]]
            self.store_select.value = int(row["store_id"])

    # ------------------------------------------------------------------ heat map
    def draw_heat(self) -> None:
        """The chosen store's mean entries per local weekday and hour, last four weeks."""
        store_id = self.store_select.value
        if store_id is None:
            return
        store = next(s for s in self.stores if s.id == store_id)
        grid = weekly_heat(self.app.db, store, self.clock())
        cells = [
            (hour, WEEKDAYS[day], float(grid.loc[day, hour]))
            for day in range(7)
            for hour in range(24)
        ]
        self.heat.object = hv.HeatMap(cells, ["hour", "day"], "entries").opts(
            title=f"Mean entries per hour, last {COMPARED_WEEKS} weeks ({store.timezone} time)",
            cmap="Blues",
            colorbar=True,
            tools=["hover"],
            responsive=True,
            height=HEAT_HEIGHT,
            invert_yaxis=True,
            xticks=list(range(0, 24, 2)),
        )

    def __panel__(self) -> pn.viewable.Viewable:
        if not self.stores:
            return pn.pane.Alert("No stores yet: an admin can add one on the Admin page.")
        return pn.Column(
            pn.pane.Markdown(
                "Entries today so far, next to the same weekday last week and the mean of "
                f"the last {COMPARED_WEEKS} weeks up to the same local time.",
                margin=(0, 10),
            ),
            self.table,
            pn.pane.Markdown("### Cameras", margin=(0, 10)),
            self.camera_table,
            self.store_select,
            self.heat,
            sizing_mode="stretch_width",
        )


_STORE_COLUMNS = [
    "store_id",
    "store",
    "today",
    "last week",
    f"{COMPARED_WEEKS}-week mean",
    "vs mean %",
    "inside now",
    "peak hour",
    "cameras",
    "gaps today",
    f"last {TREND_DAYS} days",
]
_CAMERA_COLUMNS = [
    "store",
    "camera",
    "state",
    "rate (fps)",
    "hardware limited",
    "last event",
    "reason",
]


def overview_page(app=None, claims: Claims | None = None) -> pn.Column:
    """The whole overview page for the current session (or the given claims, in tests)."""
    return view_page("Store overview", "/overview", OverviewView, app, claims)
