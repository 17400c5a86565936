"""The store overview, the landing page after login (``/overview``)."""

from zvpanel.ui.overview import overview_page

overview_page().servable(title="zvpanel · Overview")
