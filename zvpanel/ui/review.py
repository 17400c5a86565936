"""Review of counts (``/review``): a line's events of a day with their crops, verdicts, and
the line's reviewed precision per day next to its raw counts.

A reviewer picks a store, camera, line and day (the store's time zone), looks at the crop
of each crossing (newest :data:`EVENTS_SHOWN`, in time order), marks one ``wrong`` (nobody
crossed, or not this way) or ``double`` (counted again), or adds a crossing the counter
missed. Reviews never change the recorded events (:mod:`zvpanel.storage.review`); the
table shows, per day, raw counts, the verdicts, the reviewed count and the precision
``1 - (wrong + double) / raw``.

Anyone who may see a store (:mod:`zvpanel.web.access`) may review its counts; every
action checks the session again (expired, logged out, store taken away).
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import panel as pn

from ..display import html_text
from ..errors import AuthError, ZvpanelError
from ..storage.queries import EventFilter, latest_event_id
from ..storage.review import ReviewedEvent
from ..storage.review_counts import precision, reviewed_counts
from ..web.access import visible_camera, visible_store_ids, visible_stores
from ..web.auth import Claims, check_user
from .layout import periodic, view_page
from .session import expired

__all__ = ["ReviewView", "review_page", "EVENTS_SHOWN", "PRECISION_DAYS", "REFRESH_MS"]

#: Newest events of the day listed with their crops.
EVENTS_SHOWN = 60
#: Days in the precision table, ending with the chosen day.
PRECISION_DAYS = 7
#: How often the page looks for new events on the line (milliseconds).
REFRESH_MS = 5000
CROP_WIDTH = 96
VERDICT_COLOURS = {"wrong": "#cf222e", "double": "#9a6700", None: "#57606a"}
_CSS = """
.zv-event { border:1px solid #d0d7de; border-radius:6px; padding:4px; }
.zv-table td, .zv-table th { padding:2px 10px; text-align:right; }
"""


def _percent(value: float) -> str:
    return "—" if np.isnan(value) else f"{100 * value:.1f}%"


class ReviewView(pn.viewable.Viewer):
    """The review of one line's counts; ``claims`` is whose view it is (None: a script)."""

    def __init__(self, app, claims: Claims | None = None, **params) -> None:
        super().__init__(**params)
        self.app = app
        self.claims = claims
        stores = visible_stores(app.db, claims.username if claims else None)
        self.store_select = pn.widgets.Select(
            label="Store", options={s.name: s.id for s in stores}, width=200
        )
        self.camera_select = pn.widgets.Select(label="Camera", width=200)
        self.line_select = pn.widgets.Select(label="Line", width=160)
        self.day_picker = pn.widgets.DatePicker(label="Day (store's time zone)", width=180)
        self.message = pn.pane.Alert(visible=False, alert_type="danger")
        self.precision_table = pn.pane.HTML(stylesheets=[_CSS], sizing_mode="stretch_width")
        self.events = pn.FlexBox(sizing_mode="stretch_width")
        self.missed_time = pn.widgets.TextInput(label="Missed at (HH:MM:SS)", width=160)
        self.missed_direction = pn.widgets.Select(
            label="Direction", options=["entry", "exit"], width=100
        )
        self.missed_button = pn.widgets.Button(label="Add missed crossing", color="primary")
        self.missed_button.on_click(lambda e: self.add_missed())
        self.missed_list = pn.Column()
        self.listed: list[ReviewedEvent] = []
        self.last_event_id = 0
        # True while a store or camera change resets the choices below it: one update.
        self._resetting = False
        self.store_select.param.watch(lambda e: self._store_changed(), "value")
        self.camera_select.param.watch(
            lambda e: self._unless_resetting(self._camera_changed), "value"
        )
        for widget in (self.line_select, self.day_picker):
            widget.param.watch(lambda e: self._unless_resetting(self.update), "value")
        if stores:
            self._store_changed()
        periodic(self.refresh, REFRESH_MS)

    # ------------------------------------------------------------------ choices
    @property
    def store(self):
        return self.app.db.get_store(self.store_select.value)

    def _unless_resetting(self, action) -> None:
        if not self._resetting:
            action()

    def _store_changed(self) -> None:
        store = self.store
        self._resetting = True
        try:
            self.day_picker.value = datetime.now(store.tz).date()
            cameras = {c.name: c.id for c in self.app.db.list_cameras(store.id)}
            self.camera_select.options = cameras
            self.camera_select.value = next(iter(cameras.values()), None)
        finally:
            self._resetting = False
        self._camera_changed()

    def _camera_changed(self) -> None:
        camera_id = self.camera_select.value
        calibration = None if camera_id is None else self.app.db.get_calibration(camera_id)
        lines = [line.id for line in calibration.lines] if calibration else []
        self._resetting = True
        try:
            self.line_select.options = lines
            self.line_select.value = lines[0] if lines else None
        finally:
            self._resetting = False
        self.update()

    def window(self, first: date, days: int = 1) -> tuple[datetime, datetime]:
        """``days`` local days from ``first`` as a UTC [start, end) window."""
        tz = ZoneInfo(self.store.timezone)
        start = datetime.combine(first, time.min, tz)
        return start, datetime.combine(first + timedelta(days=days), time.min, tz)

    # ------------------------------------------------------------------ data
    def update(self) -> None:
        """Re-read the line's events of the day and its precision table."""
        camera, line, day = self.camera_select.value, self.line_select.value, self.day_picker.value
        if camera is not None and not self._may_see(camera):
            camera = None  # a choice the browser forged: shown like a camera that is not there
        if camera is None or line is None or day is None:
            self.listed = []
            self.events.objects = [pn.pane.Markdown("No calibrated camera with a line here.")]
            self.precision_table.object = ""
            return
        self.listed = self.app.db.line_events(camera, line, *self.window(day), EVENTS_SHOWN)
        self.last_event_id = latest_event_id(self.app.db, EventFilter(camera_id=camera))
        self.events.objects = [self._card(item) for item in self.listed] or [
            pn.pane.Markdown("No crossings of this line on this day.")
        ]
        self._draw_missed()
        self._draw_precision()

    def refresh(self) -> bool:
        """Show new events (the periodic callback); False when there were none."""
        camera = self.camera_select.value
        if (
            camera is None
            or latest_event_id(self.app.db, EventFilter(camera_id=camera)) <= self.last_event_id
        ):
            return False
        self.update()
        return True

    def counts(self) -> pd.DataFrame:
        """Raw and reviewed counts of the line per day, over the days the table shows."""
        day = self.day_picker.value
        start, end = self.window(day - timedelta(days=PRECISION_DAYS - 1), PRECISION_DAYS)
        where = EventFilter(camera_id=self.camera_select.value, start=start, end=end)
        counts = reviewed_counts(self.app.db, self.store.timezone, where, self.line_select.value)
        per_day = counts.groupby("date")[["raw", "wrong", "double", "missed", "reviewed"]].sum()
        per_day["precision"] = precision(per_day["raw"], per_day["wrong"], per_day["double"])
        return per_day.sort_index(ascending=False)

    # ------------------------------------------------------------------ actions
    def mark(self, item: ReviewedEvent, verdict: str | None) -> None:
        """Give ``item`` a verdict (``wrong``/``double``), or take its verdict back (None)."""
        try:
            reviewer = self._reviewer()
            if verdict is None:
                (review,) = [r for r in self._reviews() if r.event_uid == item.event.uid]
                self.app.db.delete_review(review.id)
            else:
                self.app.db.review_event(item.event.uid, verdict, reviewer)
        except (ZvpanelError, ValueError) as error:
            return self._fail(error)
        self.message.visible = False
        self.update()

    def add_missed(self) -> None:
        """Record the crossing the form describes, at that time of the chosen day."""
        try:
            reviewer = self._reviewer()
            text = self.missed_time.value.strip()
            try:
                clock = time.fromisoformat(text)
            except ValueError:
                raise ValueError(f"missed at {text!r}: give a time of day as HH:MM:SS") from None
            when = datetime.combine(self.day_picker.value, clock, ZoneInfo(self.store.timezone))
            self.app.db.add_missed(
                self.camera_select.value,
                self.line_select.value,
                self.missed_direction.value,
                when,
                reviewer,
            )
        except (ZvpanelError, ValueError) as error:
            return self._fail(error)
        self.missed_time.value = ""
        self.message.visible = False
        self.update()

    def remove_review(self, review_id: int) -> None:
        try:
            self._reviewer()
            self.app.db.delete_review(review_id)
        except (ZvpanelError, ValueError) as error:
            return self._fail(error)
        self.update()

    def _reviewer(self) -> str:
        """Who reviews: the session's user, if it still holds and may see this store."""
        claims = self.claims
        if claims is None:
            raise AuthError("log in to review counts")
        if expired(claims):
            raise AuthError("the session expired; log in again to review counts")
        check_user(self.app.db, claims)
        allowed = visible_store_ids(self.app.db, claims.username)
        if allowed is not None and self.store_select.value not in allowed:
            raise AuthError(f"{claims.username} may not review this store's counts")
        return claims.username

    def _may_see(self, camera_id: int) -> bool:
        """Whether this session's user may see ``camera_id`` of the chosen store."""
        username = self.claims.username if self.claims is not None else None
        camera = visible_camera(self.app.db, username, camera_id)
        return camera is not None and camera.store_id == self.store_select.value

    def _fail(self, error: Exception) -> None:
        self.message.object = html_text(error)
        self.message.visible = True

    def _reviews(self):
        return self.app.db.reviews(
            self.camera_select.value, *self.window(self.day_picker.value), self.line_select.value
        )

    # ------------------------------------------------------------------ drawing
    def _card(self, item: ReviewedEvent) -> pn.Column:
        event, tz = item.event, self.store.tz
        crop = self.app.db.event_crop(event.uid) if item.has_crop else None
        picture = (
            pn.pane.JPG(crop, width=CROP_WIDTH, css_classes=["zv-crop"])
            if crop is not None
            else pn.pane.HTML(f'<div style="width:{CROP_WIDTH}px">no crop</div>')
        )
        verdict = item.verdict
        label = pn.pane.HTML(
            f'<div class="zv-event-info">{event.timestamp.astimezone(tz):%H:%M:%S} · '
            f"{event.direction} · #{event.track_id}<br>"
            f'<b class="zv-verdict" style="color:{VERDICT_COLOURS[verdict]}">'
            f"{verdict or 'not reviewed'}</b></div>"
        )
        buttons = [
            self._button("Wrong", lambda e: self.mark(item, "wrong"), "zv-mark-wrong"),
            self._button("Double", lambda e: self.mark(item, "double"), "zv-mark-double"),
        ]
        if verdict is not None:
            buttons.append(self._button("Clear", lambda e: self.mark(item, None), "zv-clear"))
        return pn.Column(
            picture, label, pn.Row(*buttons), css_classes=["zv-event"], stylesheets=[_CSS]
        )

    @staticmethod
    def _button(name: str, action, css: str) -> pn.widgets.Button:
        button = pn.widgets.Button(label=name, width=62, css_classes=[css])
        button.on_click(action)
        return button

    def _draw_missed(self) -> None:
        missed = [r for r in self._reviews() if r.verdict == "missed"]
        rows = []
        for review in missed:
            remove = pn.widgets.Button(label="Remove", width=80)
            remove.on_click(lambda e, rid=review.id: self.remove_review(rid))
            when = review.timestamp.astimezone(self.store.tz)
            text = f"{when:%H:%M:%S} · missed {review.direction} · by {review.reviewer}"
            rows.append(pn.Row(pn.pane.HTML(html_text(text)), remove))
        self.missed_list.objects = rows

    def _draw_precision(self) -> None:
        line = html_text(self.line_select.value)
        header = "".join(
            f"<th>{h}</th>"
            for h in ("day", "raw", "wrong", "double", "missed", "reviewed", "precision")
        )
        rows = "".join(
            f'<tr id="zv-day-{r.Index}"><td>{r.Index}</td><td class="zv-raw">{r.raw}</td>'
            f'<td class="zv-wrong">{r.wrong}</td><td class="zv-double">{r.double}</td>'
            f'<td class="zv-missed">{r.missed}</td><td class="zv-reviewed">{r.reviewed}</td>'
            f'<td class="zv-precision">{_percent(r.precision)}</td></tr>'
            for r in self.counts().itertuples()
        )
        self.precision_table.object = (
            f"<b>Line {line}: raw and reviewed counts per day</b>"
            f'<table class="zv-table"><tr>{header}</tr>{rows}</table>'
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return pn.Column(
            pn.Row(self.store_select, self.camera_select, self.line_select, self.day_picker),
            self.message,
            self.precision_table,
            pn.pane.Markdown(
                f"#### Crossings of the day (newest {EVENTS_SHOWN}, oldest first)", margin=(0, 10)
            ),
            self.events,
            pn.pane.Markdown("#### A crossing the counter missed", margin=(0, 10)),
            pn.Row(self.missed_time, self.missed_direction, self.missed_button),
            self.missed_list,
            sizing_mode="stretch_width",
        )


def review_page(app=None, claims: Claims | None = None) -> pn.Column:
    return view_page("Review of counts", "/review", ReviewView, app, claims)
