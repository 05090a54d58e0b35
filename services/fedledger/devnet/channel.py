"""Channel definitions of the dev peer: who is a member, which policy endorses.

A real network holds these in each channel's config block (configtx.yaml in
``deploy/``); the dev peer reads the same facts from ``network.json``, written by
:mod:`fedledger.devnet.network`.
"""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, field_validator

from fedledger.devnet.policy import Policy, parse_policy
from fedledger.fabric.msp import VerifiedIdentity


class ChannelDefinition(BaseModel):
    """One channel: its members (MSP ids), the endorsement policy of its chaincodes and
    the chaincodes it runs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z][a-z0-9.-]{0,248}$")
    members: tuple[str, ...] = Field(min_length=1)
    endorsement_policy: str = "MAJORITY Endorsement"
    chaincodes: tuple[str, ...] = ("fedledger",)

    @field_validator("members")
    @classmethod
    def _distinct(cls, members: tuple[str, ...]) -> tuple[str, ...]:
        if len(set(members)) != len(members):
            raise ValueError(f"channel members repeat: {members}")
        return members


@dataclass(frozen=True)
class ChannelPolicies:
    """The parsed policies of a channel."""

    definition: ChannelDefinition
    endorsement: Policy

    @classmethod
    def of(cls, definition: ChannelDefinition) -> ChannelPolicies:
        # Each org's sub-policy is Fabric's default "Endorsement" org policy: one of its peers.
        org_policies = {m: parse_policy(f"OR('{m}.peer')") for m in definition.members}
        return cls(definition, parse_policy(definition.endorsement_policy, org_policies))

    def is_member(self, identity: VerifiedIdentity) -> bool:
        return identity.msp_id in self.definition.members
