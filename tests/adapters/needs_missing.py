"""An adapter whose library is installed only in its image (never in the test environment)."""

from __future__ import annotations

import vdbench_lib_only_in_the_image  # noqa: F401  # type: ignore[import-not-found]

from pytest_vdbench.adapter import ModelAdapter


class NeedsMissing(ModelAdapter):
    pass
