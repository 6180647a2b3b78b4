"""The live dashboard: pages, templates and static assets, served by `jobpulse serve`."""
