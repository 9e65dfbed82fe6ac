"""``vdbench validate`` and the same checks at collection: every problem, with file and line."""

from __future__ import annotations

import fnmatch
import json
import textwrap
from pathlib import Path

import pytest

from helpers import ADAPTERS, ROOT
from pytest_vdbench.checks.metrics import builtin_registry
from pytest_vdbench.manifest.validate import validate_paths
from pytest_vdbench.runtime.cogyaml import cog_yaml_problems
from pytest_vdbench.tools.cli import main

METRICS = builtin_registry()

TOY = str(ADAPTERS)
DATA = ROOT / "model_suites" / "tabular" / "data"

#: file name -> YAML; each bad manifest has the problems listed in EXPECTED
BAD = {
    "a_schema.yaml": f"""\
        name: schema
        modality: video
        adapter: toy:ToyVideo
        image: {{context: {TOY}}}
        resourses: {{cpus: 1}}
        cases: [{{id: c, prompt: p}}]
        """,
    "b_files.yaml": """\
        name: files
        modality: video
        adapter: toy:ToyVideo
        image:
          context: containers/nowhere
        cases: [{id: c, prompt: p}]
        """,
    "c_adapter.yaml": f"""\
        name: adapter
        modality: video
        adapter: toy:ToyVidoe
        image: {{context: {TOY}}}
        cases: [{{id: c, prompt: p}}]
        """,
    "d_module.yaml": f"""\
        name: module
        modality: video
        adapter: toyy:ToyVideo
        image: {{context: {TOY}}}
        cases: [{{id: c, prompt: p}}]
        """,
    "e_budgets.yaml": f"""\
        name: budgets
        modality: video
        adapter: toy:ToyVideo
        image: {{context: {TOY}}}
        resources: {{memory: 512m}}
        timeouts: {{generate: 2s}}
        cases:
          - id: c
            prompt: ""
            params: {{frames: 4, height: 16, width: 16}}
        expect:
          shape: [8, 3, 16, 16]
          budgets:
            generate_seconds: 5
            peak_memory: 1g
          quality:
            flickr: {{min: 0.5}}
            prompt_sensitivity: {{min: 0.01}}
        """,
    "f_tabular.yaml": f"""\
        name: tab
        modality: tabular
        adapter: toy_tabular:ToyTabular
        image: {{context: {TOY}}}
        cases:
          - id: missing
            dataset: data/none.csv
          - id: adult
            dataset: {DATA / "adult_like.csv"}
            target: salary
            params: {{rows: 10}}
        expect:
          shape: [10, 7]
        """,
    "g_variants.yaml": f"""\
        name: variants
        modality: video
        adapter: toy:ToyVideo
        image: {{context: {TOY}}}
        cases: [{{id: c, prompt: p}}]
        variants:
          tiny: {{}}
          served:
            protocol: cog
            image: {{context: {TOY}, dockerfile: Nope.Dockerfile}}
        """,
    "h_duplicate.yaml": f"""\
        name: files
        modality: video
        adapter: toy:ToyVideo
        image: {{context: {TOY}}}
        cases: [{{id: c, prompt: p}}]
        """,
}

EXPECTED = [
    "bad/a_schema.yaml:5: resourses: unknown key 'resourses'; did you mean 'resources'?*",
    "bad/b_files.yaml:5: image.context: build context */containers/nowhere does not exist*",
    "bad/c_adapter.yaml:3: adapter: toy.py defines no class 'ToyVidoe'; did you mean 'ToyVideo'? (classes there: ToyVideo)",
    "bad/d_module.yaml:3: adapter: adapter module 'toyy' is not in the build context * (looked for toyy.py or toyy/__init__.py)*",
    "bad/e_budgets.yaml:12: expect.shape: case 'c' asks for frames = 4 (params.frames) but expect.shape[[]0] is 8*",
    "bad/e_budgets.yaml:14: expect.budgets.generate_seconds: budget 5s is not below timeouts.generate = 2s*",
    "bad/e_budgets.yaml:15: expect.budgets.peak_memory: peak_memory budget 1024 MiB is over resources.memory 512 MiB*",
    "bad/e_budgets.yaml:17: expect.quality.flickr: no video metric 'flickr'; did you mean 'flicker'?*",
    "bad/e_budgets.yaml:18: expect.quality.prompt_sensitivity: case 'c' has no prompt, so prompt_sensitivity cannot be scored",
    "bad/f_tabular.yaml:3: adapter: warning: Dockerfile does not COPY toy_tabular.py into the image: the process runtime "
    "finds it in the context, the container will not (ModuleNotFoundError in test_health); add it to a COPY line",
    "bad/f_tabular.yaml:7: cases.0.dataset: case 'missing': dataset */bad/data/none.csv does not exist",
    "bad/f_tabular.yaml:10: cases.1.target: case 'adult': no column 'salary' in adult_like.csv (columns: age, *income)",
    "bad/f_tabular.yaml:13: expect.shape: case 'adult': expect.shape has 7 columns but the dataset has 6",
    "bad/g_variants.yaml:9: variants.served.protocol: variant 'served' changes protocol from 'native' to 'cog'*",
    "bad/g_variants.yaml:10: variants.served.image.dockerfile: Dockerfile 'Nope.Dockerfile' not found in the build context*",
    "bad/h_duplicate.yaml:1: name: model name 'files' is already used by */bad/b_files.yaml",
]


@pytest.fixture
def bad_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    bad = tmp_path / "bad"
    bad.mkdir()
    for name, text in BAD.items():
        (bad / name).write_text(textwrap.dedent(text))
    monkeypatch.chdir(tmp_path)
    return bad


def test_every_problem_of_every_file_with_file_and_line(bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "bad"]) == 1
    out, err = capsys.readouterr()
    lines = out.splitlines()
    for pattern in EXPECTED:
        assert any(fnmatch.fnmatchcase(line, pattern) for line in lines), f"{pattern}\nnot in\n{out}"
    assert len(lines) == len(EXPECTED), out
    assert "15 error(s), 1 warning(s) in 8 manifest(s)" in err


def test_json_output_for_ci(bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "bad", "--format", "json"]) == 1
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["problems"]) == len(EXPECTED) and doc["errors"] == len(EXPECTED) - 1 and doc["warnings"] == 1
    assert len(doc["files"]) == len(BAD)
    first = doc["problems"][0]
    assert first == {
        "path": "bad/a_schema.yaml",
        "line": 5,
        "key": "resourses",
        "message": first["message"],
        "code": "schema",
        "severity": "error",
    }
    assert {p["code"] for p in doc["problems"]} >= {"context", "adapter-class", "adapter-module", "budget", "dataset", "name"}
    assert [p["code"] for p in doc["problems"] if p["severity"] == "warning"] == ["dockerfile-copy"]


def test_github_annotations(bad_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "bad/c_adapter.yaml", "--format", "github"]) == 1
    out = capsys.readouterr().out
    assert out.startswith("::error file=bad/c_adapter.yaml,line=3,title=vdbench validate: adapter::toy.py defines no class")


def test_the_projects_own_suites_are_clean() -> None:
    report = validate_paths([ROOT / "model_suites"], ROOT, METRICS, cog_check=cog_yaml_problems)
    assert report.files and report.problems == []


def test_dockerfile_must_take_its_base_from_the_build_arg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = tmp_path / "containers" / "m"
    ctx.mkdir(parents=True)
    (ctx / "m.py").write_text("class M:\n    def generate(self, prompt, **params): ...\n")
    (ctx / "Dockerfile").write_text("FROM python:3.11\nCOPY m.py /app/\n")
    (tmp_path / "m.yaml").write_text("name: m\nmodality: video\nadapter: m:M\nimage: {context: containers/m}\ncases: [{id: c}]\n")
    report = validate_paths([tmp_path / "m.yaml"], tmp_path, METRICS, cog_check=cog_yaml_problems)
    assert [p.format(tmp_path) for p in report.problems] == [
        "m.yaml:4: image.dockerfile: Dockerfile: the first FROM is 'FROM python:3.11'; start with `ARG BASE=<default>` then "
        "`FROM ${BASE}` so that image.base (passed as the BASE build arg) chooses the base image"
    ]


def test_adapter_methods_and_signatures(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text("ARG BASE\nFROM ${BASE}\nCOPY tab.py /app/\n")
    (ctx / "tab.py").write_text(
        "from pytest_vdbench.adapter import ModelAdapter\n\n"
        "class Base(ModelAdapter):\n    def generate(self, prompt, seed=None, rows=10):\n        pass\n\n"
        "class Tab(Base):\n    pass\n"
    )
    (tmp_path / "t.yaml").write_text(
        "name: t\nmodality: tabular\nadapter: tab:Tab\nimage: {context: ./ctx}\n"
        f"cases: [{{id: c, dataset: {DATA / 'adult_like.csv'}, params: {{rows: 5, temperature: 0.5}}}}]\n"
    )
    messages = [p.message for p in validate_paths([tmp_path / "t.yaml"], tmp_path, METRICS, cog_check=cog_yaml_problems).problems]
    assert messages == [
        "Tab.generate() does not accept temperature (the harness passes seed and the cases' params as keyword arguments); "
        "add **params to its signature",
        "Tab does not define fit() (ModelAdapter.fit raises NotImplementedError); define fit(self, table, columns, **params)",
    ]
    (ctx / "tab.py").write_text("class Tab(:\n")
    (problem,) = validate_paths([tmp_path / "t.yaml"], tmp_path, METRICS, cog_check=cog_yaml_problems).problems
    assert problem.key == "adapter" and problem.message.startswith(f"{ctx / 'tab.py'}:1: syntax error:")


def test_collection_reports_problems_as_one_failing_test(pytester: pytest.Pytester) -> None:
    suite = pytester.mkdir("suite")
    (suite / "bad.yaml").write_text(textwrap.dedent(BAD["e_budgets.yaml"]))
    (suite / "good.yaml").write_text(
        f"name: good\nmodality: video\nadapter: toy:ToyVideo\nimage: {{context: {TOY}}}\ncases: [{{id: c, prompt: p}}]\n"
    )
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK  # collected, not run: the good model's tests and bad.yaml's one test
    result.stdout.fnmatch_lines(["*<InvalidManifest manifest>*", "*<VariantModule good>*"])
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "suite/bad.yaml", "-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ suite/bad.yaml: invalid manifest _*",
            "suite/bad.yaml:12: expect.shape: case 'c' asks for frames = 4*",
            "suite/bad.yaml:14: expect.budgets.generate_seconds: budget 5s is not below timeouts.generate = 2s*",
            "(check it without pytest: vdbench validate suite/bad.yaml)",
        ]
    )


def test_a_module_the_image_may_install_only_warns_at_collection(pytester: pytest.Pytester) -> None:
    suite = pytester.mkdir("suite")
    (suite / "m.yaml").write_text(textwrap.dedent(BAD["d_module.yaml"]))
    result = pytester.runpytest_subprocess("--vdbench", "--vdbench-suite", str(suite), "--collect-only", "-p", "no:cacheprovider")
    assert result.ret == 0
    result.stdout.fnmatch_lines(["*PytestWarning: suite/m.yaml:3: adapter: warning: adapter module 'toyy' is not in the build*"])


def test_warnings_pass_unless_strict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "w.yaml").write_text(
        f"name: w\nmodality: video\nadapter: toy:ToyVideo\nimage: {{context: {TOY}}}\n"
        "requires: {gpu: true}\ncases: [{id: c, prompt: p}]\n"
    )
    assert main(["validate", "w.yaml"]) == 0
    out, err = capsys.readouterr()
    assert out == (
        "w.yaml:5: requires.gpu: warning: requires.gpu: true but resources.gpus is 0: "
        "the host must have a GPU the container never gets\n"
    )
    assert "0 error(s), 1 warning(s) in 1 manifest(s)" in err
    assert main(["validate", "w.yaml", "--strict"]) == 1


def test_dockerfile_must_copy_the_adapter_module(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    (ctx / "pkg").mkdir(parents=True)
    (ctx / "pkg" / "__init__.py").write_text("class M:\n    def generate(self, prompt, **params): ...\n")
    (tmp_path / "m.yaml").write_text("name: m\nmodality: video\nadapter: pkg:M\nimage: {context: ./ctx}\ncases: [{id: c}]\n")
    for copy, warned in [
        ("COPY other.py /app/", True),
        ("COPY --from=builder /src/pkg /app/pkg", True),
        ("COPY pkg/ /app/pkg/", False),
        ('COPY ["pkg", "/app/pkg"]', False),
        ("COPY . /app/", False),
        ("ADD --chown=10001 ./pkg /app/pkg", False),
    ]:
        (ctx / "Dockerfile").write_text(f"ARG BASE\nFROM ${{BASE}}\n{copy}\n")
        problems = validate_paths([tmp_path / "m.yaml"], tmp_path, METRICS, cog_check=cog_yaml_problems).problems
        assert [p.code for p in problems] == (["dockerfile-copy"] if warned else []), copy
