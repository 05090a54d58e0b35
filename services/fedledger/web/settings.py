"""A service's top-level settings: one pydantic model, read from the JSON file
``fedledger up`` writes (``--config FILE``) or from ``FEDLEDGER_*`` environment
variables (docker-compose; the rules are :mod:`fedledger.web.environment`'s).

    settings = CoordinatorSettings.from_file("coordinator.json")   # or .from_env()

A settings class with a ``db_url`` field also takes ``FEDLEDGER_DB_PASSWORD_FILE``: the
password (a secret file) filled into the URL, which itself carries none. A class whose
variables fill several fields at once overrides :meth:`ServiceSettings.env_defaults`
and names those variables in ``ENV_HANDLED``; variables that name a field win.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Self

from pydantic import Field

from fedledger.settings import Section
from fedledger.web.environment import env_secret, env_values, url_with_password

DB_PASSWORD = "DB_PASSWORD_FILE"


def is_loopback(host: str) -> bool:
    """Whether ``host`` names this machine only (127.0.0.0/8, ::1, localhost): the one
    place a service may listen, and a client send a token, without TLS."""
    name = host.strip("[]").lower()
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class TlsServerSettings(Section):
    """The certificate a service serves HTTPS with (PEM files), e.g. one issued by its
    org's Fabric TLS CA (``FEDLEDGER_TLS__CERT_FILE``, ``FEDLEDGER_TLS__KEY_FILE``)."""

    cert_file: Path = Field(description="server certificate (PEM), with its chain if any")
    key_file: Path = Field(description="its private key (PEM, unencrypted, mode 600)")


class ServiceSettings(Section):
    """Base of each service's settings class (see module docs)."""

    #: Variables (without ``FEDLEDGER_``) that :meth:`env_defaults` reads itself.
    ENV_HANDLED: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def from_file(cls, path: str | Path) -> Self:
        return cls.model_validate_json(Path(path).read_text())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """The same settings from ``FEDLEDGER_*`` variables (``os.environ`` by default)."""
        environ = os.environ if environ is None else environ
        takes_password = "db_url" in cls.model_fields
        handled = cls.ENV_HANDLED | ({DB_PASSWORD} if takes_password else set())
        values = cls.env_defaults(environ)
        values.update(env_values(cls, environ, handled=handled))
        password = env_secret(environ, DB_PASSWORD) if takes_password else None
        if password:
            url = values.get("db_url") or cls.model_fields["db_url"].default
            if not url:
                raise ValueError(f"FEDLEDGER_{DB_PASSWORD} needs FEDLEDGER_DB_URL")
            values["db_url"] = url_with_password(url, password)
        return cls.model_validate(values)

    @classmethod
    def env_defaults(cls, environ: Mapping[str, str]) -> dict[str, Any]:
        """Values that variables in ``ENV_HANDLED`` give before the fields' own variables."""
        return {}


__all__ = ["ServiceSettings", "TlsServerSettings", "is_loopback"]
