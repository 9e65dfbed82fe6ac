"""``protocol: oip-v2``: an Open Inference Protocol v2 server (MLServer, KServe, Triton) over HTTP/JSON.

- liveness/readiness: ``GET /v2/health/live``, ``/v2/health/ready`` and the model's own
  ``/v2/models/{name}/ready`` (an empty 200 body is ready);
- metadata: ``GET /v2`` (server) and ``GET /v2/models/{name}`` (inputs/outputs with datatype and shape);
- generate: ``POST /v2/models/{name}[/versions/{v}]/infer`` with ``prompt`` (BYTES [1]), ``seed``
  (INT64 [1]) and one tensor per param; an input the model's metadata declares gets its datatype
  from there. The output tensor (``oip.output``, else the only one) is rebuilt from its datatype
  and shape. OIP has no timing header: the server time is the request's round trip;
- requirements come from the manifest (``oip.requirements``); there is no fit.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from pytest_vdbench.endpoint import AdapterError, Endpoint, Generation
from pytest_vdbench.manifest import OipOptions
from pytest_vdbench.protocols._http import WIRE_FACTOR, WIRE_SLACK, Http, parse_object
from pytest_vdbench.protocols.base import NotSupported, declared_requirements
from pytest_vdbench.protocols.decode import DecodeError, decode_oip_output, encode_oip_inputs

__all__ = ["OipClient"]


class OipClient:
    """Talks to one model on an OIP v2 server (see the module docstring)."""

    protocol = "oip-v2"
    live_path = "/v2/health/live"

    def __init__(self, endpoint: Endpoint, *, model: str, timeout: float = 300.0, options: OipOptions | None = None) -> None:
        self.endpoint = endpoint
        self.timeout = timeout
        self.options = options or OipOptions()
        self.model = model
        version = f"/versions/{self.options.version}" if self.options.version else ""
        self.model_path = f"/v2/models/{model}{version}"
        self.ready_path = f"/v2/health/ready + {self.model_path}/ready"
        self._http = Http(endpoint, timeout)
        self._declared: dict[str, str] | None = None  # input name -> datatype, from the model's metadata

    def live(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        return self._http.get_json("/v2/health/live", timeout=timeout)

    def ready(self, timeout: float = 5.0) -> tuple[int, dict[str, Any]]:
        """200 once the server and the model are ready; 503 (with what was seen) before."""
        deadline = time.monotonic() + timeout
        status, body = self._http.get_json("/v2/health/ready", timeout=timeout)
        if status != 200:
            return 503, {"status": f"GET /v2/health/ready answered {status}", **body}
        status, body = self._http.get_json(f"{self.model_path}/ready", timeout=max(0.01, deadline - time.monotonic()))
        if status != 200:
            return 503, {"status": f"GET {self.model_path}/ready answered {status}", **body}
        return 200, {"status": "ready"}

    def _ok_json(self, path: str) -> dict[str, Any]:
        try:
            status, body = self._http.get_json(path)
        except OSError as exc:
            raise AdapterError(f"GET {path} failed: {exc!r}") from None
        if status != 200:
            raise AdapterError(f"GET {path} answered {status}: {body.get('error', body)}", status)
        return body

    def metadata(self) -> dict[str, Any]:
        """The server's and the model's metadata (``inputs``/``outputs`` with datatype and shape)."""
        server = self._ok_json("/v2")
        model = self._ok_json(self.model_path)
        self._declared = _declared_inputs(model)
        return {"protocol": "oip-v2", "server": server, "model": model}

    def requirements(self) -> dict[str, Any]:
        return declared_requirements("oip-v2", "oip", self.options.requirements)

    def _inputs(self, prompt: str, seed: int | None, params: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._declared is None:
            try:
                self._declared = _declared_inputs(self._ok_json(self.model_path))
            except AdapterError:
                self._declared = {}  # metadata is optional for inference: send the default datatypes
        o = self.options
        try:
            inputs = encode_oip_inputs(prompt, seed, params, prompt_input=o.prompt_input, seed_input=o.seed_input)
        except DecodeError as exc:
            raise AdapterError(f"the case cannot be sent as OIP v2 inputs: {exc}", 400) from None
        if self._declared:
            unknown = [i["name"] for i in inputs if i["name"] not in self._declared]
            if unknown:
                raise AdapterError(
                    f"model {self.model!r} declares no input(s) {unknown} (its inputs: {sorted(self._declared)}); "
                    "rename the case's params, or set oip.prompt_input / oip.seed_input",
                    400,
                )
            for tensor in inputs:
                declared = self._declared[tensor["name"]]
                if declared != tensor["datatype"] and declared != "BYTES" and tensor["datatype"] != "BYTES":
                    tensor["datatype"] = declared  # e.g. INT32 seeds: the server casts JSON numbers
        return inputs

    def generate(
        self,
        prompt: str,
        *,
        seed: int | None,
        params: Mapping[str, Any],
        timeout: float | None = None,
        max_bytes: int | None = None,
    ) -> Generation:
        """POST .../infer and rebuild the output tensor (the JSON answer is refused over ``max_bytes`` x the factor)."""
        path = f"{self.model_path}/infer"
        body = {"inputs": self._inputs(prompt, seed, params)}
        wire_limit = max_bytes * WIRE_FACTOR + WIRE_SLACK if max_bytes is not None else None
        start = time.perf_counter()
        status, _, data = self._http.call("generate", "POST", path, body, timeout=timeout, max_bytes=wire_limit)
        total = time.perf_counter() - start
        answer = parse_object(data)
        if status != 200:
            error = answer.get("error") or answer.get("detail") or answer
            text = str(error)
            raise AdapterError(f"POST {path} answered {status}: {text[-2000:]}", status)
        outputs = answer.get("outputs")
        if not isinstance(outputs, list) or not all(isinstance(o, Mapping) for o in outputs):
            raise AdapterError(f"POST {path} answered without an outputs list ({len(data)} bytes): {str(answer)[:300]}")
        try:
            output = decode_oip_output(outputs, self.options.output)
        except DecodeError as exc:
            raise AdapterError(f"generate returned an output that cannot be decoded ({len(data)} bytes): {exc}") from None
        if max_bytes is not None and output.nbytes > max_bytes:
            raise AdapterError(
                f"generate output refused: the decoded output is {output.nbytes} bytes, over the limit of {max_bytes} "
                "(expect.max_output_bytes)"
            )
        return Generation(output=output, server_seconds=total, total_seconds=total, peak_rss_bytes=None, nbytes=len(data))

    def fit(
        self,
        table: np.ndarray[Any, Any],
        columns: Sequence[Mapping[str, Any]],
        params: Mapping[str, Any],
        *,
        timeout: float | None = None,
    ) -> float:
        raise NotSupported("the oip-v2 protocol has no fit: tabular models need protocol: native")


def _declared_inputs(model: Mapping[str, Any]) -> dict[str, str]:
    """Input name -> datatype from a model metadata answer ({} when it declares none)."""
    inputs = model.get("inputs")
    if not isinstance(inputs, list):
        return {}
    return {str(i["name"]): str(i.get("datatype")) for i in inputs if isinstance(i, Mapping) and "name" in i}
