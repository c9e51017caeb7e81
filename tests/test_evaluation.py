import numpy as np
import pytest

from bgclear.evaluation.metrics import all_metrics, connectivity_error, gradient_error, iou, mse, sad
from bgclear.evaluation.run import default_eval_dir, evaluate, format_table
from conftest import soft_disc


def test_metrics_zero_for_perfect_prediction_and_grow_with_error():
    gt = soft_disc(120, 100)
    m = all_metrics(gt, gt, gt > 0.01)
    assert all(v == 0 for k, v in m.items() if k != "iou") and m["iou"] == 1
    worse = np.clip(gt + 0.2 * (gt > 0), 0, 1)
    assert sad(worse, gt) > 0 and mse(worse, gt) > 0
    blurry = soft_disc(120, 100, soft=20)
    assert gradient_error(blurry, gt) > 0 and connectivity_error(blurry, gt) > 0
    assert sad(np.zeros_like(gt), gt) == pytest.approx(gt.sum() / 1000)
    assert iou(np.zeros_like(gt), gt) == 0


def test_region_restricts_the_sum():
    gt = np.zeros((10, 10), np.float32)
    pred = np.ones((10, 10), np.float32)
    region = np.zeros((10, 10), bool)
    region[:2] = True
    assert sad(pred, gt, region) == pytest.approx(0.02)
    assert mse(pred, gt, region) == pytest.approx(1.0)


def test_eval_on_shared_data():
    root = default_eval_dir()
    if not (root / "alphamatting_train_lowres").is_dir():
        pytest.skip(f"evaluation data not found at {root} (set BGCLEAR_EVAL_DIR)")
    result = evaluate(root / "alphamatting_train_lowres", segmenter="u2netp", refiners=("none", "guided"), limit=2)
    assert len(result["rows"]) == 4
    table = format_table(result["summary"])
    assert "u2netp+guided" in table
    widths = {line.count("|") for line in table.splitlines()}
    assert widths == {14}, table  # header, separator and rows: 13 columns each
    for row in result["rows"]:
        assert 0 <= row["iou"] <= 1 and row["sad"] >= 0


def test_eval_scores_the_second_opinion_from_the_same_pixels():
    root = default_eval_dir()
    if not (root / "alphamatting_train_lowres").is_dir():
        pytest.skip(f"evaluation data not found at {root} (set BGCLEAR_EVAL_DIR)")
    from bgclear.errors import ModelError

    plain = evaluate(root / "alphamatting_train_lowres", segmenter="u2netp", refiners=("none", "guided"), limit=2)
    try:
        checked = evaluate(root / "alphamatting_train_lowres", segmenter="u2netp", refiners=("none", "guided"), limit=2,
                           second_opinion=True)
    except ModelError as exc:
        pytest.skip(str(exc))
    assert set(checked["summary"]) == {"u2netp+none", "u2netp+guided (second opinion)"}
    raw = lambda result: [r["sad"] for r in result["rows"] if r["method"] == "u2netp+none"]  # noqa: E731
    assert raw(checked) == raw(plain)  # the session path feeds the network the same pixels


def test_cli_eval_clicks_with_the_second_opinion(tmp_path):
    import json

    from click.testing import CliRunner

    from bgclear.cli import main

    root = default_eval_dir()
    if not (root / "grabcut_dev").is_dir():
        pytest.skip(f"evaluation data not found at {root} (set BGCLEAR_EVAL_DIR)")
    out = tmp_path / "clicks.json"
    result = CliRunner().invoke(main, ["eval", str(root / "grabcut_dev"), "--segmenter", "u2netp", "--clicks", "2",
                                       "--limit", "1", "--start", "auto", "--second-opinion", "--json", str(out)])
    if result.exit_code != 0 and "mobilesam" in result.output.lower():
        pytest.skip(result.output)
    assert result.exit_code == 0, result.output
    rows = json.loads(out.read_text())["rows"]
    assert len(rows) == 1 and rows[0]["start"] == "auto" and len(rows[0]["ious"]) == 3
