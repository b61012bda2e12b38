import pytest

from shared.fal_models import CUT_MARGIN, MODELS, TIMEOUT_SAFETY, UnknownModel, job_timeout, model_for, poll_interval, segment_limit

IMAGE, AUDIO, PROMPT = "https://s3/avatar.png", "https://s3/audio.mp3", "a person talking"


def test_every_model_takes_an_image_and_an_audio_url_and_returns_video_url():
    for model in MODELS.values():
        arguments = model.build_input(IMAGE, AUDIO, PROMPT, 12.0)
        assert arguments["image_url"] == IMAGE and arguments["audio_url"] == AUDIO
        assert model.read_video_url({"video": {"url": "https://v3.fal.media/x.mp4"}}) == "https://v3.fal.media/x.mp4"
        assert 0 < model.max_audio_seconds == model.limit_seconds - CUT_MARGIN


def test_required_fields_of_each_model():
    # Stable Avatar and InfiniTalk require a prompt; Fabric requires a resolution.
    assert model_for("fal-ai/stable-avatar").build_input(IMAGE, AUDIO, PROMPT, 10)["prompt"] == PROMPT
    assert model_for("veed/fabric-1.0").build_input(IMAGE, AUDIO, PROMPT, 10)["resolution"] in ("480p", "720p")
    # OmniHuman takes 60 s only at 720p (30 s at its default 1080p).
    omni = model_for("fal-ai/bytedance/omnihuman/v1.5")
    assert omni.limit_seconds == 60 and omni.build_input(IMAGE, AUDIO, PROMPT, 50)["resolution"] == "720p"


@pytest.mark.parametrize("seconds", [0.5, 5.8, 12.3, model_for("fal-ai/infinitalk").max_audio_seconds])
def test_infinitalk_frames_cover_the_segment(seconds):
    arguments = model_for("fal-ai/infinitalk").build_input(IMAGE, AUDIO, PROMPT, seconds)
    frames = arguments["num_frames"]
    assert 41 <= frames <= 721 and frames % 4 == 1
    assert frames / 25 >= min(seconds, 28.8)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(UnknownModel, match="fal-ai/stable-avatar"):
        model_for("fal-ai/nope")


def test_segment_limit_is_the_setting_within_the_models_limit():
    omni, stable = model_for("fal-ai/bytedance/omnihuman/v1.5"), model_for("fal-ai/stable-avatar")
    assert segment_limit(stable, 60) == 60
    assert segment_limit(omni, 120) == omni.max_audio_seconds  # never past the model's limit
    assert segment_limit(stable, 0) == stable.max_audio_seconds  # 0: the model's limit


def test_short_jobs_are_polled_sooner_long_ones_at_the_setting():
    stable = model_for("fal-ai/stable-avatar")  # 4× real time at worst
    assert poll_interval(stable, 4.0, 7.0) == 2.0  # 16 s of compute at worst: found within 2 s, not 7
    assert poll_interval(stable, 1.0, 7.0) == 1.0  # never more often than every second
    assert poll_interval(stable, 60.0, 7.0) == 7.0  # FAL_POLL_INTERVAL is the slowest pace
    assert poll_interval(stable, 4.0, 0.5) == 0.5  # nor slower than a setting below the floor


def test_a_jobs_timeout_scales_with_its_length_and_the_models_speed():
    stable, fabric = model_for("fal-ai/stable-avatar"), model_for("veed/fabric-1.0")
    assert job_timeout(stable, 10, 600) == 600  # FAL_JOB_TIMEOUT is the floor
    # A five-minute segment on a model at 4× real time is given twice its expected compute, not cancelled at 600 s.
    assert job_timeout(stable, 300, 600) == 300 * stable.compute_ratio * TIMEOUT_SAFETY == 2400
    assert job_timeout(fabric, 300, 600) < job_timeout(stable, 300, 600)  # a faster model, a shorter wait
