"""The coordinator service: opens and closes rounds on the consortium channel, stores
update blobs content-addressed, aggregates deterministically, and registers model
versions once a majority of orgs attested the aggregate (docs/services.md).

``create_app(settings)`` builds the FastAPI app; ``python -m fedledger.coordinator
--config PATH`` runs it.
"""

from fedledger.coordinator.app import create_app
from fedledger.coordinator.settings import CoordinatorSettings

__all__ = ["CoordinatorSettings", "create_app"]
