"""Redis access shared by every Redis user of celery_dlx: clients with timeouts, the URL,
packaged Lua scripts.
"""

from __future__ import annotations

