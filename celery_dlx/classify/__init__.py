"""Classify API responses of social networks into what a task should do next.

Pure: imports neither Celery nor kombu nor any HTTP library.  ::

    from celery_dlx.classify import classify, VerdictKind

    verdict = classify("twitter", 429, {"x-rate-limit-reset": "1700000900", "date": ...}, body)
    verdict.kind         # VerdictKind.RATE_LIMITED
    verdict.retry_after  # seconds from the response's Date to the reset

Each network is the shared OAuth rules (:mod:`.oauth`), its own rule tables (:mod:`.tables`:
every documented code is one entry with its kind, wait and source; ``docs/classify.md`` is
generated from them), the caller bugs that look like auth errors, then the generic HTTP rules,
so a shape a network's rules do not know is still classified by its status.  Networks can be added or changed::

    register("bluesky", my_rules | http.rules)                  # a new network
    override("facebook", 368, VerdictKind.PERMISSION)           # one code, another kind
"""

from __future__ import annotations

from . import facebook, github, http, instagram, linkedin, mastodon, oauth, reddit, twitter
from .base import BodyError, Classifier, Dialect, Response, Verdict, VerdictKind, rule
from .registry import Registry
from .tables import CodeTable, Entry, MessageTable, StatusTable, code_table

#: The default registry: the networks celery_dlx knows, plus "http" for anything else.
registry = Registry()
registry.register("http", oauth.rules | oauth.caller_bugs | http.rules, http.DIALECT)
for _module in (facebook, instagram, twitter, linkedin, reddit, mastodon, github):
    _name = _module.__name__.rsplit(".", 1)[1]
    registry.register(_name, oauth.rules | _module.rules | oauth.caller_bugs | http.rules, _module.DIALECT)

register = registry.register
override = registry.override
classifier = registry.classifier


def classify(network: str, status: object, headers: object, body: object, *, now: float | None = None) -> Verdict:
    """Classify one response of ``network`` (``facebook``, ``instagram``, ``twitter``,
    ``linkedin``, ``reddit``, ``mastodon``, ``github`` or ``http``).

    ``headers`` is any mapping (or list of pairs), ``body`` parsed JSON, text or bytes.
    ``now`` (UNIX time) stands in for the clock when the response has no ``Date`` header.
    Never raises for odd responses; raises ``ValueError`` for an unknown network.
    """
    return registry.classify(network, status, headers, body, now=now)


__all__ = [
    "BodyError",
    "Classifier",
    "CodeTable",
    "Dialect",
    "Entry",
    "MessageTable",
    "Registry",
    "Response",
    "StatusTable",
    "Verdict",
    "VerdictKind",
    "classifier",
    "classify",
    "code_table",
    "override",
    "register",
    "registry",
    "rule",
]
