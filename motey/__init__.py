"""Motey: a masterless fog-node orchestration engine for smart factory cells."""

__version__ = "1.0.0.dev0"
