"""clip_score, the CLIP plug-in metric: real transformers CLIP code on a tiny random-weight CLIP written here.

No weights are downloaded: the tiny model is built from a config and saved with ``save_pretrained``,
then named by ini ``vdbench_clip_model`` as a user names a local checkpoint.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import toy_manifest
from pytest_vdbench.checks.metrics import ScoreContext
from pytest_vdbench.manifest import Case

pytest.importorskip("transformers", reason="clip_score needs transformers: pip install 'pytest-vdbench[clip]'")
torch = pytest.importorskip("torch")


def _bytes_to_unicode() -> list[str]:
    # CLIP's byte-level alphabet (as in its tokenizer): printable bytes keep their character
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = [], 0
    for b in range(256):
        if b in keep:
            chars.append(chr(b))
        else:
            chars.append(chr(256 + extra))
            extra += 1
    return chars


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    folder = tmp_path_factory.mktemp("tiny-clip")
    alphabet = _bytes_to_unicode()
    vocab = {tok: i for i, tok in enumerate([*alphabet, *(c + "</w>" for c in alphabet), "<|startoftext|>", "<|endoftext|>"])}
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)
    images = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=images, tokenizer=tokenizer).save_pretrained(folder)
    torch.manual_seed(0)
    config = CLIPConfig(
        text_config={"vocab_size": len(vocab), "hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "max_position_embeddings": 77, "bos_token_id": len(vocab) - 2,
                     "eos_token_id": len(vocab) - 1, "pad_token_id": len(vocab) - 1},
        vision_config={"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2, "num_attention_heads": 4,
                       "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )  # fmt: skip
    CLIPModel(config).save_pretrained(folder)
    return folder


def _video(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).random((4, 3, 16, 16), dtype=np.float32)


def test_clip_score_is_real_clip_and_deterministic(tiny_clip: Path) -> None:
    from pytest_vdbench.checks.metrics.clip import ClipScore

    scorer = ClipScore(str(tiny_clip))
    assert scorer.unavailable() is None
    ctx = ScoreContext(case=Case(id="c", prompt="a red fox", seed=0), output=_video(0), generate=lambda p: _video(1))
    cosines = scorer.cosines(ctx)
    assert cosines.shape == (4,) and np.all(np.abs(cosines) <= 1)
    assert scorer.score(ctx)["clip_score"] == pytest.approx(100 * np.clip(cosines, 0, None).mean())
    np.testing.assert_array_equal(scorer.cosines(ctx), cosines)  # deterministic
    other = ScoreContext(case=Case(id="c", prompt="a red fox", seed=0), output=_video(7), generate=lambda p: _video(1))
    assert not np.allclose(scorer.cosines(other), cosines)  # the frames reach the model
    reworded = ScoreContext(case=Case(id="c", prompt="an empty street", seed=0), output=_video(0), generate=lambda p: _video(1))
    assert not np.allclose(scorer.cosines(reworded), cosines)  # so does the prompt


def test_missing_weights_name_the_missing_file(tmp_path: Path) -> None:
    from pytest_vdbench.checks.metrics.clip import ClipScore

    assert ClipScore(str(tmp_path)).unavailable() == (
        f"CLIP weights missing: {tmp_path / 'config.json'} (download {tmp_path} beforehand, or set ini vdbench_clip_model)"
    )
    reason = ClipScore("nobody/no-such-clip").unavailable()
    assert reason is not None and "nobody/no-such-clip/config.json in the Hugging Face cache" in reason


def _suite(write_suite: Callable[..., Path], minimum: float) -> Path:
    doc = toy_manifest("clipped")
    doc["expect"]["quality"] = {"clip_score": {"min": minimum}}
    return write_suite(doc)


def _run(pytester: pytest.Pytester, suite: Path, model: Path) -> pytest.RunResult:
    pytester.makeini(f"[pytest]\nvdbench_clip_model = {model}\n")
    return pytester.runpytest_subprocess(
        "--vdbench", f"--vdbench-suite={suite}", "--vdbench-runtime=process", "-p", "no:cacheprovider", "--benchmark-disable",
        "-k", "test_quality", "-rfEs",
    )  # fmt: skip


def test_a_manifest_bounds_clip_score(pytester: pytest.Pytester, write_suite: Callable[..., Path], tiny_clip: Path) -> None:
    result = _run(pytester, _suite(write_suite, 0.0), tiny_clip)
    result.assert_outcomes(passed=1, deselected=result.parseoutcomes().get("deselected", 0))
    failing = _run(pytester, _suite(write_suite, 100.5), tiny_clip)
    failing.assert_outcomes(failed=1, deselected=failing.parseoutcomes().get("deselected", 0))
    failing.stdout.fnmatch_lines(
        ["*clip_score = * is below expect.quality.clip_score.min = 100.5 (the frames do not show what the prompt says)"]
    )


def test_a_bound_on_missing_weights_fails_saying_what_is_missing(
    pytester: pytest.Pytester, write_suite: Callable[..., Path], tmp_path: Path
) -> None:
    result = _run(pytester, _suite(write_suite, 0.0), tmp_path)
    result.assert_outcomes(failed=1, deselected=result.parseoutcomes().get("deselected", 0))
    result.stdout.fnmatch_lines(
        ["*'clip_score' is bounded by expect.quality but was not computed: CLIP weights missing: *config.json*"]
    )
