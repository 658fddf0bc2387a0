"""Key names that keep each operation's keys in one Redis Cluster hash slot.

Pure: imports neither Celery, kombu nor redis.  Redis Cluster runs a script or a transaction
only when all of its keys hash to one slot, and it hashes only a key's *hash tag* (the text
between the first ``{`` and the next ``}``) when there is one.  So every celery_dlx key that an
operation shares with other keys carries a tag the library derives from the object the
operation is about, not one left to the user's prefix:

- a circuit breaker: ``<prefix>:{<breaker name>}`` and ``…:f`` (:func:`tagged`);
- a task tree: ``<prefix>:tree:{<root id>}:nodes`` / ``:parents``; a page ledger:
  ``<prefix>:pages:{<run>}:…``; an idempotency record: ``<prefix>:{<key>}``;
- a rate limiter: ``{<prefix>}:<limit>:…`` (:func:`tagged_prefix`): any combination of its
  limits may cover one call, so all of a limiter's keys share one slot.

On a standalone Redis the tags change nothing but the key names.  A breaker, tree, ledger or
idempotency prefix that carries a hash tag of its own (``"{app}:celery_dlx"``) wins over the
library's: everything under it then shares that one slot, still correct, but on one node (the
way to let an idempotency commit touch keys of several records).
"""

from __future__ import annotations

from ..errors import ConfigurationError

#: Characters escaped in a tag, so any text makes a non-empty tag that ends at its own ``}``.
_ESCAPES = str.maketrans({"%": "%25", "{": "%7B", "}": "%7D"})


def hash_tag(key: str) -> str | None:
    """The part of ``key`` Redis Cluster hashes when it is not the whole key (Redis's rule:
    the text between the first ``{`` and the next ``}``, if not empty), else None."""
    start = key.find("{")
    if start < 0:
        return None
    end = key.find("}", start + 1)
    if end <= start + 1:
        return None
    return key[start + 1 : end]


def tagged(prefix: str, tag: str) -> str:
    """``<prefix>:{<tag>}``: the common start of the keys of one object; whatever is appended
    to it stays in the slot of ``tag`` (``{``, ``}`` and ``%`` in ``tag`` are percent-encoded)."""
    return _checked(f"{prefix}:{{{tag.translate(_ESCAPES)}}}", prefix)


def tagged_prefix(prefix: str) -> str:
    """``{<prefix>}``: the common start of keys that must all share one slot (a rate limiter's)."""
    return _checked("{" + prefix.translate(_ESCAPES) + "}", prefix)


def _checked(base: str, prefix: str) -> str:
    """``base``, refused when Redis would hash whole keys (an empty tag or prefix, or a
    prefix such as ``"a{}"``)."""
    if hash_tag(base) is None:
        raise ConfigurationError(
            f"key {base!r} (prefix {prefix!r}) has no Redis Cluster hash tag: use a non-empty name and no '{{}}'"
        )
    return base
