"""``PATCH /calls/{callId}`` and ``PUT /calls/{callId}/avatars/{side}``: a call's own names, layout, captions and avatars."""

import pytest

from shared.models import Call, VideoStatus
from shared.presentation import presentation_for
from shared.settings import get_settings
from tests.services.ingest.conftest import API_TOKEN
from tests.support.media import ffmpeg

AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
CALL = "CA" + "5" * 32


@pytest.fixture
def api(client, local_store):
    Call.create(id=CALL, video_status=VideoStatus.PENDING)
    return client


def test_a_patch_sets_the_calls_own_names_layout_and_captions_and_returns_the_view(api):
    body = {"caller_name": "  王小明 ", "callee_name": "محمد علي", "video_layout": "vertical", "captions": "off"}
    response = api.simulate_patch(f"/calls/{CALL}", json=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert response.json["presentation"] == {
        "caller_name": "王小明", "callee_name": "محمد علي", "caller_avatar_url": None, "callee_avatar_url": None,
        "video_layout": "vertical", "captions": "off",
    }
    look = presentation_for(Call.get_by_id(CALL), get_settings())
    assert (look.caller_name, look.callee_name, look.video_layout, look.captions) == ("王小明", "محمد علي", "vertical", "off")
    # null gives a field back to the deployment's setting
    cleared = api.simulate_patch(f"/calls/{CALL}", json={"callee_name": None, "video_layout": None}, headers=AUTH)
    assert cleared.status_code == 200
    look = presentation_for(Call.get_by_id(CALL), get_settings())
    assert (look.caller_name, look.callee_name, look.video_layout) == ("王小明", get_settings().callee_label, get_settings().video_layout)


def test_a_bad_patch_names_each_problem_and_changes_nothing(api):
    body = {
        "caller_name": "x" * 81,
        "callee_name": "line\nbreak",
        "video_layout": "diagonal",
        "captions": "loud",
        "caller_avatar_url": "https://internal.example/face.png",
        "colour": "red",
    }
    response = api.simulate_patch(f"/calls/{CALL}", json=body, headers=AUTH)
    assert response.status_code == 400
    description = response.json["description"]
    for words in (
        "caller_name is 81 characters long, at most 80",
        "callee_name has control characters (U+000A)",
        "video_layout must be one of side-by-side, landscape, square, vertical or null, not 'diagonal'",
        "captions must be one of burn, track, off or null, not 'loud'",
        "caller_avatar_url takes only null here: upload the image with PUT /calls/{callId}/avatars/caller",
        "unknown field 'colour'",
    ):
        assert words in description, description
    call = Call.get_by_id(CALL)
    assert (call.caller_name, call.video_layout) == (None, None)
    assert api.simulate_patch(f"/calls/{CALL}", body=b"{nope", headers=AUTH).status_code == 400
    assert api.simulate_patch(f"/calls/{CALL}", json=["caller_name"], headers=AUTH).json["description"] == "the body must be a JSON object"


def test_unknown_calls_and_missing_tokens(api):
    assert api.simulate_patch("/calls/CA" + "6" * 32, json={"caller_name": "A"}, headers=AUTH).status_code == 404
    assert api.simulate_patch(f"/calls/{CALL}", json={"caller_name": "A"}).status_code == 401
    assert api.simulate_put(f"/calls/{CALL}/avatars/caller", body=b"x").status_code == 401
    assert api.simulate_put(f"/calls/{CALL}/avatars/agent", body=b"x", headers=AUTH).status_code == 404


def test_an_avatar_upload_is_checked_stored_and_used(api, local_store, tmp_path):
    image = tmp_path / "face.webp"
    ffmpeg("-f", "lavfi", "-i", "color=c=teal:s=512x640", "-frames:v", "1", str(image))
    response = api.simulate_put(f"/calls/{CALL}/avatars/callee", body=image.read_bytes(), headers={**AUTH, "Content-Type": "image/webp"})
    assert response.status_code == 200, response.text
    assert response.json["presentation"]["callee_avatar_url"] == "uploaded"
    key = f"avatars/{CALL}-callee.png"
    assert Call.get_by_id(CALL).callee_avatar_url == key and local_store.exists(key)
    assert presentation_for(Call.get_by_id(CALL), get_settings()).callee_avatar == key
    # PATCH null gives the side back its deployment's avatar
    api.simulate_patch(f"/calls/{CALL}", json={"callee_avatar_url": None}, headers=AUTH)
    assert Call.get_by_id(CALL).callee_avatar_url is None


def test_a_bad_avatar_upload_is_a_400_naming_its_problems(api, tmp_path):
    small = tmp_path / "small.png"
    ffmpeg("-f", "lavfi", "-i", "color=c=teal:s=200x300", "-frames:v", "1", str(small))
    response = api.simulate_put(f"/calls/{CALL}/avatars/caller", body=small.read_bytes(), headers=AUTH)
    assert response.status_code == 400
    assert response.json["description"] == "200×300 px: the short side must be at least 256 px"
    gif = api.simulate_put(f"/calls/{CALL}/avatars/caller", body=b"GIF89a" + b"\0" * 100, headers=AUTH)
    assert gif.status_code == 400 and gif.json["description"] == "not a PNG, JPEG or WebP image"
    assert Call.get_by_id(CALL).caller_avatar_url is None
    too_big = api.simulate_put(f"/calls/{CALL}/avatars/caller", body=b"\0" * (10 * 1024 * 1024 + 1), headers=AUTH)
    assert too_big.status_code == 413
