"""``vdbench new``: the scaffold runs as generated, and each way of breaking it fails exactly its test."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_vdbench.tools.cli import main
from pytest_vdbench.tools.scaffold import ScaffoldError, adapter_names, plan_scaffold

RUN = ("--vdbench-runtime", "process", "-p", "no:cacheprovider", "--benchmark-disable", "-rfEs")


def run_model(pytester: pytest.Pytester, name: str, *extra: str) -> pytest.RunResult:
    return pytester.runpytest_subprocess("--vdbench", "--vdbench-model", name, *RUN, *extra)


def failed_tests(result: pytest.RunResult) -> set[str]:
    return {line.split(" ")[1].split("::")[-1].split("[")[0] for line in result.outlines if line.startswith("FAILED ")}


def test_new_video_model_passes_the_conformance_suite_unedited(pytester: pytest.Pytester) -> None:
    assert main(["new", "mymodel"]) == 0
    root = pytester.path
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()) == [
        "containers/mymodel/Dockerfile",
        "containers/mymodel/mymodel_adapter.py",
        "containers/mymodel/requirements.txt",
        "model_suites/video/mymodel.yaml",
    ]
    assert main(["validate"]) == 0
    result = run_model(pytester, "mymodel", "-v")
    result.assert_outcomes(passed=10, skipped=1)  # test_build: the process runtime builds no image
    result.stdout.fnmatch_lines(["*mymodel.yaml::mymodel::test_quality[[]city[]] PASSED*"])


def test_new_tabular_model_fits_and_passes_unedited(pytester: pytest.Pytester) -> None:
    assert main(["new", "mytab", "--modality", "tabular"]) == 0
    assert (pytester.path / "model_suites" / "tabular" / "data" / "mytab.csv").is_file()
    assert main(["validate"]) == 0
    result = run_model(pytester, "mytab", "-v")
    result.assert_outcomes(passed=7, skipped=1)
    result.stdout.fnmatch_lines(["*test_fit[[]example[]] PASSED*"])


def test_dockerfile_follows_the_project_convention(pytester: pytest.Pytester) -> None:
    main(["new", "conv-model"])
    text = (pytester.path / "containers" / "conv-model" / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert lines[:2] == ["ARG BASE=vdbench/base:bookworm", "FROM ${BASE}"]
    assert "COPY .vdbench-sdk/ /opt/vdbench-sdk/" in lines and "USER 10001" in lines and "EXPOSE 8080" in lines
    assert "ENV PYTHONPATH=/opt/vdbench-sdk:/app HOME=/tmp VDBENCH_THREADS=1" in lines
    assert lines[-1] == (
        'CMD ["python", "-m", "pytest_vdbench.adapter", "serve", "conv_model_adapter:ConvModel", "--host", "0.0.0.0", '
        '"--port", "8080"]'
    )
    reference = Path(__file__).parent.parent / "containers" / "refvideo" / "Dockerfile"
    ref_lines = [line for line in reference.read_text().splitlines() if line and not line.startswith("#")]
    assert ref_lines[1] == lines[1] and ref_lines[-3:-1] == lines[-3:-1]  # FROM, USER, EXPOSE as the reference model


#: (how the placeholder is broken, the one test that must fail, what its message says)
BREAKAGES = [
    (
        "return super().generate(prompt, **params)[:, :, :, :16]",
        "test_generate",
        "*shape [[]8, 3, 32, 16[]] does not match expect.shape [[]8, 3, 32, 32[]]*",
    ),
    (
        "return super().generate(prompt, **params).astype('float64')",
        "test_generate",
        "*dtype float64 is not expect.dtype float32*",
    ),
    ("return super().generate(prompt, **params) + 1.0", "test_generate", "*outside expect.range [[]0, 1[]]*"),
    (
        "self.calls = getattr(self, 'calls', 0) + 1\n        params['seed'] = (params.get('seed') or 0) + self.calls\n"
        "        return super().generate(prompt, **params)",
        "test_determinism",
        "*same seed 0 gave different outputs*seed every random generator the model uses*",
    ),
    (
        "return super().generate('', **params)",
        "test_quality",
        "*prompt_sensitivity = 0 is below expect.quality.prompt_sensitivity.min = 0.01*",
    ),
    ("LOAD", "test_health", "*RuntimeError: checkpoint model.safetensors not found*"),
]


@pytest.mark.parametrize(
    ("body", "failing", "message"), BREAKAGES, ids=["shape", "dtype", "range", "nondeterministic", "ignores_prompt", "load_crash"]
)
def test_breaking_the_scaffold_fails_exactly_the_relevant_test(
    pytester: pytest.Pytester, body: str, failing: str, message: str
) -> None:
    main(["new", "broken"])
    module = pytester.path / "containers" / "broken" / "broken_adapter.py"
    if body == "LOAD":
        override = "    def load(self):\n        raise RuntimeError('checkpoint model.safetensors not found')\n"
    else:
        override = f"    def generate(self, prompt, **params):\n        {body}\n"
    module.write_text(module.read_text() + f"\n\n_Placeholder = Broken\n\n\nclass Broken(_Placeholder):\n{override}")
    assert main(["validate"]) == 0  # still valid: only running it tells
    result = run_model(pytester, "broken")
    assert failed_tests(result) == {failing}, result.stdout.str()
    result.stdout.fnmatch_lines([message])


def test_manifest_outside_the_project_runs_from_anywhere(pytester: pytest.Pytester) -> None:
    project, suites, elsewhere = pytester.mkdir("project"), pytester.mkdir("suites"), pytester.mkdir("elsewhere")
    assert main(["new", "outside", "--root", str(project), "--suite", str(suites)]) == 0
    text = (suites / "outside.yaml").read_text()
    assert "context: ../project/containers/outside" in text  # relative to the manifest, as it lives outside the root
    assert main(["validate", str(suites / "outside.yaml")]) == 0
    pytester.chdir()
    import os

    os.chdir(elsewhere)
    # run from elsewhere, the manifest lies outside the project: its context must be allowed (#17)
    refused = pytester.runpytest_subprocess("--vdbench", f"--vdbench-suite={suites / 'outside.yaml'}", *RUN)
    refused.stdout.fnmatch_lines(["*image.context: *is outside the project*--vdbench-allow-path=*"])
    result = pytester.runpytest_subprocess(
        "--vdbench", f"--vdbench-suite={suites / 'outside.yaml'}", f"--vdbench-allow-path={project}", *RUN
    )
    result.assert_outcomes(passed=10, skipped=1)


def test_refuses_to_overwrite_and_bad_names(pytester: pytest.Pytester, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["new", "dup"]) == 0
    capsys.readouterr()
    assert main(["new", "dup"]) == 1
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "containers/dup/Dockerfile already exists" in err
    assert main(["new", "Dup_Model"]) == 1
    assert "model name 'Dup_Model' must match ^[a-z0-9][a-z0-9_.-]*$" in capsys.readouterr().err
    (pytester.path / "model_suites" / "other").mkdir(parents=True)
    (pytester.path / "model_suites" / "other" / "x.yaml").write_text("name: taken\n")
    with pytest.raises(ScaffoldError, match=r"model name 'taken' is already used by .*x\.yaml"):
        plan_scaffold("taken", "video", pytester.path)


@pytest.mark.parametrize(
    ("name", "module", "cls"),
    [
        ("mymodel", "mymodel_adapter", "Mymodel"),
        ("my-model.v2", "my_model_v2_adapter", "MyModelV2"),
        ("3d_gen", "m_3d_gen_adapter", "Model3dGen"),
    ],
)
def test_adapter_names_are_valid_python(name: str, module: str, cls: str) -> None:
    assert adapter_names(name) == (module, cls)
    assert module.isidentifier() and cls.isidentifier()


@pytest.mark.docker
@pytest.mark.slow
def test_scaffold_builds_and_passes_in_its_container(pytester: pytest.Pytester) -> None:
    """The Docker path of a fresh scaffold: test_build builds the image from the generated Dockerfile."""
    from helpers import docker_or_skip

    docker_or_skip()
    assert main(["new", "dockmodel"]) == 0
    result = pytester.runpytest_subprocess(
        "--vdbench", "--vdbench-model", "dockmodel", "--vdbench-runtime", "docker", "-p", "no:cacheprovider", "-rfEs"
    )
    result.assert_outcomes(passed=11)
