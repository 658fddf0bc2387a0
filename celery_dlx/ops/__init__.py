"""Operating celery_dlx: the ``celery dlx`` CLI, the worker bootstep, status and verify.
"""

from __future__ import annotations

