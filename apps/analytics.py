"""Entries, exits and occupancy over time, with CSV downloads (``/analytics``)."""

from zvpanel.ui.analytics import analytics_page

analytics_page().servable(title="zvpanel · Analytics")
