"""The frame around every page: navigation, who is logged in, logout."""

from __future__ import annotations

import html

import panel as pn

from ..web.auth import Claims
from ..web.auth_module import logout_url

__all__ = ["PAGES", "page", "periodic"]

#: (label, path) of each dashboard, in navigation order.
PAGES: tuple[tuple[str, str], ...] = (
    ("Live", "/live"),
    ("Calibration", "/calibrate"),
    ("Analytics", "/analytics"),
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
            f'<span class="user">{html.escape(claims.username)} ({role}) · '
            f'<a href="{logout_url}" id="logout">Log out</a></span>'
        )
    return pn.pane.HTML(
        f'<div class="zv-nav"><span class="brand">zvpanel</span>{links}{who}</div>',
        stylesheets=[_NAV_CSS],
        sizing_mode="stretch_width",
    )


def page(title: str, path: str, body: pn.viewable.Viewable, claims: Claims | None) -> pn.Column:
    """A dashboard page: navigation bar, title, body."""
    if claims is None:
        body = pn.pane.Alert("Log in to see this page: [log in](/login).", alert_type="warning")
    return pn.Column(
        _nav(path, claims),
        pn.pane.Markdown(f"## {title}", margin=(0, 10)),
        body,
        sizing_mode="stretch_width",
    )


def periodic(callback, period_ms: int) -> None:
    """Call ``callback`` every ``period_ms`` while the browser session lives.

    Only in a served session (a ``get_root`` in a test has no event loop to run it; tests
    call the refresh method themselves). Panel stops the callback when the session ends.
    """
    doc = pn.state.curdoc
    if doc is not None and doc.session_context is not None:
        pn.state.add_periodic_callback(callback, period=period_ms)
