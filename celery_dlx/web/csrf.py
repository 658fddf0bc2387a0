"""Cross-site request forgery protection: every state-changing request carries a token that
only pages of this dashboard know.

The token lives in Flask's signed session cookie (``SameSite=Strict``, ``HttpOnly``, keyed by
a secret drawn at start-up) and in a hidden field of each form; a POST whose field does not
equal the cookie's token is refused.  Another site can make a browser send the cookie, not
read the token out of a page.
"""

from __future__ import annotations

import hmac
import secrets

from flask import abort, request, session

FIELD = "csrf_token"


def token() -> str:
    """This browser session's token (drawn on first use)."""
    if FIELD not in session:
        session[FIELD] = secrets.token_urlsafe(32)
    value: str = session[FIELD]
    return value


def check() -> None:
    """Abort with 403 unless the request's form carries this session's token."""
    expected = session.get(FIELD)
    given = request.form.get(FIELD, "")
    if not expected or not hmac.compare_digest(given.encode("utf-8"), str(expected).encode("utf-8")):
        abort(403, description="missing or wrong CSRF token: reload the page and try again")
