"""Built-in VAL plugins; each has a ``*.yapsy-plugin`` info file beside its module."""
