"""Occupancy alerts on the pages: the banner every page shows while a limit the user may
see is exceeded, and the admin page's Alerts tab that sets the limits."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

import pandas as pd
import panel as pn

from ..display import html_text, markdown_text
from ..errors import ZvpanelError
from ..storage.alerts import MAX_PEOPLE_LIMIT, OccupancyLimit, webhook_label
from ..web.access import visible_store_ids, visible_stores
from .session import is_admin, require_admin

__all__ = ["AlertBanner", "AlertSettings", "banner_html", "BANNER_REFRESH_MS"]

log = logging.getLogger(__name__)

#: How often an open page looks for raised or cleared alerts.
BANNER_REFRESH_MS = 2000

_BANNER_CSS = """
.zv-alert { background:#b00020; color:#fff; padding:8px 16px; border-radius:6px;
            font-family:system-ui,sans-serif; font-weight:600; }
.zv-alert div + div { margin-top:4px; }
"""


def _where(db, limit: OccupancyLimit) -> str:
    store = db.get_store(limit.store_id)
    if not limit.is_zone:
        return html_text(store.name)
    camera = db.get_camera(limit.camera_id)
    return (
        f"{html_text(store.name)}, zone {html_text(limit.zone_id)} of camera "
        f"{html_text(camera.name)}"
    )


def banner_html(db, username: str | None) -> str:
    """One line per exceeded limit of the stores ``username`` may see ("" if none).
    Names are escaped: users typed them."""
    allowed = visible_store_ids(db, username)
    lines = []
    for limit in db.occupancy_limits():
        if not limit.exceeded or (allowed is not None and limit.store_id not in allowed):
            continue
        since = ""
        if limit.changed_at is not None:
            tz = ZoneInfo(db.get_store(limit.store_id).timezone)
            since = f" since {limit.changed_at.astimezone(tz):%H:%M}"
        lines.append(
            f"<div>Occupancy limit exceeded: {_where(db, limit)} — more than "
            f"{limit.max_people} people inside{since}</div>"
        )
    return f'<div class="zv-alert" role="alert">{"".join(lines)}</div>' if lines else ""


class AlertBanner:
    """A pane showing :func:`banner_html`, hidden while nothing is exceeded.

    :meth:`refresh` runs from a periodic callback (on Panel's thread pool with
    ``--num-threads``): it only changes this Panel pane, never a raw Bokeh model.
    """

    def __init__(self, db, username: str | None) -> None:
        self.db = db
        self.username = username
        self.pane = pn.pane.HTML(
            "", stylesheets=[_BANNER_CSS], sizing_mode="stretch_width", visible=False
        )
        self.refresh()

    def refresh(self) -> None:
        try:
            text = banner_html(self.db, self.username)
        except Exception:  # a database outage must not end the page: try at the next tick
            log.exception("alert banner: reading the occupancy limits failed")
            return
        if text != self.pane.object:
            self.pane.object = text
        self.pane.visible = bool(text)


#: Columns of the admin page's limits table.
LIMIT_COLUMNS = [
    "store id",
    "store",
    "camera id",
    "zone",
    "max people",
    "clear at",
    "state",
    "webhook",
]
#: The camera choice that means "the whole store".
WHOLE_STORE = 0


class AlertSettings(pn.viewable.Viewer):
    """The admin page's Alerts tab: each store's (or zone's) limit, hysteresis and webhook.

    A webhook URL is never sent back to a browser (it is often the secret): the table
    shows its scheme and host, and an empty URL field keeps the stored one. Each action
    re-checks on the server that the session is an admin's.
    """

    def __init__(self, app, claims) -> None:
        super().__init__()
        self.app = app
        self.claims = claims
        self.admin = is_admin(app, claims)
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=LIMIT_COLUMNS),
            disabled=True,
            selectable=1,
            show_index=False,
            height=220,
            sizing_mode="stretch_width",
            hidden_columns=["store id", "camera id"],
        )
        self.store = pn.widgets.Select(label="Store", width=180)
        self.camera = pn.widgets.Select(label="Camera of the zone", width=180)
        self.zone = pn.widgets.TextInput(label="Zone id (empty: the whole store)", width=200)
        self.max_people = pn.widgets.IntInput(
            label="Most people allowed", value=50, start=1, end=MAX_PEOPLE_LIMIT, width=160
        )
        self.hysteresis = pn.widgets.IntInput(
            label="Clear this many below", value=0, start=0, end=MAX_PEOPLE_LIMIT, width=160
        )
        self.webhook = pn.widgets.PasswordInput(
            label="Webhook URL (empty: keep the stored one)",
            placeholder="https://...",
            width=360,
        )
        self.save_button = pn.widgets.Button(label="Save limit", color="primary")
        self.remove_button = pn.widgets.Button(label="Remove selected", color="danger")
        self.status = pn.pane.Alert(
            "", alert_type="info", visible=False, sizing_mode="stretch_width", disable_math=True
        )
        self.save_button.on_click(lambda event: self.save_action())
        self.remove_button.on_click(lambda event: self.remove_action())
        for widget in (
            self.store,
            self.camera,
            self.zone,
            self.max_people,
            self.hysteresis,
            self.webhook,
            self.save_button,
            self.remove_button,
        ):
            widget.disabled = not self.admin
        self.store.param.watch(lambda event: self._cameras(), "value")
        self.table.param.watch(lambda event: self._selected(), "selection")
        self.reload()

    def reload(self) -> None:
        db = self.app.db
        stores = visible_stores(db, self.claims.username if self.claims else None)
        names = {s.id: s.name for s in stores}
        self.table.value = pd.DataFrame(
            [
                {
                    "store id": x.store_id,
                    "store": names[x.store_id],
                    "camera id": x.camera_id,
                    "zone": x.zone_id,
                    "max people": x.max_people,
                    "clear at": x.clear_at,
                    "state": "exceeded" if x.exceeded else "ok",
                    "webhook": webhook_label(x.webhook_url) if x.webhook_url else "",
                }
                for x in db.occupancy_limits()
                if x.store_id in names
            ],
            columns=LIMIT_COLUMNS,
        )
        self.store.options = {s.name: s.id for s in stores}
        if self.store.value is None and stores:
            self.store.value = stores[0].id
        self._cameras()

    def _cameras(self) -> None:
        cameras = self.app.db.list_cameras(self.store.value) if self.store.value else []
        self.camera.options = {"(whole store)": WHOLE_STORE, **{c.name: c.id for c in cameras}}

    def _selected(self) -> None:
        if not self.table.selection:
            return
        row = self.table.value.iloc[self.table.selection[0]]
        self.store.value = int(row["store id"])
        self.camera.value = int(row["camera id"])
        self.zone.value = str(row["zone"])
        self.max_people.value = int(row["max people"])
        self.hysteresis.value = int(row["max people"]) - int(row["clear at"])
        self.webhook.value = ""

    def _where(self) -> dict:
        zone = self.zone.value.strip()
        return {"camera_id": int(self.camera.value or 0) if zone else 0, "zone_id": zone}

    def save_action(self) -> None:
        def save() -> str:
            db, where = self.app.db, self._where()
            url = self.webhook.value.strip() or None
            if url is None:  # keep the stored webhook (the browser never saw it)
                kept = [
                    x
                    for x in db.occupancy_limits(self.store.value)
                    if (x.camera_id, x.zone_id) == (where["camera_id"], where["zone_id"])
                ]
                url = kept[0].webhook_url if kept else None
            limit = db.set_occupancy_limit(
                self.store.value, self.max_people.value, self.hysteresis.value, url, **where
            )
            self.webhook.value = ""
            return (
                f"saved: raised above {limit.max_people}, cleared at {limit.clear_at} or below"
                + (f", webhook {webhook_label(url)}" if url else "")
            )

        self._run("save an occupancy limit", save)

    def remove_action(self) -> None:
        def remove() -> str:
            row = self.table.value.iloc[self.table.selection[0]] if self.table.selection else None
            if row is None:
                raise ZvpanelError("select a limit in the table first")
            self.app.db.remove_occupancy_limit(
                int(row["store id"]), camera_id=int(row["camera id"]), zone_id=str(row["zone"])
            )
            return f"removed the limit of {row['store']}"

        self._run("remove an occupancy limit", remove)

    def _run(self, what: str, action) -> None:
        try:
            require_admin(self.app, self.claims, what)
            done = action()
        except (ZvpanelError, ValueError, LookupError) as error:
            self._show(f"Could not {what}: {error}", "danger")
            return
        self.reload()
        self._show(done, "success")

    def _show(self, text: str, kind: str) -> None:
        self.status.param.update(object=markdown_text(text), alert_type=kind, visible=True)

    def __panel__(self) -> pn.Column:
        return pn.Column(
            self.status,
            self.table,
            pn.Row(self.store, self.camera, self.zone),
            pn.Row(self.max_people, self.hysteresis, self.webhook),
            pn.Row(self.save_button, self.remove_button),
            sizing_mode="stretch_width",
        )
