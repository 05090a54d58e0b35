"""The org node's admin API (docs/services.md "Org node API"), one router per resource."""
