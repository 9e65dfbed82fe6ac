"""pytest-vdbench: benchmark and validate generative models, each isolated in its own container.

Keep this file free of imports: ``pytest_vdbench.adapter`` is installed inside model images that
have neither pytest nor the harness's dependencies.
"""

__version__ = "0.1.0"
