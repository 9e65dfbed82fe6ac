"""Contributor tools behind the ``vdbench`` command: new, validate, compose, changed, schema."""
