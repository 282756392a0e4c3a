"""This node's capabilities and the requirement language blueprints use."""

from motey.capabilityengine.capability_engine import CapabilityEngine

__all__ = ["CapabilityEngine"]
