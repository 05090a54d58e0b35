"""Service settings from environment variables: one rule for every service.

docker-compose configures the services this way; ``--config FILE`` (JSON) stays the
other way in. Each service's settings class has a ``from_env()`` built on
:func:`env_values`, so the same pydantic model checks both.

    FEDLEDGER_PORT=8000                          -> port
    FEDLEDGER_GATEWAY__ENDPOINT=peer0...:7051    -> gateway.endpoint   (sections: "__")
    FEDLEDGER_ORG_MSPS__ORGS=Org1,Org2,Org3      -> org_msps.orgs      (lists: JSON or a,b,c)
    FEDLEDGER_MSP_DIRS=Org1MSP=/m1,Org2MSP=/m2   -> msp_dirs           (maps: JSON or k=v,k=v)
    FEDLEDGER_EXPERIMENT_FILE=/etc/x.yaml        -> experiment         (a section from YAML/JSON)
    FEDLEDGER_OPERATOR_TOKEN_SHA256_FILE=/run/secrets/operator_token_sha256

``NAME_FILE`` (Docker's convention for secrets) reads the value of ``NAME`` from that file
(stripped), unless the settings have a field spelled ``..._file`` itself (then the path
is the value, e.g. ``FEDLEDGER_ANCHOR_KEY_FILE``). An empty value counts as unset, so a
compose file may pass ``${VAR:-}``. Secrets are only ever read from files.
"""

from __future__ import annotations

import json
import logging
import os
import types
import typing
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from fedledger.errors import FedLedgerError

log = logging.getLogger(__name__)

PREFIX = "FEDLEDGER_"
# Read elsewhere (not settings fields): the model cache of fedledger.learning, the test
# suite's Postgres URL.
SHARED_NAMES = frozenset({"CACHE", "TEST_POSTGRES"})


class EnvSettingsError(FedLedgerError, ValueError):
    """An environment variable that names no setting or holds an unreadable value."""


def _unwrap(annotation: Any) -> Any:
    """``X | None`` / ``Optional[X]`` / ``Annotated[X, ...]`` -> ``X``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrap(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1:
            return _unwrap(args[0])
    return annotation


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def resolve(model: type[BaseModel], name: str) -> tuple[tuple[str, ...], Any, bool] | None:
    """Where ``name`` (without the prefix) goes in ``model``: (field path, annotation,
    read from a file), or None when it names no setting."""
    def walk(parts: list[str]) -> tuple[tuple[str, ...], Any] | None:
        current: Any = model
        path: list[str] = []
        for i, part in enumerate(parts):
            if not _is_model(current):
                return None
            fields = current.model_fields
            key = part.lower()
            if key not in fields:
                return None
            path.append(key)
            annotation = _unwrap(fields[key].annotation)
            if i < len(parts) - 1:
                current = annotation
            else:
                return tuple(path), annotation
        return None

    found = walk(name.split("__"))
    if found is not None:
        return (*found, False)
    if name.endswith("_FILE"):
        found = walk(name.removesuffix("_FILE").split("__"))
        if found is not None:
            return (*found, True)
    return None


def _parse(raw: str, annotation: Any, *, structured_file: bool) -> Any:
    origin = typing.get_origin(annotation) or annotation
    if _is_model(annotation) or origin is dict and structured_file:
        return yaml.safe_load(raw) if structured_file else json.loads(raw)
    if origin in (list, tuple, set, frozenset):
        text = raw.strip()
        if text.startswith("["):
            return json.loads(text)
        return [item.strip() for item in text.split(",") if item.strip()]
    if origin is dict:
        text = raw.strip()
        if text.startswith("{"):
            return json.loads(text)
        pairs = {}
        for item in (i.strip() for i in text.split(",")):
            if not item:
                continue
            key, sep, value = item.partition("=")
            if not sep:
                raise EnvSettingsError(f"expected KEY=VALUE pairs separated by commas, got {item!r}")
            pairs[key.strip()] = value.strip()
        return pairs
    return raw


def read_secret(path: str | Path) -> str:
    """The content of a secret file, without surrounding whitespace."""
    try:
        return Path(path).read_text().strip()
    except OSError as exc:
        raise EnvSettingsError(f"cannot read {path}: {exc.strerror}") from None


def env_values(model: type[BaseModel], environ: Mapping[str, str] | None = None, *,
               prefix: str = PREFIX, handled: Iterable[str] = ()) -> dict[str, Any]:
    """The values ``FEDLEDGER_*`` variables give ``model``'s fields, as nested data for
    ``model.model_validate``. ``handled`` names (without the prefix) the caller reads
    itself; other names that match no field are logged and ignored."""
    environ = os.environ if environ is None else environ
    skip = SHARED_NAMES | set(handled)
    values: dict[str, Any] = {}
    unknown = []
    for key in sorted(environ):
        if not key.startswith(prefix):
            continue
        name = key[len(prefix):]
        raw = environ[key]
        if name in skip or raw == "":
            continue
        found = resolve(model, name)
        if found is None:
            unknown.append(key)
            continue
        path, annotation, from_file = found
        try:
            if from_file:
                text = read_secret(raw)
                structured = _is_model(annotation) or typing.get_origin(annotation) is dict
                value = _parse(text, annotation, structured_file=structured) if structured else text
            else:
                value = _parse(raw, annotation, structured_file=False)
        except (json.JSONDecodeError, yaml.YAMLError) as exc:
            raise EnvSettingsError(f"{key}: not valid JSON/YAML: {exc}") from None
        except EnvSettingsError as exc:
            raise EnvSettingsError(f"{key}: {exc}") from None
        target = values
        for part in path[:-1]:
            target = target.setdefault(part, {})
            if not isinstance(target, dict):
                raise EnvSettingsError(f"{key} sets a field inside {part!r}, which another "
                                       "variable sets whole")
        target[path[-1]] = value
    if unknown:
        log.warning("ignoring environment variables that name no %s setting: %s",
                    model.__name__, ", ".join(unknown))
    return values


def env_secret(environ: Mapping[str, str], name: str, *, prefix: str = PREFIX) -> str | None:
    """``FEDLEDGER_<name>`` is a path: the secret in that file (None when unset)."""
    path = environ.get(prefix + name)
    return read_secret(path) if path else None


def url_with_password(url: str, password: str | None) -> str:
    """An SQLAlchemy URL with ``password`` filled in (the URL itself carries none, so it
    can sit in a compose file; the password comes from a secret file)."""
    if not password:
        return url
    from sqlalchemy.engine import make_url

    return make_url(url).set(password=password).render_as_string(hide_password=False)


__all__ = ["EnvSettingsError", "PREFIX", "env_secret", "env_values", "read_secret", "resolve",
           "url_with_password"]
