"""HTML pages of the dashboard (full pages and htmx fragments from the same routes)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
