"""This node: its identity, lifecycle phase and resource usage."""
