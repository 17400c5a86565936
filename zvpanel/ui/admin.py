"""Admin page: stores, cameras (and where each runs), users, engine nodes and occupancy
limits. Viewers see the tables read-only.

Every action re-checks on the server that the session is an admin's
(:func:`~zvpanel.ui.session.require_admin`), whatever the browser shows. A new or
changed camera source is opened once (:func:`~zvpanel.sources.probe_source`) before it is
saved; if that fails the message says why and nothing is saved.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from zoneinfo import available_timezones

import pandas as pd
import panel as pn

from ..display import html_text, markdown_text
from ..errors import SourceError, ZvpanelError
from ..sources import SECRET_MASK, mask_source
from ..storage.fleet import Assignment, NodeInfo
from ..web.access import visible_cameras, visible_stores
from ..web.auth import Claims
from .alerts import AlertSettings
from .layout import view_page
from .session import is_admin, require_admin

__all__ = ["AdminView", "admin_page"]

log = logging.getLogger(__name__)

TABLE_HEIGHT = 220
#: Where a camera can run: the dashboards' own engine, one node, or a pool of nodes.
RUNS_ON = ("this server", "node", "pool")
NODE_COLUMNS = [
    "node",
    "pool",
    "last heartbeat",
    "cameras",
    "rates (detections/s)",
    "hardware limited",
    "backlog (events)",
]


def _table(df: pd.DataFrame) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(
        df,
        disabled=True,
        selectable=1,
        show_index=False,
        height=TABLE_HEIGHT,
        sizing_mode="stretch_width",
        layout="fit_data_stretch",
    )


class AdminView(pn.viewable.Viewer):
    """Tables and forms; each ``*_action`` method is what a button does (tests call them)."""

    def __init__(self, app, claims: Claims | None) -> None:
        super().__init__()
        self.app = app
        self.claims = claims
        self.admin = is_admin(app, claims)
        # Messages name what users typed: shown as text (markdown_text), no TeX either.
        self.status = pn.pane.Alert(
            "", alert_type="info", visible=False, sizing_mode="stretch_width", disable_math=True
        )
        # stores
        self.stores_table = _table(pd.DataFrame())
        self.store_name = pn.widgets.TextInput(label="Store name", width=200)
        self.store_tz = pn.widgets.AutocompleteInput(
            label="Time zone",
            options=sorted(available_timezones()),
            value="UTC",
            case_sensitive=False,
            restrict=False,  # a typo reaches the server, whose message names it
            search_strategy="includes",
            width=200,
        )
        self.add_store_button = pn.widgets.Button(label="Add store", color="primary")
        self.update_store_button = pn.widgets.Button(label="Update selected")
        self.delete_store_button = pn.widgets.Button(label="Delete selected", color="danger")
        # cameras
        self.cameras_table = _table(pd.DataFrame())
        self.camera_store = pn.widgets.Select(label="Store", width=180)
        self.camera_name = pn.widgets.TextInput(label="Camera name", width=180)
        self.camera_source = pn.widgets.TextInput(
            label="Source (file path, rtsp://..., http://..., or webcam index)", width=360
        )
        self.camera_enabled = pn.widgets.Checkbox(label="Enabled", value=True)
        self.add_camera_button = pn.widgets.Button(label="Add camera", color="primary")
        self.update_camera_button = pn.widgets.Button(label="Update selected")
        self.toggle_camera_button = pn.widgets.Button(label="Enable / disable selected")
        self.delete_camera_button = pn.widgets.Button(label="Delete selected", color="danger")
        self.camera_runs_on = pn.widgets.Select(
            label="Runs on", options=list(RUNS_ON), value="this server", width=140
        )
        self.camera_runner = pn.widgets.TextInput(label="Node or pool name", width=180)
        self.assign_camera_button = pn.widgets.Button(label="Assign selected")
        # engine nodes (fleet mode)
        self.nodes_table = _table(pd.DataFrame())
        # users
        self.users_table = _table(pd.DataFrame())
        self.user_name = pn.widgets.TextInput(label="Username", width=180)
        self.user_password = pn.widgets.PasswordInput(label="Password (8+ characters)", width=180)
        self.user_admin = pn.widgets.Checkbox(label="Admin", value=False)
        self.add_user_button = pn.widgets.Button(label="Add user", color="primary")
        self.toggle_admin_button = pn.widgets.Button(label="Make / unmake admin (selected)")
        self.reset_password_button = pn.widgets.Button(label="Reset password of selected")
        self.toggle_user_button = pn.widgets.Button(label="Disable / enable selected")
        self.user_stores = pn.widgets.MultiChoice(
            label="Stores the selected viewer may see (none: every store)", width=400
        )
        self.user_stores_button = pn.widgets.Button(label="Set stores of selected")
        self._wire()
        self.reload()

    def _wire(self) -> None:
        actions = {
            self.add_store_button: self.add_store_action,
            self.update_store_button: self.update_store_action,
            self.delete_store_button: self.delete_store_action,
            self.add_camera_button: self.add_camera_action,
            self.update_camera_button: self.update_camera_action,
            self.toggle_camera_button: self.toggle_camera_action,
            self.delete_camera_button: self.delete_camera_action,
            self.assign_camera_button: self.assign_camera_action,
            self.add_user_button: self.add_user_action,
            self.toggle_admin_button: self.toggle_admin_action,
            self.reset_password_button: self.reset_password_action,
            self.toggle_user_button: self.toggle_user_action,
            self.user_stores_button: self.set_user_stores_action,
        }
        for button, action in actions.items():
            button.on_click(lambda event, action=action: action())
            button.disabled = not self.admin
        for widget in (
            self.store_name,
            self.store_tz,
            self.camera_store,
            self.camera_name,
            self.camera_source,
            self.camera_enabled,
            self.camera_runs_on,
            self.camera_runner,
            self.user_name,
            self.user_password,
            self.user_admin,
            self.user_stores,
        ):
            widget.disabled = not self.admin
        self.stores_table.param.watch(lambda e: self._store_selected(), "selection")
        self.cameras_table.param.watch(lambda e: self._camera_selected(), "selection")
        self.users_table.param.watch(lambda e: self._user_selected(), "selection")

    # ------------------------------------------------------------------ tables
    def reload(self) -> None:
        db = self.app.db
        username = self.claims.username if self.claims else None
        stores = visible_stores(db, username)
        self.stores_table.value = pd.DataFrame(
            [{"id": s.id, "name": s.name, "time zone": s.timezone} for s in stores],
            columns=["id", "name", "time zone"],
        )
        names = {s.id: s.name for s in stores}
        statuses = self.app.hub.statuses() if self.app.hub is not None else {}
        assignments = db.camera_assignments()
        self.cameras_table.value = pd.DataFrame(
            [
                {
                    "id": c.id,
                    "store": names.get(c.store_id, "?"),
                    "name": c.name,
                    "source": mask_source(c.source),
                    "enabled": c.enabled,
                    "status": statuses[c.id].state if c.id in statuses else "",
                    "runs on": _runs_on(assignments.get(c.id)),
                }
                for c in visible_cameras(db, username)
            ],
            columns=["id", "store", "name", "source", "enabled", "status", "runs on"],
        )
        self.nodes_table.value = _nodes_frame(db.list_nodes())
        self.users_table.value = pd.DataFrame(
            [
                {"username": u.username, "admin": u.is_admin, "disabled": u.disabled}
                for u in db.list_users()
            ],
            columns=["username", "admin", "disabled"],
        )
        self.camera_store.options = {s.name: s.id for s in stores}
        self.user_stores.options = {html_text(s.name): s.id for s in stores}  # Choices.js: HTML
        if self.camera_store.value is None and stores:
            self.camera_store.value = stores[0].id

    def _selected(self, table: pn.widgets.Tabulator, column: str):
        if not table.selection:
            raise ZvpanelError("select a row in the table first")
        return table.value.iloc[table.selection[0]][column]

    def _store_selected(self) -> None:
        if self.stores_table.selection:
            row = self.stores_table.value.iloc[self.stores_table.selection[0]]
            self.store_name.value, self.store_tz.value = row["name"], row["time zone"]

    def _camera_selected(self) -> None:
        if self.cameras_table.selection:
            camera = self.app.db.get_camera(int(self._selected(self.cameras_table, "id")))
            self.camera_store.value = camera.store_id
            self.camera_name.value = camera.name
            self.camera_source.value = mask_source(camera.source)
            self.camera_enabled.value = camera.enabled
            assignment = self.app.db.camera_assignment(camera.id)
            self.camera_runs_on.value = (
                "this server" if assignment is None else "node" if assignment.node else "pool"
            )
            self.camera_runner.value = "" if assignment is None else _runner(assignment)

    def _user_selected(self) -> None:
        if self.admin and self.users_table.selection:
            username = str(self._selected(self.users_table, "username"))
            self.user_stores.param.update(
                value=self.app.db.user_store_ids(username),
                label=f"Stores {username} may see (none: every store)",  # whose they are
            )

    # ------------------------------------------------------------------ running actions
    def _run(self, what: str, action) -> bool:
        """Check admin, run ``action``, report the outcome in the message box."""
        try:
            require_admin(self.app, self.claims, what)
            done = action()
        except (ZvpanelError, ValueError, LookupError) as error:
            self.show(f"Could not {what}: {error}", "danger")
            return False
        self.reload()
        self.show(done, "success")
        log.info("admin %s: %s", self.claims.username, done)
        return True

    def show(self, text: str, kind: str) -> None:
        self.status.object = markdown_text(text)  # names in messages are typed by users
        self.status.alert_type = kind
        self.status.visible = True

    def _reload_engine(self, camera_id: int) -> None:
        # Queued, not waited for: stopping a camera can wait for its stream to close.
        if self.app.engine is not None:
            self.app.engine.request_reload(camera_id)

    # stores
    def add_store_action(self) -> bool:
        def act():
            store = self.app.db.create_store(self.store_name.value.strip(), self.store_tz.value)
            return f"Store {store.name!r} added (id {store.id})."

        return self._run("add a store", act)

    def update_store_action(self) -> bool:
        def act():
            store_id = int(self._selected(self.stores_table, "id"))
            store = self.app.db.update_store(
                store_id, name=self.store_name.value.strip(), timezone=self.store_tz.value
            )
            return f"Store {store.name!r} updated."

        return self._run("update the store", act)

    def delete_store_action(self) -> bool:
        def act():
            store_id = int(self._selected(self.stores_table, "id"))
            self.app.db.delete_store(store_id)
            return f"Store {store_id} deleted."

        return self._run("delete the store", act)

    # cameras
    def _probe(self, source: str) -> str:
        from ..sources import probe_source

        if f":{SECRET_MASK}@" in source or f"={SECRET_MASK}" in source:
            # The form's masked source, edited (a new host, say): the real password is unknown.
            raise SourceError(
                f"the source {source!r} still has the masked password {SECRET_MASK!r}: "
                "type the camera's real password (or leave the whole source unchanged)"
            )
        try:
            info = probe_source(source)
        except SourceError as error:
            raise SourceError(f"the source could not be opened: {error}") from None
        return f"{info.kind} {info.width}x{info.height}" + (
            f" at {info.fps:g} fps" if info.fps else ""
        )

    def add_camera_action(self) -> bool:
        def act():
            source = self.camera_source.value.strip()
            described = self._probe(source)
            camera = self.app.db.create_camera(
                self.camera_store.value,
                self.camera_name.value.strip(),
                source,
                enabled=self.camera_enabled.value,
            )
            self._reload_engine(camera.id)
            return (
                f"Camera {camera.name!r} added (id {camera.id}, {described}). "
                "Calibrate it to start counting."
            )

        return self._run("add the camera", act)

    def update_camera_action(self) -> bool:
        def act():
            camera_id = int(self._selected(self.cameras_table, "id"))
            stored = self.app.db.get_camera(camera_id).source
            source = self._typed_source(stored)
            if source != stored:
                self._probe(source)
            camera = self.app.db.update_camera(
                camera_id,
                name=self.camera_name.value.strip(),
                source=source,
                enabled=self.camera_enabled.value,
            )
            self._reload_engine(camera_id)
            return f"Camera {camera.name!r} updated."

        return self._run("update the camera", act)

    def _typed_source(self, stored: str) -> str:
        """The source the form means: the field shows the stored source with its password
        masked, so that text unchanged keeps the stored source (password and all)."""
        typed = self.camera_source.value.strip()
        return stored if typed == mask_source(stored) else typed

    def toggle_camera_action(self) -> bool:
        def act():
            camera_id = int(self._selected(self.cameras_table, "id"))
            camera = self.app.db.get_camera(camera_id)
            camera = self.app.db.set_enabled(camera_id, not camera.enabled)
            self._reload_engine(camera_id)
            return f"Camera {camera.name!r} {'enabled' if camera.enabled else 'disabled'}."

        return self._run("enable or disable the camera", act)

    def delete_camera_action(self) -> bool:
        def act():
            camera_id = int(self._selected(self.cameras_table, "id"))
            camera = self.app.db.delete_camera(camera_id)
            self._reload_engine(camera_id)
            return f"Camera {camera.name!r} deleted (its recorded events are kept)."

        return self._run("delete the camera", act)

    def assign_camera_action(self) -> bool:
        def act():
            camera_id = int(self._selected(self.cameras_table, "id"))
            kind, name = self.camera_runs_on.value, self.camera_runner.value.strip()
            if kind != "this server" and not name:
                raise ZvpanelError(f"name the {kind} that should run the camera")
            where = {} if kind == "this server" else {kind: name}
            assignment = self.app.db.assign_camera(camera_id, **where)
            self._reload_engine(camera_id)
            return f"Camera {camera_id} runs on {_runs_on(assignment)}."

        return self._run("assign the camera", act)

    # users
    def add_user_action(self) -> bool:
        def act():
            user = self.app.db.create_user(
                self.user_name.value.strip(),
                self.user_password.value,
                is_admin=self.user_admin.value,
            )
            self.user_password.value = ""
            return f"User {user.username!r} added{' as admin' if user.is_admin else ''}."

        return self._run("add the user", act)

    def toggle_admin_action(self) -> bool:
        def act():
            username = str(self._selected(self.users_table, "username"))
            user = self.app.db.get_user(username)
            user = self.app.db.set_admin(username, not user.is_admin)
            return (
                f"{user.username!r} is {'now an admin' if user.is_admin else 'no longer an admin'}."
            )

        return self._run("change the admin flag", act)

    def reset_password_action(self) -> bool:
        def act():
            username = str(self._selected(self.users_table, "username"))
            self.app.db.reset_password(username, self.user_password.value)
            self.user_password.value = ""
            return f"Password of {username!r} reset; its old sessions have ended."

        return self._run("reset the password", act)

    def toggle_user_action(self) -> bool:
        def act():
            username = str(self._selected(self.users_table, "username"))
            user = self.app.db.get_user(username)
            user = self.app.db.set_disabled(username, not user.disabled)
            if user.disabled:
                return f"{user.username!r} disabled: it cannot log in, its sessions have ended."
            return f"{user.username!r} enabled: it can log in again."

        return self._run("disable or enable the user", act)

    def set_user_stores_action(self) -> bool:
        def act():
            username = str(self._selected(self.users_table, "username"))
            ids = self.app.db.set_user_stores(username, self.user_stores.value)
            ended = "Their open sessions end."
            if not ids:
                return f"{username!r} may see every store. {ended}"
            names = {s.id: s.name for s in self.app.db.list_stores()}
            shown = ", ".join(repr(names.get(i, str(i))) for i in ids)
            return f"{username!r} may see only: {shown}. {ended}"

        return self._run("set the user's stores", act)

    # ------------------------------------------------------------------ layout
    def __panel__(self) -> pn.viewable.Viewable:
        note = (
            []
            if self.admin
            else [
                pn.pane.Alert(
                    "You are a viewer: these tables are read-only. Only admins can change them.",
                    alert_type="warning",
                )
            ]
        )
        stores = pn.Column(
            self.stores_table,
            pn.Row(self.store_name, self.store_tz),
            pn.Row(self.add_store_button, self.update_store_button, self.delete_store_button),
        )
        cameras = pn.Column(
            self.cameras_table,
            pn.Row(self.camera_store, self.camera_name, self.camera_source, self.camera_enabled),
            pn.Row(
                self.add_camera_button,
                self.update_camera_button,
                self.toggle_camera_button,
                self.delete_camera_button,
            ),
            pn.Row(self.camera_runs_on, self.camera_runner, self.assign_camera_button),
        )
        users = pn.Column(
            self.users_table,
            pn.Row(self.user_name, self.user_password, self.user_admin),
            pn.Row(
                self.add_user_button,
                self.toggle_admin_button,
                self.reset_password_button,
                self.toggle_user_button,
            ),
            pn.Row(self.user_stores, self.user_stores_button),
        )
        return pn.Column(
            *note,
            self.status,
            pn.Tabs(
                ("Cameras", cameras),
                ("Stores", stores),
                ("Users", users),
                ("Nodes", self.nodes_table),
                ("Alerts", AlertSettings(self.app, self.claims)),
                dynamic=False,
            ),
            sizing_mode="stretch_width",
        )


def _runner(assignment: Assignment) -> str:
    return assignment.node if assignment.node is not None else str(assignment.pool)


def _runs_on(assignment: Assignment | None) -> str:
    if assignment is None:
        return "this server"
    kind = "node" if assignment.node is not None else "pool"
    return f"{kind} {_runner(assignment)}"


def _nodes_frame(nodes: list[NodeInfo]) -> pd.DataFrame:
    """One row per engine node: its last heartbeat, cameras, rates and outbox backlog."""
    now = datetime.now(timezone.utc)
    return pd.DataFrame(
        [
            {
                "node": n.name,
                "pool": n.pool or "",
                "last heartbeat": f"{(now - n.heartbeat_at).total_seconds():.0f} s ago",
                "cameras": ", ".join(map(str, n.cameras)),
                "rates (detections/s)": ", ".join(f"{c}: {r:.1f}" for c, r in n.rates.items()),
                "hardware limited": n.hardware_limited,
                "backlog (events)": n.backlog,
            }
            for n in nodes
        ],
        columns=NODE_COLUMNS,
    )


def admin_page(app=None, claims: Claims | None = None) -> pn.Column:
    return view_page("Admin", "/admin", AdminView, app, claims)
