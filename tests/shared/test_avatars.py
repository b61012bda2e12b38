"""A call's own avatar: checked (format by magic bytes, size, decodable, short side) and stored as PNG."""

from __future__ import annotations

import pytest

from shared import avatars
from shared.avatars import AVATAR_MIN_SIDE, AvatarError, check_avatar, image_format, store_avatar
from shared.settings import get_settings
from tests.support.media import ffmpeg, probe

CALL = "CA" + "a" * 32


def image(tmp_path, name: str, size: str = "300x400") -> bytes:
    path = tmp_path / name
    ffmpeg("-f", "lavfi", "-i", f"color=c=orange:s={size}", "-frames:v", "1", str(path))
    return path.read_bytes()


@pytest.mark.parametrize("name, kind", [("a.png", "png"), ("a.jpg", "jpeg"), ("a.webp", "webp")])
def test_each_accepted_format_is_recognised_and_stored_as_png(tmp_path, local_store, name, kind):
    data = image(tmp_path, name)
    assert image_format(data) == kind
    key = store_avatar(CALL, "callee", data, get_settings(), local_store)
    assert key == f"avatars/{CALL}-callee.png"
    stored = tmp_path / "stored.png"
    local_store.download_file(key, stored)
    assert stored.read_bytes().startswith(b"\x89PNG")
    stream = probe(stored)["streams"][0]
    assert (stream["width"], stream["height"]) == (300, 400)


def test_a_gif_is_refused_by_its_bytes_whatever_its_name(tmp_path):
    data = image(tmp_path, "a.gif")
    with pytest.raises(AvatarError) as caught:
        check_avatar(data, tmp_path)
    assert caught.value.problems == ["not a PNG, JPEG or WebP image"]


def test_a_small_image_names_its_size(tmp_path):
    data = image(tmp_path, "small.png", size=f"{AVATAR_MIN_SIDE - 2}x600")
    with pytest.raises(AvatarError, match=rf"{AVATAR_MIN_SIDE - 2}×600 px: the short side must be at least {AVATAR_MIN_SIDE} px"):
        check_avatar(data, tmp_path)
    assert check_avatar(image(tmp_path, "ok.png", size=f"{AVATAR_MIN_SIDE}x{AVATAR_MIN_SIDE}"), tmp_path).is_file()


def test_a_truncated_png_is_not_decodable(tmp_path):
    data = image(tmp_path, "a.png")[:40]
    with pytest.raises(AvatarError, match="the PNG image cannot be decoded"):
        check_avatar(data, tmp_path)


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch):
    monkeypatch.setattr(avatars, "AVATAR_MAX_BYTES", 10)
    with pytest.raises(AvatarError) as caught:
        check_avatar(b"GIF89a" + b"\0" * 20, tmp_path)
    assert caught.value.problems == ["not a PNG, JPEG or WebP image", "26 bytes, more than the 10 allowed (10 MB)"]


def test_nothing_is_stored_when_the_check_fails(tmp_path, local_store):
    with pytest.raises(AvatarError):
        store_avatar(CALL, "caller", b"not an image", get_settings(), local_store)
    assert not local_store.exists(f"avatars/{CALL}-caller.png")


def test_a_large_photo_is_stored_no_larger_than_the_cap_keeping_its_shape(tmp_path, local_store):
    key = store_avatar(CALL, "caller", image(tmp_path, "big.jpg", size="1000x3000"), get_settings(), local_store)
    local_store.download_file(key, tmp_path / "stored.png")
    stream = probe(tmp_path / "stored.png")["streams"][0]
    assert (stream["width"], stream["height"]) == (512, avatars.AVATAR_MAX_SIDE)
