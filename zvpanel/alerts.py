"""Occupancy alerts: raise a limit when too many people are inside, clear it with
hysteresis, POST a webhook once per crossing.

Where it runs
    :class:`AlertJob` runs in each dashboard process (``App.start_alerts``) and reads
    occupancy from the database, where every engine's events land (the embedded one's
    and, in fleet mode, every node's), so it sees the same numbers wherever it runs.
    Nodes evaluate nothing. Several dashboard processes may all evaluate: the state
    change is a conditional update in the database
    (:meth:`~zvpanel.storage.database.Database.record_alert_transition`), and only the
    process whose update flipped the state records the transition and sends its webhook.

Webhooks
    :class:`WebhookSender` posts JSON from its own thread (the evaluator never waits on a
    slow receiver), retrying network errors, 429 and 5xx answers with exponential
    backoff; each POST carries an ``Idempotency-Key`` so a receiver can drop a retry it
    already got. The outcome (sent/failed, attempts) is stored with the transition.
    Logs name a webhook by scheme and host only: its path or query is often the secret.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import httpx

from .periodic import PeriodicJob
from .storage import Database
from .storage.alerts import AlertTransition, OccupancyLimit, webhook_label
from .storage.overview import occupancy_now

__all__ = [
    "AlertJob",
    "WebhookSender",
    "Webhook",
    "next_state",
    "limits_occupancy",
    "webhook_payload",
    "ALERT_INTERVAL_SECONDS",
    "WEBHOOK_ATTEMPTS",
    "WEBHOOK_BACKOFF_SECONDS",
    "WEBHOOK_TIMEOUT_SECONDS",
]

log = logging.getLogger(__name__)

#: How often a dashboard process compares occupancy with the limits.
ALERT_INTERVAL_SECONDS = 2.0
#: Tries per webhook (the first and its retries).
WEBHOOK_ATTEMPTS = 5
#: Wait before the first retry; each further retry waits twice as long.
WEBHOOK_BACKOFF_SECONDS = 1.0
#: Longest wait between two tries.
WEBHOOK_MAX_BACKOFF_SECONDS = 60.0
#: Connect/read timeout of one POST.
WEBHOOK_TIMEOUT_SECONDS = 5.0
#: Webhooks waiting to be sent; beyond it a new one is recorded as failed, not queued.
WEBHOOK_QUEUE_SIZE = 256
#: How far past this process's clock zone events still count as "now" (other machines'
#: clocks differ a little).
CLOCK_SLACK_SECONDS = 60.0
#: Answers worth trying again: the receiver is busy or broken for now.
_RETRY_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


def next_state(exceeded: bool, people: int, limit: OccupancyLimit) -> bool:
    """The alert state after seeing ``people`` inside: raised above the limit, cleared
    only at ``limit.clear_at`` or below (in between, it stays as it was)."""
    if exceeded:
        return people > limit.clear_at
    return people > limit.max_people


def webhook_payload(db: Database, transition: AlertTransition, limit: OccupancyLimit) -> dict:
    """The JSON body of a transition's webhook."""
    return {
        "event": f"occupancy_{transition.kind}",
        "transition_id": transition.id,
        "store_id": transition.store_id,
        "store": db.get_store(transition.store_id).name,
        "camera_id": transition.camera_id or None,
        "zone_id": transition.zone_id or None,
        "occupancy": transition.occupancy,
        "max_people": limit.max_people,
        "clear_at": limit.clear_at,
        "at": transition.at.isoformat().replace("+00:00", "Z"),
    }


@dataclass(frozen=True)
class Webhook:
    """One POST to send: the body and which transition it reports."""

    transition_id: int
    url: str
    payload: dict


class WebhookSender:
    """A thread that POSTs webhooks, retrying with exponential backoff.

    Try ``attempts`` times at most; the n-th retry waits ``backoff * 2 ** (n - 1)``
    seconds (at most :data:`WEBHOOK_MAX_BACKOFF_SECONDS`). Each outcome is stored with
    the transition (``db.finish_webhook``). ``delays`` keeps the waits it made, newest last.
    """

    def __init__(
        self,
        db: Database,
        *,
        attempts: int = WEBHOOK_ATTEMPTS,
        backoff: float = WEBHOOK_BACKOFF_SECONDS,
        timeout: float = WEBHOOK_TIMEOUT_SECONDS,
    ) -> None:
        self.db = db
        self.attempts = attempts
        self.backoff = backoff
        self.delays: list[float] = []
        self._client = httpx.Client(timeout=timeout, follow_redirects=False)
        self._queue: queue.Queue[Webhook | None] = queue.Queue(WEBHOOK_QUEUE_SIZE)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="zvpanel-webhooks", daemon=True)
        self._thread.start()

    def send(self, webhook: Webhook) -> None:
        """Queue ``webhook``; never blocks (a full queue records it as failed)."""
        try:
            self._queue.put_nowait(webhook)
        except queue.Full:
            log.error(
                "webhook to %s dropped: %d waiting", webhook_label(webhook.url), WEBHOOK_QUEUE_SIZE
            )
            self.db.finish_webhook(webhook.transition_id, sent=False, attempts=0)

    def stop(self) -> None:
        """Stop now, also between retries (what is unsent stays ``pending`` in the database)."""
        self._stop.set()
        self._queue.put(None)
        self._thread.join()
        self._client.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            webhook = self._queue.get()
            if webhook is None:
                return
            try:
                self._deliver(webhook)
            except Exception:  # top of the thread loop: the next webhook still goes
                log.exception("webhook to %s failed", webhook_label(webhook.url))

    def _deliver(self, webhook: Webhook) -> None:
        for attempt in range(1, self.attempts + 1):
            if attempt > 1:
                delay = min(self.backoff * 2 ** (attempt - 2), WEBHOOK_MAX_BACKOFF_SECONDS)
                self.delays.append(delay)
                if self._stop.wait(delay):
                    return  # stopping: left pending
            retry = self._post(webhook, attempt)
            if retry is None:
                self.db.finish_webhook(webhook.transition_id, sent=True, attempts=attempt)
                return
            if not retry:
                break
        self.db.finish_webhook(webhook.transition_id, sent=False, attempts=attempt)

    def _post(self, webhook: Webhook, attempt: int) -> bool | None:
        """One try: None when delivered, else whether trying again may help."""
        label = webhook_label(webhook.url)
        headers = {"Idempotency-Key": f"zvpanel-alert-{webhook.transition_id}"}
        try:
            answer = self._client.post(webhook.url, json=webhook.payload, headers=headers)
        except httpx.HTTPError as error:
            log.warning("webhook to %s, try %d: %s", label, attempt, type(error).__name__)
            return True
        if answer.is_success:
            log.info("webhook to %s sent (try %d)", label, attempt)
            return None
        log.warning("webhook to %s, try %d: HTTP %d", label, attempt, answer.status_code)
        return answer.status_code in _RETRY_STATUS


class AlertJob(PeriodicJob):
    """A thread comparing each limit's occupancy with the limit every ``interval`` seconds
    and acting on the crossings this process records (see the module's docstring)."""

    thread_name = "zvpanel-alerts"
    failure = "alerts: evaluating the occupancy limits failed"

    def __init__(
        self,
        db: Database,
        sender: WebhookSender,
        interval: float = ALERT_INTERVAL_SECONDS,
    ) -> None:
        super().__init__(interval)
        self.db = db
        self.sender = sender

    def stop(self) -> None:
        super().stop()
        self.sender.stop()

    def run_once(self) -> list[AlertTransition]:
        """Evaluate every limit once; the transitions this process recorded."""
        recorded = []
        limits = self.db.occupancy_limits()
        for limit, people in zip(limits, limits_occupancy(self.db, limits), strict=True):
            if next_state(limit.exceeded, people, limit) == limit.exceeded:
                continue
            transition = self.db.record_alert_transition(limit, not limit.exceeded, people)
            if transition is None:  # another process recorded this crossing
                continue
            recorded.append(transition)
            log.info(
                "store %d%s: occupancy %d, limit %d: %s",
                limit.store_id,
                f" zone {limit.zone_id!r}" if limit.is_zone else "",
                people,
                limit.max_people,
                transition.kind,
            )
            if limit.webhook_url:
                payload = webhook_payload(self.db, transition, limit)
                self.sender.send(Webhook(transition.id, limit.webhook_url, payload))
        return recorded


def limits_occupancy(
    db: Database, limits: list[OccupancyLimit], now: datetime | None = None
) -> list[int]:
    """The occupancy each limit watches at ``now``: its store's today (entries minus exits
    since local midnight, one query for all stores: the overview's ``occupancy_now``), or
    its zone's people inside (the zone's stored enter and leave events)."""
    now = now or datetime.now(timezone.utc)
    store_ids = sorted({x.store_id for x in limits if not x.is_zone})
    inside = occupancy_now(db, [db.get_store(i) for i in store_ids], now)
    # A little past now for zones: a node's clock may run slightly ahead of this one.
    until = now + timedelta(seconds=CLOCK_SLACK_SECONDS)
    return [
        db.zone_occupancy_before(x.camera_id, x.zone_id, until) if x.is_zone else inside[x.store_id]
        for x in limits
    ]
