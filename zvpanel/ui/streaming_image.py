"""``StreamingImage``: a Panel component showing a camera's live video with its overlay.

The browser opens the camera's binary WebSocket feed (:mod:`zvpanel.web.video`): each
message is one processed frame, a small JSON header (detections, counts, calibration)
and the raw JPEG. The component decodes the JPEG off the main thread
(``createImageBitmap``), paints it on a ``<canvas>`` and draws the overlay there: the
region of interest, each counting line with its entry arrow and counts, and every person
with track id and confidence. So:

- JPEG bytes travel as they are (no base64, no raw pixels, no Bokeh message per frame);
- the server encodes frames only while a pane is open (closing the pane closes the
  socket) and never draws: the boxes come with the very frame they belong to;
- a slow client gets fewer frames, never a queue: the server sends the newest frame once
  the socket took the previous one, and the browser decodes only the newest frame that
  arrived while it was busy.

If the connection drops (server restart, network) the pane reconnects after
:data:`RETRY_MS`. A refusal (unknown camera, expired login) is shown, not retried. A
camera that is not online (disabled, reconnecting, offline) says so over the video, with
the reason the server sends in its ``status`` message.
"""

from __future__ import annotations

import param
from panel.custom import JSComponent

__all__ = ["StreamingImage", "stream_url", "RETRY_MS"]

#: Wait before reopening a dropped stream (milliseconds).
RETRY_MS = 2000


def stream_url(camera_id: int) -> str:
    """Path of a camera's video feed (see :mod:`zvpanel.web.video`)."""
    return f"/ws/video/{int(camera_id)}"


class StreamingImage(JSComponent):
    """Live video of one camera: ``StreamingImage(camera_id=1)``."""

    camera_id = param.Integer(default=None, allow_None=True, doc="Camera to show.")
    src = param.String(default="", doc="Feed path (set from camera_id).")
    alt = param.String(default="live video", doc="Text for screen readers.")
    retry_ms = param.Integer(default=RETRY_MS, bounds=(100, 60_000), doc="Reconnect delay.")

    _esm = """
    // Colours of zvpanel.annotate, so the pane looks like the server's annotated frames.
    const ROI = "#00c8ff", LINE = "#ff0000", ENTRY = "#00c800";
    const BOX = "#ffc800", UNTRACKED = "#a0a0a0", TEXT = "#ffffff";
    const ZONE = "#c850c8", QUEUE = "#ff8c00";
    const POLICY = 1008;  // the server refused: unknown camera, expired login

    function label(ctx, text, x, y, colour, font) {
      // Text on a filled background, kept inside the image.
      ctx.font = font;
      const w = ctx.measureText(text).width + 6, h = parseInt(font, 10) + 4;
      x = Math.min(Math.max(0, x), Math.max(0, ctx.canvas.width - w));
      y = Math.min(Math.max(h, y), ctx.canvas.height);
      ctx.fillStyle = colour;
      ctx.fillRect(x, y - h, w, h);
      ctx.fillStyle = TEXT;
      ctx.fillText(text, x + 3, y - 4);
    }

    function arrow(ctx, [x1, y1], [x2, y2], width) {
      const angle = Math.atan2(y2 - y1, x2 - x1), head = Math.max(8, 4 * width);
      ctx.beginPath();
      ctx.moveTo(x1, y1);
      ctx.lineTo(x2, y2);
      ctx.lineTo(x2 - head * Math.cos(angle - 0.45), y2 - head * Math.sin(angle - 0.45));
      ctx.moveTo(x2, y2);
      ctx.lineTo(x2 - head * Math.cos(angle + 0.45), y2 - head * Math.sin(angle + 0.45));
      ctx.stroke();
    }

    function overlay(ctx, header) {
      const big = Math.max(header.width, header.height);
      const width = Math.max(1, Math.round(big / 400));
      const font = Math.max(12, Math.round(big / 48)) + "px system-ui, sans-serif";
      ctx.lineCap = "round";
      const roi = header.calibration.roi;
      if (roi) {
        ctx.strokeStyle = ROI;
        ctx.lineWidth = width;
        ctx.strokeRect(roi[0], roi[1], roi[2] - roi[0], roi[3] - roi[1]);
      }
      for (const zone of header.calibration.zones || []) {
        const colour = zone.queue ? QUEUE : ZONE, z = (header.zones || {})[zone.id];
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.beginPath();
        zone.points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
        ctx.closePath();
        ctx.stroke();
        let text = zone.id;
        if (z) text += `  ${z.occupancy} inside` +
          (zone.queue ? `  wait ${Math.round(z.longest_inside_s)}s` : "");
        const top = zone.points.reduce((a, b) => (b[1] < a[1] ? b : a));
        label(ctx, text, top[0], top[1], colour, font);
      }
      for (const line of header.calibration.lines) {
        ctx.strokeStyle = LINE;
        ctx.lineWidth = width + 1;
        ctx.beginPath();
        ctx.moveTo(...line.start);
        ctx.lineTo(...line.end);
        ctx.stroke();
        ctx.strokeStyle = ENTRY;
        arrow(ctx, line.entry_arrow[0], line.entry_arrow[1], width + 1);
        const c = header.counts[line.id] || {entries: 0, exits: 0};
        label(ctx, `${line.id}  in ${c.entries}  out ${c.exits}`,
              line.start[0] + width, line.start[1] + 4 * width + parseInt(font, 10), LINE, font);
      }
      const d = header.detections, several = header.labels.length > 1;
      for (let i = 0; i < d.xyxy.length; i++) {
        const [x1, y1, x2, y2] = d.xyxy[i], track = d.tracker_id[i];
        const colour = track >= 0 ? BOX : UNTRACKED;
        ctx.strokeStyle = colour;
        ctx.lineWidth = width;
        ctx.strokeRect(x1, y1, x2 - x1, y2 - y1);
        const parts = track >= 0 ? ["#" + track] : [];
        if (several) parts.push(header.labels[d.class_id[i]]);
        parts.push(d.confidence[i].toFixed(2));
        label(ctx, parts.join(" "), x1, y1, colour, font);
      }
    }

    function parse(buffer) {
      const size = new DataView(buffer).getUint32(0);
      const header = JSON.parse(new TextDecoder().decode(new Uint8Array(buffer, 4, size)));
      const jpeg = new Blob([new Uint8Array(buffer, 4 + size)], {type: "image/jpeg"});
      return {header, jpeg};
    }

    export function render({ model, el }) {
      const box = document.createElement("div");
      box.style.position = "relative";
      const canvas = document.createElement("canvas");
      canvas.className = "zv-stream";
      canvas.setAttribute("role", "img");
      canvas.setAttribute("aria-label", model.alt);
      canvas.width = 768;
      canvas.height = 432;
      canvas.style.cssText = "width:100%;height:auto;display:block;background:#111";
      const note = document.createElement("div");
      note.className = "zv-stream-note";
      note.style.cssText = "position:absolute;left:8px;top:8px;padding:2px 8px;" +
        "background:rgba(0,0,0,.65);color:#fff;font:13px system-ui,sans-serif;border-radius:4px";
      box.append(canvas, note);
      const ctx = canvas.getContext("2d");

      let socket = null, timer = null, busy = false, waiting = null, closed = false;
      // Why the camera shows no live video, from the server's "status" messages ("" while
      // it is online): kept over a frame shown from before, e.g. of a camera now disabled.
      let state = "";
      function say(text) { note.textContent = text; note.style.display = text ? "" : "none"; }
      function status(message) {
        state = message.state === "online" ? "" :
          message.state + (message.reason ? ": " + message.reason : "");
        note.dataset.state = message.state;
        say(state);
      }

      async function show(message) {
        // Decode and paint one frame; a frame that arrived meanwhile replaces any older one.
        busy = true;
        try {
          const {header, jpeg} = parse(message);
          const bitmap = await createImageBitmap(jpeg);
          if (closed) { bitmap.close(); return; }
          if (canvas.width !== bitmap.width || canvas.height !== bitmap.height) {
            canvas.width = bitmap.width;
            canvas.height = bitmap.height;
          }
          ctx.drawImage(bitmap, 0, 0);
          bitmap.close();
          overlay(ctx, header);
          canvas.dataset.frame = header.frame;
          canvas.dataset.camera = header.camera_id;
          say(state);
        } catch (error) {
          say("cannot show a frame: " + error.message);
        } finally {
          busy = false;
        }
        if (waiting !== null) {
          const next = waiting;
          waiting = null;
          show(next);
        }
      }

      function connect() {
        clearTimeout(timer);
        if (socket) { socket.onclose = null; socket.close(1000); socket = null; }
        if (!model.src || closed) { say(model.src ? "" : "no camera"); return; }
        const scheme = location.protocol === "https:" ? "wss://" : "ws://";
        socket = new WebSocket(scheme + location.host + model.src);
        socket.binaryType = "arraybuffer";
        socket.onmessage = (event) => {
          if (typeof event.data === "string") {  // the server's error or status message
            const message = JSON.parse(event.data);
            if (message.type === "error") say(message.message);
            if (message.type === "status") status(message);
            return;
          }
          if (busy) waiting = event.data; else show(event.data);
        };
        socket.onclose = (event) => {
          socket = null;
          if (closed) return;
          if (event.code === POLICY) { say(event.reason || "the server refused the video"); return; }
          say("video connection lost: reconnecting");
          timer = setTimeout(connect, model.retry_ms);
        };
      }

      model.on("src", connect);
      model.on("remove", () => {
        closed = true;
        clearTimeout(timer);
        if (socket) socket.close(1000);  // the server stops encoding for this viewer
      });
      say("connecting");
      connect();
      return box;
    }
    """

    def __init__(self, **params) -> None:
        super().__init__(**params)
        self._sync_src()

    @param.depends("camera_id", watch=True)
    def _sync_src(self) -> None:
        self.src = "" if self.camera_id is None else stream_url(self.camera_id)
