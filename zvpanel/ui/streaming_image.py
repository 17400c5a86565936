"""``StreamingImage``: a Panel component showing a camera's live MJPEG stream.

The browser's ``<img>`` decodes ``multipart/x-mixed-replace`` natively, so the JPEG
bytes travel as they are (no base64, no raw pixels, no Bokeh messages per frame). The
server encodes frames only while an ``<img>`` has the stream open: the component clears
its ``src`` when it leaves the page, which closes the connection. If the connection
drops (server restart, network) the image reconnects after :data:`RETRY_MS`.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

__all__ = ["StreamingImage", "stream_url", "RETRY_MS"]

#: Wait before reopening a dropped stream (milliseconds).
RETRY_MS = 2000


def stream_url(camera_id: int) -> str:
    """Path of a camera's MJPEG stream (see :mod:`zvpanel.web.mjpeg`)."""
    return f"/stream/{int(camera_id)}.mjpg"


class StreamingImage(JSComponent):
    """Live video of one camera: ``StreamingImage(camera_id=1)``."""

    camera_id = param.Integer(default=None, allow_None=True, doc="Camera to show.")
    src = param.String(default="", doc="Stream URL (set from camera_id).")
    alt = param.String(default="live video", doc="Text for screen readers.")
    retry_ms = param.Integer(default=RETRY_MS, bounds=(100, 60_000), doc="Reconnect delay.")

    _esm = """
    export function render({ model, el }) {
      const img = document.createElement("img");
      img.className = "zv-stream";
      img.style.width = "100%";
      img.style.height = "auto";
      img.style.display = "block";
      img.style.background = "#111";
      img.alt = model.alt;
      let timer = null;
      function connect() {
        clearTimeout(timer);
        if (!model.src) { img.removeAttribute("src"); return; }
        // A fresh URL each time, so no cache ever answers for a live stream.
        const sep = model.src.includes("?") ? "&" : "?";
        img.src = model.src + sep + "_=" + Date.now();
      }
      img.addEventListener("error", () => {
        clearTimeout(timer);
        timer = setTimeout(connect, model.retry_ms);
      });
      model.on("src", connect);
      model.on("remove", () => {
        clearTimeout(timer);
        img.removeAttribute("src");  // closes the connection: the server stops encoding
      });
      connect();
      return img;
    }
    """

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._sync_src()

    @param.depends("camera_id", watch=True)
    def _sync_src(self) -> None:
        self.src = "" if self.camera_id is None else stream_url(self.camera_id)
