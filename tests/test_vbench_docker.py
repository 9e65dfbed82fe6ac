"""The real VBench container (containers/vbench) scoring a real model's videos: docker-marked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers import ROOT, containers, docker_or_skip

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: VBench 0.1.5's dimensions that need weights (vbench.VBench.build_full_dimension_list less
#: temporal_flickering); each must be listed as not computed with the file it misses
WEIGHT_DIMENSIONS = {
    "subject_consistency": "dino_model/facebookresearch_dino_main/hubconf.py",
    "background_consistency": "clip_model/ViT-B-32.pt",
    "aesthetic_quality": "clip_model/ViT-L-14.pt",
    "imaging_quality": "pyiqa_model/musiq_spaq_ckpt-358bb6af.pth",
    "object_class": "grit_model/grit_b_densecap_objectdet.pth",
    "multiple_objects": "grit_model/grit_b_densecap_objectdet.pth",
    "color": "grit_model/grit_b_densecap_objectdet.pth",
    "spatial_relationship": "grit_model/grit_b_densecap_objectdet.pth",
    "scene": "caption_model/tag2text_swin_14m.pth",
    "temporal_style": "ViCLIP/ViClip-InternVid-10M-FLT.pth",
    "overall_consistency": "ViCLIP/ViClip-InternVid-10M-FLT.pth",
    "human_action": "umt_model/l16_ptk710_ftk710_ftk400_f16_res224.pth",
    "appearance_style": "clip_model/ViT-B-32.pt",
    "motion_smoothness": "amt_model/amt-s.pth",
    "dynamic_degree": "raft_model/models/raft-things.pth",
}


def test_vbench_scores_a_video_model_with_its_own_temporal_flickering(
    pytester: pytest.Pytester, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docker_or_skip()
    monkeypatch.setenv("VBENCH_CACHE_DIR", str(tmp_path / "no-vbench-cache"))  # whatever this host has cached
    report = tmp_path / "report"
    result = pytester.runpytest_subprocess(
        "--vdbench",
        "--vdbench-suite",
        str(ROOT / "model_suites" / "video" / "refvideo.yaml"),
        "--vdbench-suite",
        str(ROOT / "model_suites" / "metrics" / "vbench.yaml"),
        "--vdbench-metrics=vbench",
        "-k",
        "quality",
        f"--vdbench-report={report}",
        "-p",
        "no:cacheprovider",
        timeout=900,
    )
    result.assert_outcomes(passed=2, deselected=9)
    (row,) = json.loads((report / "report.json").read_text())["models"]
    for case, scores in row["quality_by_case"].items():
        vbench = scores["vbench.temporal_flickering"]
        # VBench's formula on 8-bit frames vs the built-in on float frames: equal up to quantisation
        assert 0.5 < vbench < 1 and abs(vbench - scores["flicker"]) < 1 / 255, (case, vbench, scores["flicker"])
        notes = {k: v for k, v in row["quality_notes_by_case"][case].items() if k.startswith("vbench.")}
        assert notes == {f"vbench.{d}": f"missing /weights/vbench/{f}" for d, f in WEIGHT_DIMENSIONS.items()}
    (scorer,) = row["metric_containers"]
    model = scorer["metadata"]["model"]
    assert model["vbench_version"] == "0.1.5" and model["computed"] == ["temporal_flickering"]
    assert sorted(model["dimensions"]) == sorted([*WEIGHT_DIMENSIONS, "temporal_flickering"])
    assert scorer["metadata"]["libraries"]["torch"] == "2.13.0+cpu"
    assert scorer["image"].startswith("vdbench/vbench:")
    assert (
        "`vbench.dynamic_degree` not computed: missing /weights/vbench/raft_model/models/raft-things.pth"
        in (report / "report.md").read_text()
    )
    assert containers("vbench", "refvideo") == []
