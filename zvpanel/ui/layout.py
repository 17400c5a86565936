"""The frame around every page: navigation, who is logged in, logout, end of the login
(at its expiry, or when its token stops working)."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote
from weakref import WeakKeyDictionary

import panel as pn
from panel.viewable import Viewable

from ..display import html_text
from ..web.auth import Claims
from ..web.auth_module import login_url, logout_url
from ..web.revocation import SESSION_WATCH
from .alerts import BANNER_REFRESH_MS, AlertBanner
from .session import seconds_left, session_claims

__all__ = ["PAGES", "page", "view_page", "periodic", "end_session"]

#: (label, path) of each dashboard, in navigation order.
PAGES: tuple[tuple[str, str], ...] = (
    ("Overview", "/overview"),
    ("Live", "/live"),
    ("Calibration", "/calibrate"),
    ("Analytics", "/analytics"),
    ("Review", "/review"),
    ("Admin", "/admin"),
)

_NAV_CSS = """
.zv-nav { display:flex; align-items:center; gap:18px; padding:8px 16px; background:#16324f;
          color:#fff; font-family:system-ui,sans-serif; border-radius:6px; }
.zv-nav a { color:#dbe9f7; text-decoration:none; font-weight:600; }
.zv-nav a.active { color:#fff; border-bottom:2px solid #ffd400; }
.zv-nav .brand { font-weight:800; font-size:1.15em; margin-right:12px; }
.zv-nav .user { margin-left:auto; color:#dbe9f7; }
"""


def _nav(active: str, claims: Claims | None) -> pn.pane.HTML:
    links = " ".join(
        f'<a href="{path}" class="{"active" if path == active else ""}">{label}</a>'
        for label, path in PAGES
    )
    who = ""
    if claims is not None:
        role = "admin" if claims.admin else "viewer"
        who = (
            f'<span class="user">{html_text(claims.username)} ({role}) · '
            f'<a href="{logout_url}" id="logout">Log out</a></span>'
        )
    return pn.pane.HTML(
        f'<div class="zv-nav"><span class="brand">zvpanel</span>{links}{who}</div>',
        stylesheets=[_NAV_CSS],
        sizing_mode="stretch_width",
    )


#: The :func:`periodic` callbacks of each served page, stopped when its login expires.
_callbacks: WeakKeyDictionary = WeakKeyDictionary()


def _served() -> bool:
    """True in a served session (a ``get_root`` in a test has no event loop to run timers)."""
    doc = pn.state.curdoc
    return doc is not None and doc.session_context is not None


def _login_link(path: str) -> str:
    return f"{login_url}?next={quote(path)}&expired=1"


def page(
    title: str, path: str, body: pn.viewable.Viewable, claims: Claims | None, app=None
) -> pn.Column:
    """A dashboard page: navigation bar, title, body; it ends itself when the login expires,
    or (given the ``app`` whose database knows the users) when its token stops working.

    Bokeh checks the session cookie only when the page loads, so a page left open would
    otherwise go on showing (and changing) data on a token past its ``exp``.
    """
    if claims is None:
        body = pn.pane.Alert("Log in to see this page: [log in](/login).", alert_type="warning")
    header = [_nav(path, claims)]
    if claims is not None and app is not None:
        header.append(_alert_banner(app.db, claims))
    column = pn.Column(
        *header,
        pn.pane.Markdown(f"## {title}", margin=(0, 10)),
        body,
        sizing_mode="stretch_width",
    )
    if claims is not None and _served():
        delay_ms = max(1, round(seconds_left(claims) * 1000))
        pn.state.add_periodic_callback(lambda: end_session(column, path), period=delay_ms, count=1)
        if app is not None:
            _end_when_revoked(column, path, claims, app.db)
    return column


def view_page(
    title: str,
    path: str,
    view: Callable[..., Viewable],
    app=None,
    claims: Claims | None = None,
) -> pn.Column:
    """The page at ``path`` whose body is ``view(app, claims)``, for the current session's
    login (or the given ``app`` and ``claims``, in tests); without a login it only asks
    for one."""
    from ..app import get_app

    app = app or get_app()
    claims = claims or session_claims(app)
    body = view(app, claims) if claims is not None else None
    return page(title, path, body, claims, app)


def _alert_banner(db, claims: Claims) -> pn.pane.HTML:
    """The banner of exceeded occupancy limits, kept current while the page is open."""
    banner = AlertBanner(db, claims.username)
    periodic(banner.refresh, BANNER_REFRESH_MS)
    return banner.pane


def _end_when_revoked(column: pn.Column, path: str, claims: Claims, db) -> None:
    """End the page soon after its token stops working (password changed, user disabled,
    logged out), like at its expiry."""
    doc = pn.state.curdoc

    def end(reason: str) -> None:  # on the watch's thread: through the document's lock
        doc.add_next_tick_callback(lambda: end_session(column, path))

    watched = SESSION_WATCH.watch(db, claims, end, on_loop=False)
    pn.state.on_session_destroyed(lambda context: SESSION_WATCH.unwatch(watched))


def end_session(column: pn.Column, path: str) -> None:
    """What a page does when its login expires: hide the data, stop refreshing, go log in.

    The body (and with it any live video) leaves the page at once; the browser is then
    sent to the login page, which brings it back to ``path`` afterwards.
    """
    column[-1] = pn.pane.Alert(
        f"Your session has expired: [log in again]({_login_link(path)}).", alert_type="warning"
    )
    if not _served():
        return
    for callback in _callbacks.pop(pn.state.curdoc, []):
        callback.stop()
    location = pn.state.location
    # With ``reload`` off the browser only rewrites its address bar; switching it on last
    # makes it load that address.
    location.param.update(pathname=login_url, search=f"?next={quote(path)}&expired=1")
    location.reload = True


def periodic(callback, period_ms: int) -> None:
    """Call ``callback`` every ``period_ms`` while the browser session lives.

    Only in a served session (tests call the refresh method themselves). Panel stops the
    callback when the session ends, :func:`end_session` when the login expires.
    """
    if _served():
        timer = pn.state.add_periodic_callback(callback, period=period_ms)
        _callbacks.setdefault(pn.state.curdoc, []).append(timer)
