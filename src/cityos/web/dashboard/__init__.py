"""The operations dashboard at ``/``: the pages every service brings through the plug
(:class:`cityos.plug.Page`), drawn on the server (tables, SVG charts and the district map),
refreshed live from hub subscriptions. See docs/dashboard.md."""

from .routes import OPEN_PATHS, Dashboard, routes

__all__ = ["OPEN_PATHS", "Dashboard", "routes"]
