"""Log in to zvpanel and print counts and entry/exit events as they happen.

    python examples/ws_client.py --url http://127.0.0.1:5006 --user admin --password admin
    python examples/ws_client.py --camera 1          # one camera's detections and counts
    python examples/ws_client.py --events-only       # only entries and exits

Uses only Tornado (a zvpanel dependency): POST /api/token for a bearer token, then the
WebSocket feed with ``Authorization: Bearer``: ``/ws/events`` for every entry and
exit, ``/ws/detections`` at one message per second for the running counts. Stops with Ctrl-C (or after --seconds).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import json
import sys
from urllib.parse import urlencode, urlsplit

from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

#: Counts are printed at most this often per camera (the feed sends up to one per frame).
COUNTS_EVERY_S = 1.0


async def get_token(base_url: str, username: str, password: str) -> str:
    response = await AsyncHTTPClient().fetch(
        f"{base_url}/api/token",
        method="POST",
        body=urlencode({"username": username, "password": password}),
        raise_error=False,
    )
    body = json.loads(response.body or b"{}")
    if response.code != 200:
        raise SystemExit(f"login failed ({response.code}): {body.get('message', response.reason)}")
    return body["access_token"]


def ws_url(base_url: str, path: str, **query: str) -> str:
    parts = urlsplit(base_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}{path}" + (f"?{urlencode(query)}" if query else "")


async def follow(url: str, token: str) -> None:
    request = HTTPRequest(url, headers={"Authorization": f"Bearer {token}"})
    conn = await websocket_connect(request)
    last_counts: dict[int, str] = {}
    while True:
        raw = await conn.read_message()
        if raw is None:
            print(f"closed: {conn.close_code} {conn.close_reason}", file=sys.stderr)
            return
        message = json.loads(raw)
        kind = message["type"]
        if kind == "hello":
            print(
                f"connected to {message['endpoint']} as {message['user']}, cameras {message['camera_ids']}"
            )
        elif kind == "error":
            print(f"error: {message['message']}", file=sys.stderr)
        elif kind == "event":
            print_event(message["camera_id"], message["timestamp"], message)
        elif kind == "status":  # e.g. reconnecting, and why; "online" once frames come again
            reason = f": {message['reason']}" if message["reason"] else ""
            camera = f"camera {message['camera_id']}"
            print(f"{message['timestamp']} {camera} {message['state']}{reason}")
        elif kind == "detections":
            # Events come from /ws/events, which is never rate-limited; here only counts.
            counts = ", ".join(
                f"{line}: {c['entries']} in / {c['exits']} out"
                for line, c in message["counts"].items()
            )
            if last_counts.get(message["camera_id"]) != counts:
                last_counts[message["camera_id"]] = counts
                print(
                    f"{message['timestamp']} camera {message['camera_id']} "
                    f"[{message['status']} {message['actual_fps']:.1f}/{message['target_fps']:.1f} fps] "
                    f"{len(message['detections'])} people | {counts}"
                )


def print_event(camera_id: int, timestamp: str, event: dict) -> None:
    print(
        f"{timestamp} camera {camera_id} {event['direction'].upper():5} "
        f"line {event['line_id']} track #{event['track_id']}"
    )


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:5006", help="zvpanel server")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", help="asked for when not given")
    parser.add_argument("--camera", type=int, help="one camera (default: all cameras)")
    parser.add_argument("--events-only", action="store_true", help="only entries and exits")
    parser.add_argument("--seconds", type=float, help="stop after this long")
    args = parser.parse_args()
    password = args.password if args.password is not None else getpass.getpass()
    token = await get_token(args.url, args.user, password)
    rate = {"max_fps": str(1 / COUNTS_EVERY_S)}
    urls = [ws_url(args.url, "/ws/events")]
    if args.camera is not None and not args.events_only:
        urls.append(ws_url(args.url, f"/ws/detections/{args.camera}", **rate))
    elif not args.events_only:
        urls.append(ws_url(args.url, "/ws/detections", **rate))
    with contextlib.suppress(asyncio.TimeoutError):
        await asyncio.wait_for(asyncio.gather(*(follow(url, token) for url in urls)), args.seconds)


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
