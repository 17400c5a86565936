"""Live video, status and counts of the cameras (``/live``)."""

from zvpanel.ui.live import live_page

live_page().servable(title="zvpanel · Live")
