"""The virtualization abstraction layer: one plugin per container engine."""
