"""HTML pages of the dashboard (full pages and htmx fragments from the same routes).

One module per section registers its routes on `router`; `static` serves the assets.
"""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)

from . import generate, home, models, nodes, official, outputs, pro, settings, workflows  # noqa: E402
from .static import router as _static_router  # noqa: E402

for _module in (home, outputs, generate, official, models, workflows, nodes, settings, pro):
    router.include_router(_module.router)
router.include_router(_static_router)
