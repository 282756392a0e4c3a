"""Plain data classes and enums shared by every layer."""

from motey.models.capability import Capability
from motey.models.image import Image, ImageState
from motey.models.node import Node, NodeLifecycle, NodeReachability
from motey.models.service import Service, ServiceState

__all__ = [
    "Capability",
    "Image",
    "ImageState",
    "Node",
    "NodeLifecycle",
    "NodeReachability",
    "Service",
    "ServiceState",
]
