"""TinyDB-backed repositories: the only code that imports tinydb."""

from motey.repositories.base import Database
from motey.repositories.capability_repository import CapabilityRepository
from motey.repositories.node_repository import NodeRepository
from motey.repositories.service_repository import ServiceRepository

__all__ = ["CapabilityRepository", "Database", "NodeRepository", "ServiceRepository"]
