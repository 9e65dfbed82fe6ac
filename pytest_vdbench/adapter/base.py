"""The interface every model adapter implements (the seed ADR's ``ModelAdapter``)."""

from __future__ import annotations

from typing import Any, Dict, Mapping


class ModelAdapter:
    """Base class for a model behind the vdbench REST contract.

    Subclass it, build the model in :meth:`load` (called once, in a background thread, before the
    server reports ready) and return the output from :meth:`generate`:

    * ``video``: float32 ``[frames, channels, height, width]`` in ``[0, 1]``, or uint8
      ``[frames, height, width, channels]``;
    * ``tabular``: a 2-D ``[rows, columns]`` array (see :meth:`fit` for training).

    Any object with ``__array__`` (numpy arrays, CPU torch tensors) is accepted.
    """

    #: Libraries whose versions :meth:`metadata` reports (for the report's provenance).
    libraries: "tuple[str, ...]" = ("numpy",)

    #: False (the default): the server calls :meth:`generate` and :meth:`fit` one at a time, under a
    #: lock. Set True only when the model may be called from several threads at once.
    thread_safe: bool = False

    def __init__(self, **options: Any) -> None:
        self.options: Dict[str, Any] = dict(options)

    def load(self) -> None:
        """Build or load the model. Raise to fail readiness; the traceback is reported."""

    def generate(self, prompt: str, **params: Any) -> Any:
        """Generate one output for ``prompt``; ``params`` holds the case's ``seed`` and params."""
        raise NotImplementedError(f"{type(self).__name__}.generate() is not implemented")

    def fit(self, table: Any, columns: "list[dict[str, Any]]", **params: Any) -> None:
        """Tabular models: train on ``table`` (``[rows, columns]`` float64) before ``generate``."""
        raise NotImplementedError(f"{type(self).__name__} does not support fit()")

    def get_requirements(self) -> Dict[str, Any]:
        """Hardware the model needs: ``gpus``, ``gpu_memory`` and ``memory`` (bytes), ``cpus``."""
        return {"gpus": 0, "gpu_memory": 0, "memory": 0, "cpus": 0}

    def health_check(self) -> bool:
        """Return False when the loaded model can no longer serve (readiness turns 503)."""
        return True

    def metadata(self) -> Mapping[str, Any]:
        """Free-form facts about the model; versions of :attr:`libraries` are added by the server."""
        return {}
