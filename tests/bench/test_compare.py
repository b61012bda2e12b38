"""The rule that picks the compositor's default encoder from the sweep."""

from __future__ import annotations

from bench.compare import Encoder, Quality, Render, choose
from bench.measure import Usage

MB = 1_000_000
PLAN = Render("plan", Usage(wall=10, cpu=20, rss=0), 2 * MB, Quality(ssim=0.965, psnr=43))


def render(preset: str, crf: int, cpu: float, ssim: float, size: float, params: str = "") -> Render:
    return Render(f"{preset} {crf}", Usage(wall=cpu / 2, cpu=cpu, rss=0), int(size * MB), Quality(ssim, 40), Encoder(preset, crf, params))


def test_the_fastest_family_wins_at_its_highest_crf_that_keeps_the_plans_quality():
    sweep = [
        # superfast: CRF 20 happened to be measured faster than 21, as on a busy machine; 22 is too soft.
        render("superfast", 20, cpu=6.9, ssim=0.967, size=2.8),
        render("superfast", 21, cpu=8.2, ssim=0.963, size=2.2),
        render("superfast", 22, cpu=7.3, ssim=0.958, size=1.7),
        render("veryfast", 21, cpu=11.1, ssim=0.962, size=1.9),
        # ultrafast is fastest but never reaches the plan's quality within the size limit.
        render("ultrafast", 21, cpu=5.5, ssim=0.939, size=3.6),
        render("ultrafast", 17, cpu=5.9, ssim=0.962, size=6.5),
    ]
    chosen = choose(PLAN, sweep)
    assert chosen is not None and (chosen.encoder.preset, chosen.encoder.crf) == ("superfast", 21)


def test_families_differ_by_their_x264_parameters_too():
    sweep = [
        render("superfast", 21, cpu=8.0, ssim=0.963, size=2.2, params="mbtree=1"),
        render("superfast", 21, cpu=7.0, ssim=0.975, size=5.8),  # faster, but 2.9× the plan's size
        render("superfast", 19, cpu=7.2, ssim=0.980, size=8.0),
    ]
    chosen = choose(PLAN, sweep)
    assert chosen is not None and chosen.encoder.params == "mbtree=1"


def test_nothing_eligible_is_no_choice():
    assert choose(PLAN, [render("ultrafast", 23, cpu=4, ssim=0.93, size=1.0)]) is None


def test_the_default_stays_when_another_family_is_faster_only_by_noise():
    default = Encoder("superfast", 21, "mbtree=1")
    sweep = [
        render("superfast", 21, cpu=7.8, ssim=0.963, size=2.2, params="mbtree=1"),
        render("superfast", 20, cpu=8.0, ssim=0.967, size=2.8, params="mbtree=1"),
        render("superfast", 21, cpu=7.6, ssim=0.963, size=2.1, params="mbtree=1:b-adapt=0"),  # 3 % faster: noise
        render("superfast", 21, cpu=7.7, ssim=0.963, size=2.1, params="mbtree=1:b-adapt=0"),
    ]
    assert choose(PLAN, sweep, default=default).encoder.params == "mbtree=1"
    # 8 % faster: two full runs here disagreed by that much on the same pair.
    drift = [*sweep[:2], render("superfast", 21, cpu=7.2, ssim=0.963, size=2.5, params="cabac=0")]
    assert choose(PLAN, drift, default=default).encoder.params == "mbtree=1"
    # 20 % faster is not noise: the other family wins.
    faster = [*sweep[:2], render("superfast", 21, cpu=6.2, ssim=0.963, size=2.1, params="cabac=0")]
    assert choose(PLAN, faster, default=default).encoder.params == "cabac=0"
