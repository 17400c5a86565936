"""The README's ``panel serve`` on PostgreSQL (ZVPANEL_DATABASE_URL), end to end: the demo
camera's real model on the sample video writes events to the session's PostgreSQL server,
and a logged-in browser sees them on the analytics page."""

from __future__ import annotations

import time

import pytest
from serving import login, panel_server

from zvpanel.storage import Database

pytestmark = [pytest.mark.ui, pytest.mark.model]

#: Waits for something the page must show (milliseconds).
PAGE_TIMEOUT_MS = 60_000
#: How long the page may take to show the events the engine records.
EVENT_WAIT_S = 120


def test_a_server_on_postgresql_records_and_charts_events(
    tmp_path, model_path, postgres, launch_chromium
):
    from playwright.sync_api import sync_playwright

    url = postgres.new_database()
    with (
        panel_server(tmp_path, model_path, env={"ZVPANEL_DATABASE_URL": url}) as server,
        sync_playwright() as playwright,
    ):
        browser = launch_chromium(playwright)
        page = browser.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        login(page, server.url)
        page.wait_for_url("**/live")
        page.goto(server.url + "/analytics")
        entries, exits = page.locator("#zv-total-entries"), page.locator("#zv-total-exits")
        entries.wait_for()
        deadline = time.monotonic() + EVENT_WAIT_S
        while int(entries.inner_text()) + int(exits.inner_text()) == 0:
            assert time.monotonic() < deadline, f"no event on the page in {EVENT_WAIT_S}s"
            time.sleep(1.0)
        shown = int(entries.inner_text()) + int(exits.inner_text())
        browser.close()
        with Database(url) as db:
            assert db.dialect == "postgresql"
            assert sum(db.count_events().values()) >= shown > 0
            assert [s.name for s in db.list_stores()] == ["Demo store"]
    assert not (tmp_path / "zvpanel.db").exists()  # nothing went to a SQLite file
