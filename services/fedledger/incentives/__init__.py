"""Incentives: what a round's outcome moves on the Staking contract
(:mod:`.outcome`)."""
