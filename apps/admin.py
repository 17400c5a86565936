"""Stores, cameras and users (``/admin``)."""

from zvpanel.ui.admin import admin_page

admin_page().servable(title="zvpanel · Admin")
