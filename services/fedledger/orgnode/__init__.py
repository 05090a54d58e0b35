"""The org node: one organization's service.

It holds the org's admin API (users with roles, datasets, participation policy, jobs,
attested model versions, private-ledger records), its datasets (samples never leave
it; salted Merkle commitments go to its private channel), the round worker that trains
locally and attests aggregates it recomputed, and its anchor key (the bridge asks it to
approve anchor batches). ``create_app(settings)`` in :mod:`fedledger.orgnode.app`.
"""
