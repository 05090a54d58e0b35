"""The base of every settings and config section: unknown keys are an error.

A typo in a JSON/YAML key or a ``FEDLEDGER_*`` variable must fail loudly rather than
silently use a default. :class:`Section` is the base of the services' settings (they
fill some fields in after validation); :class:`FrozenSection` of the experiment
configs (learning, incentives, evm), which are hashed into records and never change.

This module imports pydantic only, so the learning core may use it; a service's
top-level settings class is a :class:`fedledger.web.settings.ServiceSettings`.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A settings section: extra keys are refused."""

    model_config = ConfigDict(extra="forbid")


class FrozenSection(Section):
    """A config section that cannot change once made (extra keys refused too)."""

    model_config = ConfigDict(extra="forbid", frozen=True)


__all__ = ["FrozenSection", "Section"]
