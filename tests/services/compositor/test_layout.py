"""The compositor's arithmetic: panel fitting, frame-exact timelines, highlight intervals."""

import pytest

from pathlib import Path

from services.compositor.layout import Clip, Piece, SideSpec, enable_expr, fit, panel_size, speaking, timeline, total_frames
from services.compositor.panel import decode_options, scale_flags
from shared.ffmpeg import VideoInfo


@pytest.mark.parametrize(
    "source, box, expected",
    [
        ((512, 512), (640, 480), (480, 480)),  # square: full height, pillarboxed
        ((1280, 720), (640, 480), (640, 360)),  # 16:9: full width, letterboxed
        ((720, 1280), (640, 480), (270, 480)),  # portrait
        ((640, 480), (640, 480), (640, 480)),  # already the panel
        ((320, 240), (640, 480), (640, 480)),  # small: scaled up, same shape
        ((1000, 3), (640, 480), (640, 2)),  # degenerate: still even, never zero
    ],
)
def test_fit_keeps_the_shape_inside_the_panel(source, box, expected):
    width, height = fit(*source, *box)
    assert (width, height) == expected
    assert width % 2 == 0 and height % 2 == 0
    assert width <= box[0] and height <= box[1]


def _side(name: str, *sizes: tuple[int, int]) -> SideSpec:
    clips = tuple(
        Clip(Path(f"{name}-{i}.mp4"), i * 10.0, i * 10.0 + 5, VideoInfo(width=w, height=h, fps=25.0, duration=5.0)) for i, (w, h) in enumerate(sizes)
    )
    return SideSpec(name, name, None, clips=clips)


@pytest.mark.parametrize(
    "caller, callee, expected",
    [
        ([(512, 512)], [(512, 512), (1024, 1024)], (480, 480)),  # one shape everywhere: panels of that shape
        ([(1280, 720)], [], (640, 360)),  # a local side takes the generated side's shape
        ([(512, 512)], [(1280, 720)], (640, 480)),  # mixed shapes: the box
        ([], [], (640, 480)),  # local panels only: the box
        ([(1000, 3)], [(1000, 3)], (640, 480)),  # a sliver: the box, not a 2-pixel-high video
    ],
)
def test_panels_take_the_side_videos_shape_when_they_share_one(caller, callee, expected):
    assert panel_size((_side("caller", *caller), _side("callee", *callee)), 640, 480) == expected


def test_timeline_lays_clips_at_their_start_with_idle_between():
    pieces = timeline([(0.5, 1.5), (2.5, 3.5)], duration=4.0, fps=25)
    assert pieces == [Piece(13, None), Piece(25, 0), Piece(25, None), Piece(25, 1), Piece(12, None)]
    assert sum(p.frames for p in pieces) == total_frames(4.0, 25) == 100


def test_timeline_covers_the_call_exactly_whatever_the_rounding():
    spans = [(i * 1.37, i * 1.37 + 1.01) for i in range(20)]
    pieces = timeline(spans, duration=29.99, fps=25)
    assert sum(p.frames for p in pieces) == total_frames(29.99, 25)
    assert [p.clip for p in pieces if p.clip is not None] == list(range(20))


def test_timeline_trims_overlaps_and_spans_past_the_end():
    pieces = timeline([(0.0, 2.0), (1.0, 3.0), (3.5, 9.0), (5.0, 6.0)], duration=4.0, fps=10)
    assert pieces == [Piece(20, 0), Piece(10, 1), Piece(5, None), Piece(5, 2)]


def test_timeline_orders_clips_by_start_but_keeps_their_numbers():
    assert timeline([(2.0, 4.0), (0.0, 2.0)], duration=4.0, fps=10) == [Piece(20, 1), Piece(20, 0)]


def test_full_mode_segments_leave_no_idle_piece():
    assert timeline([(0.0, 1.96), (1.96, 4.0)], duration=4.0, fps=25) == [Piece(49, 0), Piece(51, 1)]


def test_speaking_bridges_breaths_and_drops_blips():
    speech = [[0.5, 1.0], [1.2, 2.0], [3.0, 3.05], [3.5, 9.0], [-1, 0.2]]
    assert speaking(speech, duration=4.0) == [(0.0, 2.0), (3.5, 4.0)]


def test_enable_expression_is_true_inside_the_intervals_only():
    assert enable_expr([(0.5, 2.0), (3.5, 4.0)]) == "between(t,0.5,2)+between(t,3.5,4)"
    assert enable_expr([(1, 2), (3, 4), (5, 6)]) == "(between(t,1,2))+(between(t,3,4)+between(t,5,6))"
    assert enable_expr([]) is None


def test_enable_expression_nests_shallowly_however_many_intervals():
    expr = enable_expr([(i * 2.0, i * 2.0 + 1.0) for i in range(4000)])
    depth = deepest = 0
    for char in expr:
        depth += {"(": 1, ")": -1}.get(char, 0)
        deepest = max(deepest, depth)
    assert expr.count("between(") == 4000 and deepest <= 14  # log2(4000) levels of sums, +1 for between's own


def test_scaler_is_bicubic_for_mild_resizes_and_area_for_big_reductions():
    assert scale_flags(512, 480) == "bicubic"
    assert scale_flags(240, 480) == "bicubic"  # enlarging
    assert scale_flags(720, 360) == "area"
    assert scale_flags(1080, 480) == "area"


def test_only_clips_halved_or_more_skip_deblocking_and_only_on_b_frames():
    assert decode_options(1280, 720, 640, 360) == {"skip_loop_filter": "bidir"}
    assert decode_options(1920, 1080, 640, 360) == {"skip_loop_filter": "bidir"}
    assert decode_options(512, 512, 480, 480) == {}
    assert decode_options(1280, 720, 960, 540) == {}  # a third smaller: deblocking still shows
    assert decode_options(1280, 720, 640, 480) == {}  # stretched taller: not halved both ways
