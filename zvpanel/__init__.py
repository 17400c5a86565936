"""zvpanel: people counting for retail stores from their cameras, with Panel dashboards."""

__version__ = "0.1.0"
