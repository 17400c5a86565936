"""Settings, read once from ``ZVPANEL_*`` environment variables (and optionally a TOML file).

Every field has a default that runs on a fresh machine, except the JWT secret, which
must be set unless ``ZVPANEL_DEV_MODE=1`` says this is a local development server.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .display import mask_source
from .errors import ConfigError

__all__ = ["Settings", "TrackerKind", "load_settings", "get_settings", "ENV_PREFIX", "PROJECT_ROOT"]

ENV_PREFIX = "ZVPANEL_"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
#: Where a development server keeps the secret it generated (never used outside dev mode).
DEV_SECRET_FILE = ".dev_jwt_secret"
#: Most OpenVINO infer requests run at once (each holds its own buffers).
MAX_INFERENCE_REQUESTS = 16
#: URL schemes of ZVPANEL_DATABASE_URL that mean PostgreSQL (anything else is a SQLite path).
POSTGRES_SCHEMES = ("postgresql", "postgres")
#: Longest event retention accepted (ten years).
MAX_RETENTION_DAYS = 3650
#: Longest interval between two writes of camera activity (ZVPANEL_ACTIVITY_FLUSH_SECONDS).
MAX_ACTIVITY_FLUSH_SECONDS = 3600.0
#: Bounds of a crossing's crop (its longer side, pixels; ZVPANEL_CROPS_SIZE).
MIN_CROP_SIZE = 32
MAX_CROP_SIZE = 640
#: How report mails reach the SMTP server.
SmtpSecurity = Literal["starttls", "ssl", "none"]
_MAIL_ADDRESS = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[^@\s<>,;\"]+")
#: The trackers that ship with Ultralytics.
TrackerKind = Literal["bytetrack", "botsort"]


def is_postgres_url(target: str | Path) -> bool:
    return isinstance(target, str) and urlsplit(target).scheme in POSTGRES_SCHEMES


class Settings(BaseSettings):
    """All of zvpanel's settings. Environment: ``ZVPANEL_<FIELD NAME IN CAPITALS>``."""

    # allow_inf_nan=False: every float setting refuses NaN and infinity by name.
    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        validate_default=True,
        frozen=True,
        allow_inf_nan=False,
    )

    config_file: Path | None = Field(
        None, description="Optional TOML file with any of these settings (env vars win)."
    )
    db_path: Path = Field(
        Path("data/zvpanel.db"), description="SQLite database file; created and migrated on start."
    )
    # A secret: the URL may hold the PostgreSQL password.
    database_url: SecretStr | None = Field(
        None,
        description=(
            "The database: a SQLite file path, or postgresql://user:password@host:port/name. "
            "Created (tables) and migrated on start. Unset: db_path."
        ),
    )
    retention_days: int | None = Field(
        None,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description=(
            "Roll raw events older than this many days into hourly totals per line (charts "
            "and binned CSV stay exact; track ids and exact times go). Unset: keep every event."
        ),
    )
    activity_flush_seconds: float = Field(
        60.0,
        ge=1.0,
        le=MAX_ACTIVITY_FLUSH_SECONDS,
        description=(
            "How often the engine writes its cameras' activity (status changes, online time "
            "for the charts' coverage, heat grids). A process that dies loses at most this "
            "much coverage and heat."
        ),
    )
    crops: bool = Field(
        True,
        description=(
            "Keep a small JPEG of the person at each crossing, for the review page (/review)."
        ),
    )
    crops_size: int = Field(
        160,
        ge=MIN_CROP_SIZE,
        le=MAX_CROP_SIZE,
        description="Longer side of a crossing's crop in pixels (crops are only scaled down).",
    )
    crops_retention_days: int = Field(
        30,
        ge=1,
        le=MAX_RETENTION_DAYS,
        description=(
            "Delete crops older than this many days (sooner if their events are rolled up "
            "by ZVPANEL_RETENTION_DAYS); events and reviews stay."
        ),
    )
    crops_privacy_blur: bool = Field(
        True,
        description=(
            "Pixelate the head (top quarter of the person's box) in every crop, so nobody "
            "is recognisable in stored crops."
        ),
    )
    model: str = Field(
        "yolov8n.pt",
        description=(
            "YOLO weights: a name Ultralytics downloads (needs internet), or a path to a "
            ".pt file, an .onnx file or an OpenVINO model folder."
        ),
    )
    person_classes: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["person"],
        description="Model class names counted as people (comma separated).",
    )
    confidence: float = Field(
        0.25, gt=0.0, lt=1.0, description="Minimum detection confidence kept (0-1)."
    )
    imgsz: int = Field(
        640, ge=32, le=2048, description="Inference size in pixels (a multiple of 32)."
    )
    rect_inference: bool = Field(
        True,
        description=(
            "Feed an OpenVINO model each camera's aspect ratio (640x480 for 4:3, 640x384 for "
            "16:9) instead of a padded 640x640 square: less work per frame, the same boxes."
        ),
    )
    inference_requests: int = Field(
        0,
        ge=0,
        le=MAX_INFERENCE_REQUESTS,
        description=(
            "OpenVINO inferences run at once for all cameras together: 0 lets OpenVINO choose "
            "(every core busy), 1 runs one frame at a time."
        ),
    )
    motion_gating: bool = Field(
        True,
        description=(
            "Skip detection on a camera while nothing moves in its region of interest "
            "(the people seen last stay tracked; never while someone is near a line)."
        ),
    )
    tracker: TrackerKind = Field(
        "bytetrack", description="Tracker: 'bytetrack' or 'botsort' (both ship with Ultralytics)."
    )
    jwt_secret: SecretStr | None = Field(
        None, description="Secret that signs login sessions and API tokens (32+ characters)."
    )
    jwt_expiry_minutes: int = Field(
        12 * 60, ge=1, le=60 * 24 * 30, description="Lifetime of a session or API token."
    )
    dev_mode: bool = Field(
        False,
        description=(
            "Local development: generates a JWT secret if none is set and creates an "
            "admin/admin user on an empty database. Never use in production."
        ),
    )
    admin_username: str | None = Field(
        None, description="First admin, created at start-up if no user exists yet."
    )
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin (with ZVPANEL_ADMIN_USERNAME)."
    )
    sample_video: Path = Field(
        Path("data/vtest.avi"), description="Video of the demo camera created on a fresh database."
    )
    demo: bool = Field(True, description="Create a demo store and camera on an empty database.")
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Origins (host[:port]) allowed on the WebSocket feed, comma separated.",
    )
    # A secret: the URL may hold the broker's password.
    mqtt_url: SecretStr | None = Field(
        None,
        description=(
            "MQTT broker of the fleet's bus, mqtt://host:port, or mqtts:// for TLS, with "
            "user:password@ before the host if the broker asks for a login: this process "
            "publishes its cameras there and serves the cameras other processes publish. "
            "Unset: no bus."
        ),
    )
    mqtt_ca_file: Path | None = Field(
        None,
        description=(
            "CA certificate (PEM) that signed an mqtts:// broker's certificate, for a "
            "private CA. Unset: the system's CAs."
        ),
    )
    engine: bool = Field(
        True,
        description=(
            "Run the counting engine in this process. Off: a dashboard that only shows what "
            "the engines of other processes publish on the bus (needs ZVPANEL_MQTT_URL)."
        ),
    )
    reports_dir: Path | None = Field(
        None,
        description=(
            "Folder where a dashboard process writes each store's daily and weekly report "
            "(HTML with the charts, plus CSV) once the day or week is over (see "
            "ZVPANEL_SMTP_HOST to also mail them). Unset: reports only on demand "
            "(zvpanel report)."
        ),
    )
    smtp_host: str | None = Field(
        None, description="SMTP server that mails the reports. Unset: reports are not mailed."
    )
    smtp_port: int = Field(587, ge=1, le=65535, description="Port of ZVPANEL_SMTP_HOST.")
    smtp_security: SmtpSecurity = Field(
        "starttls",
        description="'starttls' (upgrade the connection), 'ssl' (TLS from the start) or 'none'.",
    )
    smtp_username: str | None = Field(None, description="SMTP login (optional).")
    smtp_password: SecretStr | None = Field(None, description="SMTP password (optional).")
    smtp_from: str | None = Field(None, description="Sender address of the report mails.")
    smtp_to: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Recipients of the report mails, comma separated."
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get(f"{ENV_PREFIX}CONFIG_FILE")
        if config_file:
            if not Path(config_file).is_file():
                raise ConfigError(
                    f"{ENV_PREFIX}CONFIG_FILE={config_file!r}: no such file. "
                    "Point it at a TOML file or unset it."
                )
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    @field_validator("person_classes", "allowed_origins", "smtp_to", mode="before")
    @classmethod
    def _split_commas(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("person_classes")
    @classmethod
    def _not_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("give at least one class name, e.g. 'person'")
        return value

    @field_validator("mqtt_url")
    @classmethod
    def _mqtt_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            from .bus.client import parse_mqtt_url  # paho is imported only when a bus is set

            parse_mqtt_url(value.get_secret_value())
        return value

    @field_validator("mqtt_ca_file")
    @classmethod
    def _ca_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{str(value)!r} is not a file")
        return value

    @field_validator("imgsz")
    @classmethod
    def _multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError(f"{value} is not a multiple of 32 (try {round(value / 32) * 32})")
        return value

    @field_validator("jwt_secret")
    @classmethod
    def _long_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError(
                "is shorter than 32 characters; generate one with "
                "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("smtp_from", "smtp_to")
    @classmethod
    def _addresses(cls, value):
        for address in [value] if isinstance(value, str) else value or []:
            # One plain address each: no display names, no line breaks into the headers.
            if not _MAIL_ADDRESS.fullmatch(address):
                raise ValueError(f"{address!r} is not an e-mail address like name@example.com")
        return value

    @model_validator(mode="after")
    def _smtp_complete(self) -> Settings:
        if self.smtp_host is not None and (self.smtp_from is None or not self.smtp_to):
            raise ValueError(
                f"{ENV_PREFIX}SMTP_HOST is set: also set {ENV_PREFIX}SMTP_FROM and "
                f"{ENV_PREFIX}SMTP_TO"
            )
        return self

    @model_validator(mode="after")
    def _admin_pair(self) -> Settings:
        if (self.admin_username is None) != (self.admin_password is None):
            raise ValueError(
                f"set both {ENV_PREFIX}ADMIN_USERNAME and {ENV_PREFIX}ADMIN_PASSWORD, or neither"
            )
        return self

    # ------------------------------------------------------------------ helpers
    def resolve(self, path: Path) -> Path:
        """A relative path is taken from the working directory."""
        return path if path.is_absolute() else Path.cwd() / path

    @property
    def db_file(self) -> Path:
        return self.resolve(self.db_path)

    @property
    def sample_video_file(self) -> Path:
        """The demo video: from the working directory, else the copy in this project's data/."""
        path = self.resolve(self.sample_video)
        shipped = PROJECT_ROOT / self.sample_video
        if not path.exists() and not self.sample_video.is_absolute() and shipped.exists():
            return shipped
        return path.resolve()

    @property
    def database(self) -> str | Path:
        """What :class:`~zvpanel.storage.Database` opens: ZVPANEL_DATABASE_URL (a
        ``postgresql://`` URL or a SQLite path), else the ZVPANEL_DB_PATH file."""
        if self.database_url is None:
            return self.db_file
        url = self.database_url.get_secret_value()
        return url if is_postgres_url(url) else self.resolve(Path(url))

    @property
    def data_dir(self) -> Path:
        return self.db_file.parent

    def secret(self) -> str:
        """The JWT secret; stops with a clear message when none is configured outside dev mode."""
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        if not self.dev_mode:
            raise ConfigError(
                f"{ENV_PREFIX}JWT_SECRET is not set. Set it to a random string of 32+ "
                "characters (python -c 'import secrets; print(secrets.token_urlsafe(32))'), "
                f"or set {ENV_PREFIX}DEV_MODE=1 on a development machine."
            )
        # Development only: a random secret kept beside the database, so sessions survive
        # a restart. It is generated, never hard-coded.
        path = self.data_dir / DEV_SECRET_FILE
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(32))
        secret = path.read_text().strip()
        if len(secret) < 32:  # an empty key would let anyone sign tokens
            raise ConfigError(
                f"{path} holds no secret of 32+ characters: delete it and start again "
                "to make a new one."
            )
        return secret


def _write_private(path: Path, text: str) -> None:
    """Create ``path`` readable by its owner only, holding ``text`` from its first moment.

    Written under a temporary name (``mkstemp``: mode 0600) and then linked to ``path``,
    so no process ever reads it empty; if another process linked it first, that one's
    secret is kept.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f"{path.name}.")
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        os.unlink(temporary)


def _describe(error: ValidationError) -> str:
    lines = ["Invalid zvpanel settings:"]
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "settings"
        env = f"{ENV_PREFIX}{field.upper()}"
        value = item.get("input")
        if isinstance(value, str):
            value = mask_source(value)  # a URL's password is not shown
        shown = "" if isinstance(value, dict) or field == "jwt_secret" else f" (got {value!r})"
        lines.append(f"  {env}{shown}: {item['msg']}")
    lines.append("Fix the environment variable(s) above and start again.")
    return "\n".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Read and validate the settings; raise :class:`ConfigError` naming each bad one."""
    try:
        return Settings(**overrides)
    except ValidationError as error:
        raise ConfigError(_describe(error)) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (read once)."""
    return load_settings()
