"""``vdbench k8s``: the container plan as a Job + Service, validated against Kubernetes' own schemas."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from helpers import ROOT, toy_manifest
from pytest_vdbench.manifest import ModelSpec, discover_manifests, load_manifest
from pytest_vdbench.protocols import PROTOCOLS
from pytest_vdbench.runtime.plan import container_plan
from pytest_vdbench.tools.cli import main
from pytest_vdbench.tools.k8s import K8sOptions, dns_name, quantity, resources_for

kv = pytest.importorskip("kubernetes_validate", reason="pip install -e '.[dev]' (kubernetes-validate)")
K8S_VERSION = "1.37"
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
DNS_1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")


def validate(doc: dict[str, Any]) -> None:
    kv.validate(doc, K8S_VERSION, strict=True)  # strict: an unknown key is an error too


def spec_of(tmp_path: Path, variant: str = "default", **overrides: Any) -> ModelSpec:
    path = tmp_path / "m.yaml"
    path.write_text(yaml.safe_dump(toy_manifest("toy", **overrides), sort_keys=False))
    return next(s for s in load_manifest(path, tmp_path) if s.variant == variant)


def by_kind(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["kind"]: d for d in docs}


def test_every_shipped_model_validates_against_the_schemas() -> None:
    specs = [s for p in discover_manifests([ROOT / "model_suites"]) for s in load_manifest(p, ROOT)]
    assert len(specs) >= 10
    for spec in specs:
        docs = resources_for(spec, K8sOptions(run="ci"))
        for doc in docs:
            validate(doc)
            assert DNS_1035.match(doc["metadata"]["name"]) and len(doc["metadata"]["name"]) <= 63
            assert all(LABEL_VALUE.match(v) and len(v) <= 63 for v in doc["metadata"]["labels"].values()), doc["metadata"]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("spec", "activeDeadlineSeconds"), "soon"),  # wrong type
        (("spec", "template", "spec", "containers", 0, "readinessProbe", "httpGet", "port"), {"n": 1}),
        (("spec", "template", "spec", "containers", 0, "securityContext", "runAsUsr"), 10001),  # unknown key
    ],
)
def test_the_validator_refuses_a_broken_job(tmp_path: Path, path: tuple[Any, ...], value: Any) -> None:
    job = copy.deepcopy(by_kind(resources_for(spec_of(tmp_path)))["Job"])
    node = job
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(kv.ValidationError):
        validate(job)


def test_job_carries_the_plans_limits_hardening_probe_and_deadline(tmp_path: Path) -> None:
    spec = spec_of(
        tmp_path,
        resources={"cpus": 2.5, "memory": "3g", "gpus": 2, "gpu_memory": "8g"},
        requires={"gpu": True, "env": ["TOY_KEY"]},
    )
    docs = by_kind(resources_for(spec, K8sOptions(run="r42", ttl=120, namespace="bench")))
    plan = container_plan(spec, "img", protocol=PROTOCOLS.get("native"))
    job, service = docs["Job"], docs["Service"]
    assert job["spec"]["activeDeadlineSeconds"] == plan.timeouts.deadline == 160 and job["spec"]["ttlSecondsAfterFinished"] == 120
    pod = job["spec"]["template"]["spec"]
    (c,) = pod["containers"]
    assert c["resources"]["limits"] == {"cpu": "2500m", "memory": "3Gi", "nvidia.com/gpu": 2} == c["resources"]["requests"]
    term = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]
    assert term["matchExpressions"] == [{"key": "nvidia.com/gpu.memory", "operator": "Gt", "values": ["8191"]}]  # >= 8192 MiB
    sc = c["securityContext"]
    assert (sc["runAsUser"], sc["runAsGroup"], sc["allowPrivilegeEscalation"], sc["readOnlyRootFilesystem"]) == (
        10001,
        10001,
        False,
        True,
    )
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert c["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": 8080}
    assert {"name": "TOY_KEY", "valueFrom": {"secretKeyRef": {"name": "vdbench-env", "key": "TOY_KEY"}}} in c["env"]
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    assert set(mounts) == {"/tmp", "/dev/shm"}
    assert job["metadata"]["labels"]["org.vdbench.run"] == "r42" and job["metadata"]["labels"]["org.vdbench.model"] == "toy"
    assert job["metadata"]["namespace"] == service["metadata"]["namespace"] == "bench"
    template_labels = job["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= template_labels.items()  # the Service finds the Job's pod
    assert service["spec"]["ports"][0]["port"] == 8080 and "NetworkPolicy" not in docs


def test_cog_probe_checks_the_status_and_sandbox_denies_egress(tmp_path: Path) -> None:
    cog = by_kind(resources_for(spec_of(tmp_path, protocol="cog", adapter="predict.py:P", options={})))
    probe = cog["Job"]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
    assert probe["exec"]["command"][:2] == ["python", "-c"] and "/health-check" in probe["exec"]["command"][2]
    assert "READY" in probe["exec"]["command"][2]
    boxed = by_kind(resources_for(spec_of(tmp_path, sandbox={"network": "none"})))
    policy = boxed["NetworkPolicy"]
    validate(policy)
    assert policy["spec"]["policyTypes"] == ["Egress"] and policy["spec"]["egress"] == []
    (c,) = boxed["Job"]["spec"]["template"]["spec"]["containers"]
    assert c["args"][-2:] == ["--port", "8080"] and "httpGet" in c["readinessProbe"]  # TCP in the pod; the policy isolates


def test_names_and_quantities() -> None:
    assert dns_name("Cog_Video.X-tiny") == "vdbench-cog-video-x-tiny"
    assert len(dns_name("x" * 100)) == 63
    assert (quantity(1 << 30), quantity(77 << 20), quantity(1000)) == ("1Gi", "77Mi", "1000")


def test_cli_writes_one_file_per_variant(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "k8s"
    args = ["k8s", "--suite", str(ROOT / "model_suites" / "video"), "--root", str(ROOT), "-o", str(out)]
    assert main([*args, "--model", "cogvideox", "--image-prefix", "reg:5000/", "--run", "nightly"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["vdbench-cogvideox-full.yaml", "vdbench-cogvideox-tiny.yaml"]
    text = (out / "vdbench-cogvideox-full.yaml").read_text()
    assert "&id" not in text and "not run against a live cluster" in text
    job, _service = yaml.safe_load_all(text)
    assert job["spec"]["template"]["spec"]["containers"][0]["image"] == "reg:5000/vdbench/cogvideox:k8s"
    assert "wrote 2 file(s)" in capsys.readouterr().out
