"""JSON API routes under /api."""
