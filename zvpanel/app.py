"""Wiring: settings -> database -> bootstrap -> hub -> event writer -> retention ->
detector -> engine.

``App.start()`` is the list of ``start_*`` steps in order and ``App.stop()`` undoes them
in reverse. A server process uses one :func:`get_app` (started once, thread-safe): the
Panel ``--setup`` script and the WebSocket routes both call it.
"""

from __future__ import annotations

import atexit
import logging
import threading
from typing import TYPE_CHECKING

from .config import Settings, get_settings
from .crops import CropSettings
from .detection import YoloDetector
from .engine import Engine, ResultHub
from .engine.recorder import ActivityRecorder, ActivitySink
from .storage import Database, EventWriter, bootstrap
from .storage.retention import RetentionJob

if TYPE_CHECKING:
    from .alerts import AlertJob
    from .bus import Bus
    from .store_report import ReportJob

__all__ = ["App", "get_app", "stop_app"]

log = logging.getLogger(__name__)


class App:
    """Everything a zvpanel server runs, built from one :class:`Settings`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db: Database | None = None
        self.hub: ResultHub | None = None
        self.writer: EventWriter | None = None
        self.retention: RetentionJob | None = None
        self.alerts: AlertJob | None = None
        self.reports: ReportJob | None = None
        self.detector: YoloDetector | None = None
        self.engine: Engine | None = None
        self.recorder: ActivityRecorder | None = None
        self.bus: Bus | None = None
        self.started = False

    # ------------------------------------------------------------------ start / stop
    def start(self) -> App:
        try:
            self.check_secret()
            self.start_database()
            self.start_bootstrap()
            self.start_hub()
            self.start_event_writer()
            self.start_retention()
            self.start_alerts()
            self.start_reports()
            self.start_detector()
            self.start_recorder()
            self.start_engine()
            self.start_bus()
        except BaseException:
            self.stop()  # undo the steps that did run
            raise
        self.started = True
        log.info("zvpanel started (database %s)", self.db.location)
        return self

    def stop(self) -> None:
        self.stop_bus()
        self.stop_engine()
        self.stop_recorder()
        self.stop_reports()
        self.stop_alerts()
        self.stop_retention()
        self.stop_event_writer()
        self.stop_database()
        self.started = False

    def __enter__(self) -> App:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ steps
    def check_secret(self) -> None:
        """Stop now, naming ZVPANEL_JWT_SECRET, if no login could be signed (outside dev
        mode), rather than start and answer every login with an error."""
        self.settings.secret()

    def start_database(self) -> None:
        """Open the database: SQLite or PostgreSQL (created and migrated on first use)."""
        self.db = Database(self.settings.database)

    def start_bootstrap(self) -> None:
        """First admin user, demo store and camera on an empty database."""
        bootstrap(self.db, self.settings)

    def start_hub(self) -> None:
        self.hub = ResultHub()

    def start_event_writer(self) -> None:
        """The one thread that writes events to SQLite."""
        self.writer = EventWriter(self.db)  # its thread starts here

    def start_retention(self) -> None:
        """Roll old events into hourly totals (if a period is set) and delete old crops,
        now and every hour. Crops are deleted even while ZVPANEL_CROPS is off: some may
        have been stored before."""
        settings = self.settings
        self.retention = RetentionJob(
            self.db, settings.retention_days, crop_days=settings.crops_retention_days
        ).start()

    def start_alerts(self) -> None:
        """Compare occupancy with the limits every few seconds and send their webhooks
        (every dashboard process may: each crossing is recorded, and sent, once)."""
        from .alerts import AlertJob, WebhookSender

        self.alerts = AlertJob(self.db, WebhookSender(self.db)).start()

    def start_reports(self) -> None:
        """With ZVPANEL_REPORTS_DIR: write (and mail) each store's finished days and
        weeks (every dashboard process may: each report is claimed, and written, once)."""
        if self.settings.reports_dir is not None:
            from .store_report import ReportJob

            self.reports = ReportJob(self.db, self.settings).start()

    def stop_reports(self) -> None:
        if self.reports is not None:
            self.reports.stop()
            self.reports = None

    def stop_alerts(self) -> None:
        if self.alerts is not None:
            self.alerts.stop()
            self.alerts = None

    def start_detector(self) -> None:
        """Load the model once (raises ModelError naming ZVPANEL_MODEL if it is missing)."""
        if not self.settings.engine:
            return
        self.detector = YoloDetector.from_settings(self.settings)
        self.detector.warmup()

    def start_engine(self) -> None:
        if not self.settings.engine:  # a dashboard of the bus: other processes count
            return
        self.engine = Engine(
            self.db,
            self.recorder.wrap(self.hub) if self.recorder is not None else self.hub,
            self.writer,
            self.detector,
            tracker_kind=self.settings.tracker,
            motion_gating=self.settings.motion_gating,
            owns=self.runs_camera,
            crops=CropSettings.from_settings(self.settings),
        )
        self.engine.start()

    def start_recorder(self, sink: ActivitySink | None = None, node: str | None = None) -> None:
        """Record the engine's status changes, online time and heat grids (for charts that
        know about downtime, and heat maps); into the database unless ``sink`` says else."""
        if not self.settings.engine:
            return
        self.recorder = ActivityRecorder(
            sink or self.db,
            self.store_of,
            node=node,
            flush_seconds=self.settings.activity_flush_seconds,
        ).start()

    def stop_recorder(self) -> None:
        """After the engine: its cameras' last statuses are written too."""
        if self.recorder is not None:
            self.recorder.stop()
            self.recorder = None

    def store_of(self, camera_id: int) -> int:
        """A camera's store: its worker knows it without asking a database that may be down."""
        worker = self.engine.worker(camera_id) if self.engine is not None else None
        if worker is not None:
            return worker.camera.store_id
        return self.db.get_camera(camera_id).store_id

    def runs_camera(self, camera_id: int) -> bool:
        """The dashboards' own engine runs every camera not assigned to a node or pool."""
        return self.db.camera_assignment(camera_id) is None

    def start_bus(self, feed: bool = True) -> None:
        """With ZVPANEL_MQTT_URL: publish this engine's cameras and, with ``feed`` (this
        process serves dashboards), serve the cameras other processes publish."""
        if self.settings.mqtt_url is not None:
            from .bus import Bus  # paho is imported only when a bus is set

            self.bus = Bus.for_app(self, feed=feed)

    def stop_bus(self) -> None:
        if self.bus is not None:
            self.bus.stop()
            self.bus = None

    def stop_engine(self) -> None:
        if self.engine is not None:
            self.engine.stop()
            self.engine = None

    def stop_retention(self) -> None:
        if self.retention is not None:
            self.retention.stop()
            self.retention = None

    def stop_event_writer(self) -> None:
        """Write what is queued, then stop the writer thread."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def stop_database(self) -> None:
        if self.db is not None:
            self.db.close()
            self.db = None


_app: App | None = None
_app_lock = threading.Lock()
_atexit_registered = False


def _register_atexit() -> None:
    global _atexit_registered
    if not _atexit_registered:
        atexit.register(stop_app)
        _atexit_registered = True


def get_app(settings: Settings | None = None) -> App:
    """The process-wide :class:`App`, started on the first call (later calls return it)."""
    global _app
    with _app_lock:
        if _app is None:
            _app = App(settings or get_settings()).start()
            _register_atexit()
        return _app


def stop_app() -> None:
    """Stop the process-wide app (at exit, or in tests); the next get_app() starts anew."""
    global _app
    with _app_lock:
        app, _app = _app, None
    if app is not None:
        app.stop()
