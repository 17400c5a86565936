"""The banner every page shows while an occupancy limit the user may see is exceeded."""

from __future__ import annotations

import logging
from zoneinfo import ZoneInfo

import panel as pn

from ..display import html_text
from ..storage.alerts import OccupancyLimit
from ..web.access import visible_store_ids

__all__ = ["AlertBanner", "banner_html", "BANNER_REFRESH_MS"]

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
