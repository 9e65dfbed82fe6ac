"""Repository conftest: the plugin's own tests use pytester inner sessions (enabled in pyproject)."""
