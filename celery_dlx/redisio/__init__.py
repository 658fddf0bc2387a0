"""Redis access shared by every Redis user of celery_dlx: the one client factory (one server,
Redis Cluster or Sentinel, from a URL) with timeouts, the hash tags that keep an operation's
keys in one cluster slot, packaged Lua scripts.
"""

from __future__ import annotations

