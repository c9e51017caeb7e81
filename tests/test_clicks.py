"""The simulated user of the click protocol, on masks whose right answer is known."""

from __future__ import annotations

import numpy as np

from bgclear.evaluation.clicks import ClickRun, mask_iou, next_click, simulate, summarise_runs


def disc(h=100, w=120, cx=60, cy=50, r=20):
    yy, xx = np.mgrid[0:h, 0:w]
    return (xx - cx) ** 2 + (yy - cy) ** 2 <= r * r


def test_first_click_on_an_empty_start_is_the_object_centre():
    gt = disc()
    x, y, keep = next_click(np.zeros_like(gt), gt)
    assert keep and (x, y) == (60, 50)


def test_the_largest_error_region_decides_and_gets_a_remove_click():
    gt = disc()
    pred = gt.copy()
    pred[5:45, 80:115] = True  # a wrongly kept block, larger than what is missed below
    pred[disc(r=5)] = False  # a small hole
    x, y, keep = next_click(pred, gt)
    assert not keep and 80 <= x < 115 and 5 <= y < 45


def test_the_image_edge_counts_as_boundary():
    gt = np.zeros((60, 60), bool)
    gt[:30, :30] = True  # a square in the top-left corner, touching two image edges
    x, y, keep = next_click(np.zeros_like(gt), gt)
    assert keep and 13 <= x <= 16 and 13 <= y <= 16  # its middle, not the corner


def test_ignored_pixels_are_neither_missed_nor_wrong():
    gt = disc()
    ignore = disc(r=22) & ~disc(r=18)
    pred = disc(r=18)  # misses only the ignored band
    assert next_click(pred, gt, ignore) is None
    assert mask_iou(pred, gt, ignore) == 1.0
    assert mask_iou(pred, gt) < 1.0


def test_simulate_counts_clicks_and_harmful_ones():
    gt = disc()
    perfect = simulate(gt, lambda clicks: gt.astype(np.float32), np.zeros_like(gt), max_clicks=5)
    assert perfect.ious[:2] == [0.0, 1.0] and perfect.clicks_to(0.9, 5) == 1 and len(perfect.ious) == 6
    # An answer that gets worse with every click: each click is harmful and 90 % is never reached.
    def worse(clicks):
        return disc(r=max(1, 20 - 6 * len(clicks))).astype(np.float32)

    bad = simulate(gt, worse, disc(r=19), max_clicks=3, stop_at=2.0)
    assert bad.ious[0] > 0.85 and bad.clicks_to(0.85, 3) == 0
    assert bad.harmful_clicks() == 3
    summary = summarise_runs([perfect, bad], max_clicks=5)
    assert summary["n"] == 2 and summary["harmful"] == 3 and summary["noc90"] == 3.0  # 1 click, and never (counted as max_clicks = 5)


def test_never_reaching_counts_the_maximum():
    run = ClickRun(ious=[0.1, 0.5, 0.8], clicks=[])
    assert run.clicks_to(0.9, 20) == 20
    assert summarise_runs([run], max_clicks=20)["never90"] == 1
