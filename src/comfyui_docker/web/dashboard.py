"""What one dashboard app holds beside the runtime's `Services`, typed, in `app.state.dashboard`.

    services        the runtime's long-lived services (shared with `start`)
    settings        the environment's settings, before what the Settings page saved is applied
    auth            the login policy, sessions and backoff (auth/)
    sampler         the machine's readings (sampler.py)
    preset_lists    the prepared `GET /api/presets` answers (api/preset_list.py)
    proxy_session   the streaming proxy's own HTTP client (proxy.py), open while the app runs

`dashboard_of(request or websocket)` is the one place that reads `app.state`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from ..errors import ServiceUnavailable
from ..services import Services
from ..settings import Settings
from .api.preset_list import PreparedLists
from .auth.policy import Auth
from .sampler import SystemSampler

if TYPE_CHECKING:
    import aiohttp


@dataclass
class Dashboard:
    services: Services
    settings: Settings
    auth: Auth
    sampler: SystemSampler = field(default_factory=SystemSampler)
    preset_lists: PreparedLists = field(default_factory=PreparedLists)
    proxy_session: aiohttp.ClientSession | None = None

    def proxy_http(self) -> aiohttp.ClientSession:
        """The proxy's client; a 503 outside the app's lifespan (starting or stopping)."""
        if self.proxy_session is None:
            raise ServiceUnavailable(
                "the dashboard is starting or stopping", hint="try again in a moment", state="starting"
            )
        return self.proxy_session


def dashboard_of(conn: HTTPConnection) -> Dashboard:
    found: Dashboard = conn.app.state.dashboard
    return found
