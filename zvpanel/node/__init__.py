"""Fleet mode: ``zvpanel node`` runs the engine for the cameras assigned to it, buffers
events in a local outbox and forwards them to the central database exactly once."""

from __future__ import annotations

from .app import HEARTBEAT_SECONDS, NodeApp
from .leases import LEASE_SECONDS, RECONNECT_GRACE_SECONDS, RENEW_SECONDS, Leases
from .outbox import FORWARD_BATCH, Forwarder, Outbox

__all__ = [
    "NodeApp",
    "Outbox",
    "Forwarder",
    "Leases",
    "HEARTBEAT_SECONDS",
    "LEASE_SECONDS",
    "RENEW_SECONDS",
    "RECONNECT_GRACE_SECONDS",
    "FORWARD_BATCH",
]
