"""Who may use the dashboard: nobody but local users unless credentials are configured.

Credentials come from the environment or from files (``DLX_WEB_TOKEN`` / ``DLX_WEB_TOKEN_FILE``
for a bearer token, ``DLX_WEB_USER`` with ``DLX_WEB_PASSWORD`` / ``DLX_WEB_PASSWORD_FILE`` for
HTTP basic), never from the command line, where ``ps`` and shell histories would show them.
A dashboard bound to anything but a loopback address refuses to start without them: it can
replay and delete parked tasks.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import CeleryDLXError

ENV_TOKEN, ENV_TOKEN_FILE = "DLX_WEB_TOKEN", "DLX_WEB_TOKEN_FILE"
ENV_USER, ENV_PASSWORD, ENV_PASSWORD_FILE = "DLX_WEB_USER", "DLX_WEB_PASSWORD", "DLX_WEB_PASSWORD_FILE"


class CredentialsError(CeleryDLXError):
    """Credentials are missing where they are required, or cannot be read."""


@dataclass(frozen=True)
class Credentials:
    """A bearer token, a basic-auth user and password, or both (either is accepted).

    The secrets are left out of ``repr`` so that no log line or traceback shows them.
    """

    token: str | None = field(default=None, repr=False)
    user: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Credentials | None:
        """The credentials the environment configures, None if it configures none."""
        env = os.environ if environ is None else environ
        token = _secret(env, ENV_TOKEN, ENV_TOKEN_FILE)
        user, password = env.get(ENV_USER) or None, _secret(env, ENV_PASSWORD, ENV_PASSWORD_FILE)
        if (user is None) != (password is None):
            raise CredentialsError(f"set both {ENV_USER} and {ENV_PASSWORD} (or {ENV_PASSWORD_FILE}), or neither")
        if token is None and user is None:
            return None
        return cls(token=token, user=user, password=password)

    def identify(self, authorization: str | None) -> str | None:
        """Who an ``Authorization`` header proves to be (the user name, or ``bearer-token``);
        None when it proves nothing.  Secrets are compared in constant time."""
        scheme, _, value = (authorization or "").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and self.token is not None and _same(value, self.token):
            return "bearer-token"
        if scheme.lower() == "basic" and self.user is not None and self.password is not None:
            try:
                user, _, password = base64.b64decode(value, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                return None
            if _same(user, self.user) & _same(password, self.password):
                return user
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


def _secret(env: Mapping[str, str], name: str, file_name: str) -> str | None:
    """The value of ``name``, else the first line of the file ``file_name`` names."""
    if env.get(name):
        return env[name]
    path = env.get(file_name)
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {file_name}={path}: {exc.strerror}") from None
    if not value:
        raise CredentialsError(f"{file_name}={path} is empty")
    return value


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``127.0.0.1``, ``::1``, ``localhost``)."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, credentials: Credentials | None) -> None:
    """Refuse to serve on a non-loopback address without credentials."""
    if credentials is None and not is_loopback(host):
        raise CredentialsError(
            f"refusing to serve on {host} without credentials: set {ENV_TOKEN} or {ENV_TOKEN_FILE} (bearer "
            f"token), or {ENV_USER} with {ENV_PASSWORD} or {ENV_PASSWORD_FILE} (HTTP basic)"
        )
