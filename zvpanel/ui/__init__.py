"""The Panel dashboards: store overview, live video, calibration, analytics, admin.

Each page module builds its view from the running :class:`zvpanel.app.App` and the
session's login (``overview_page()``, ``live_page()``, ``calibration_page()``,
``analytics_page()``, ``admin_page()``); the files in ``apps/`` serve them. :class:`StreamingImage` is the
reusable live-video component.
"""

from .streaming_image import StreamingImage, stream_url

__all__ = ["StreamingImage", "stream_url"]
