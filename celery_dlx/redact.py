"""Redaction of access tokens and other credentials from text bound for logs and result backends.

Pure: standard library only.  Social-network tokens travel in query strings
(``?access_token=…``), ``Authorization`` headers (``Bearer …``, ``token …``, OAuth 1
parameters) and in the messages HTTP libraries build from URLs (``…for url: https://…``).
Whatever celery_dlx writes where others can read it (log records, exceptions stored in the
result backend, retry message headers) goes through :func:`redact` first, so a token that
reaches an error message never leaves the process.

Redaction keeps the name and replaces the value (``access_token=[REDACTED]``): the reader
still sees *which* credential was involved, which is what debugging needs.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from typing import Any

PLACEHOLDER = "[REDACTED]"

#: A parameter, field or header whose name contains one of these holds a credential:
#: ``access_token``, ``oauth2_access_token``, ``client_secret``, ``X-Api-Key``, ``Cookie``…
_SECRET_WORD = re.compile(r"(?i)token|secret|passw(or)?d|signature|api[_-]?key|authorization|cookie|appsecret")
#: Names that match but hold nothing secret: pagination cursors and token metadata.
PUBLIC_NAMES = frozenset(
    {"pagination_token", "next_token", "previous_token", "page_token", "next_page_token", "token_type"}
)
_NAME = r"[A-Za-z0-9_.-]*"

#: ``name=value`` in query strings, form bodies and OAuth 1 headers (quoted or not).
_PARAM = re.compile(rf"(?<![A-Za-z0-9_.-])({_NAME})=(\"[^\"]*\"|'[^']*'|[^&\s#,;\"'<>()\[\]{{}}]+)")
#: ``"name": "value"`` in JSON and ``'name': 'value'`` in Python reprs of dicts.
_FIELD = re.compile(rf"([\"']({_NAME})[\"']\s*:\s*)(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*')")
#: ``Authorization: <anything>`` as written in a header dump, up to the end of the line.
_HEADER_LINE = re.compile(r"(?i)\b((?:proxy-)?authorization\s*:\s*)([^\r\n'\"]+)")
#: Credentials after an auth scheme: ``Bearer abc…``, ``token ghp_…``, ``Basic dXNl…`` (with a
#: digit, so prose such as "access token signature" is left alone).
_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)(\s+)(?=[A-Za-z0-9\-._~+/]*\d)([A-Za-z0-9\-._~+/]{12,}=*)")
#: Token formats recognisable on their own: GitHub tokens and Facebook/Instagram access tokens.
_BARE = re.compile(
    r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,}|EAA[A-Za-z0-9]{20,}|IGQ[A-Za-z0-9_-]{20,})"
)
#: ``scheme://user:password@host``.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^/\s:@]+:)([^/\s@]+)(@)")


def redact(text: str) -> str:
    """``text`` with every credential it contains replaced by :data:`PLACEHOLDER`."""
    text = _FIELD.sub(_field, text)
    text = _PARAM.sub(_param, text)
    text = _HEADER_LINE.sub(lambda m: f"{m.group(1)}{PLACEHOLDER}", text)
    text = _SCHEME.sub(lambda m: f"{m.group(1)}{m.group(2)}{PLACEHOLDER}", text)
    text = _USERINFO.sub(lambda m: f"{m.group(1)}{PLACEHOLDER}{m.group(3)}", text)
    return _BARE.sub(PLACEHOLDER, text)


def _field(match: re.Match[str]) -> str:
    if not is_secret_name(match.group(2)):
        return match.group(0)
    quote = match.group(3)[0]
    return f"{match.group(1)}{quote}{PLACEHOLDER}{quote}"


def _param(match: re.Match[str]) -> str:
    return f"{match.group(1)}={PLACEHOLDER}" if is_secret_name(match.group(1)) else match.group(0)


def is_secret_name(name: object) -> bool:
    """True when a header, parameter or field called ``name`` holds a credential."""
    if not isinstance(name, str):
        return False
    return bool(_SECRET_WORD.search(name)) and name.strip().lower() not in PUBLIC_NAMES


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value (dicts, lists, strings) with its credentials redacted:
    values under secret names are replaced, every string is passed through :func:`redact`."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: PLACEHOLDER if is_secret_name(k) else redact_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(redact_value(item) for item in value)
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts the message and the traceback of every record it sees.

    Attach it to a *handler* (``handler.addFilter(RedactingFilter())``) to cover records from
    every logger, Celery's and your HTTP library's included; a filter on a logger only sees
    records created on that very logger.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
