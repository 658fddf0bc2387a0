"""Credentials are removed from text, structures and log records; everything else stays."""

from __future__ import annotations

import logging

import pytest

from celery_dlx.redact import PLACEHOLDER, RedactingFilter, redact, redact_value

FB_TOKEN = "EAABwzLixnjYBAKZCZBZAZCBcZAZB1234567890"
GH_TOKEN = "ghp_16C7e42F292c6912E7710c838347Ae178B4a"
OPAQUE = "Zk9vQmFyMTIzNDU2Nzg5MGFiY2RlZg"  # a token with no recognisable prefix


@pytest.mark.parametrize(
    "text, secret",
    [
        (f"https://graph.facebook.com/v19.0/me?fields=id&access_token={OPAQUE}", OPAQUE),
        (f"GET /me?access_token={OPAQUE}&fields=id HTTP/1.1", OPAQUE),
        (f"POST body: client_id=1&client_secret={OPAQUE}&grant_type=fb_exchange_token", OPAQUE),
        (f"oauth_token={OPAQUE}&oauth_token_secret=s3cr3tVALUE99", OPAQUE),
        (f"refresh_token={OPAQUE}", OPAQUE),
        (f'OAuth oauth_consumer_key="key", oauth_token="{OPAQUE}", oauth_signature="abc%3D"', OPAQUE),
        (f"Authorization: Bearer {OPAQUE}", OPAQUE),
        (f"authorization: token {GH_TOKEN}", GH_TOKEN),
        (f"{{'Authorization': 'Bearer {OPAQUE}', 'Accept': 'application/json'}}", OPAQUE),
        (f'{{"access_token": "{OPAQUE}", "token_type": "bearer"}}', OPAQUE),
        (
            f"401 Client Error: Unauthorized for url: https://api.linkedin.com/v2/me?oauth2_access_token={OPAQUE}",
            OPAQUE,
        ),
        (f"sent with bearer {OPAQUE} to the API", OPAQUE),
        (f"token {GH_TOKEN} is bad", GH_TOKEN),
        (f"stray facebook token {FB_TOKEN} in a message", FB_TOKEN),
        (f"stray github token {GH_TOKEN}.", GH_TOKEN),
        ("https://bot:hunter2password@example.com/api", "hunter2password"),
        ("request headers: Authorization: Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA=="),
        (f"{{'X-Api-Key': '{OPAQUE}'}}", OPAQUE),
        (f"page_access_token={OPAQUE}", OPAQUE),
    ],
)
def test_credentials_are_redacted(text: str, secret: str) -> None:
    redacted = redact(text)
    assert secret not in redacted
    assert PLACEHOLDER in redacted
    assert redact(redacted) == redacted


def test_names_and_surrounding_text_are_kept() -> None:
    redacted = redact(f"https://graph.facebook.com/me?fields=id,name&access_token={OPAQUE}&limit=5")
    assert redacted == f"https://graph.facebook.com/me?fields=id,name&access_token={PLACEHOLDER}&limit=5"
    assert redact(f"Authorization: Bearer {OPAQUE}") == f"Authorization: {PLACEHOLDER}"


@pytest.mark.parametrize(
    "text",
    [
        "Error validating access token: Session has expired on Tuesday, 14-Nov-23 13:00:00 PST.",
        "Invalid OAuth access token signature.",
        "The token used in the request has been revoked by the user",
        'Bearer realm="reddit", error="invalid_token"',
        "(#4) Application request limit reached",
        "code=190 subcode=463",
        "GET /2/users/1/tweets?pagination_token=7140dibdnow9c7btw3w29grvxfcgvpb9n9coehpk7xz5i&max_results=100",
    ],
)
def test_plain_messages_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_structures_are_redacted_by_key_and_by_content() -> None:
    value = {
        "account": 42,
        "access_token": OPAQUE,
        "Authorization": f"Bearer {OPAQUE}",
        "urls": [f"https://x.test/?access_token={OPAQUE}"],
        "nested": ({"refresh_token": OPAQUE},),
    }
    redacted = redact_value(value)
    assert OPAQUE not in repr(redacted)
    assert redacted["account"] == 42
    assert redacted["access_token"] == PLACEHOLDER
    assert isinstance(redacted["nested"], tuple)


def test_log_records_are_redacted_with_their_traceback(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("test_redact")
    handler_filter = RedactingFilter()
    caplog.handler.addFilter(handler_filter)
    try:
        try:
            raise ConnectionError(f"Max retries exceeded with url: /me?access_token={OPAQUE}")
        except ConnectionError:
            logger.exception("calling %s failed", f"https://graph.facebook.com/me?access_token={OPAQUE}")
    finally:
        caplog.handler.removeFilter(handler_filter)
    assert caplog.records
    assert OPAQUE not in caplog.text
    assert "access_token=[REDACTED]" in caplog.text
    assert "ConnectionError" in caplog.text
