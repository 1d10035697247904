"""Decoding, the built-in extractors and the registry, on media made here."""

import numpy as np
import pytest
from recordings import FPS, RATE, blank_frame, face_frame, voice, write_audio, write_video

av = pytest.importorskip("av", reason="needs the [extract] extra")
cv2 = pytest.importorskip("cv2", reason="needs the [extract] extra")
pytest.importorskip("librosa", reason="needs the [extract] extra")

from dhmd_graph.extract import (  # noqa: E402
    EXTRACTORS,
    AcousticFeatures,
    FaceFeatures,
    Frames,
    MediaError,
    Segment,
    make_extractor,
    probe,
    read_audio,
    read_frames,
    register_extractor,
)
from dhmd_graph.extract.protocol import check_frames  # noqa: E402


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    """3 s of video: the face for the first 2 s, then none; a 150 Hz voice."""
    path = tmp_path_factory.mktemp("media") / "clip.mp4"
    return write_video(path, 3.0, face=lambda t: t < 2.0, f0=150.0)


def test_the_drawn_face_is_found_by_the_bundled_cascade():
    detector = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    grey = cv2.cvtColor(face_frame(), cv2.COLOR_BGR2GRAY)
    assert len(detector.detectMultiScale(grey, 1.1, 5)) == 1
    assert len(detector.detectMultiScale(cv2.cvtColor(blank_frame(), cv2.COLOR_BGR2GRAY))) == 0


def test_decoding(video, tmp_path):
    info = probe(video)
    assert info.video and info.audio and info.duration == pytest.approx(3.0, abs=0.1)
    times = [t for t, _ in read_frames(video)]
    np.testing.assert_allclose(times, np.arange(3 * FPS) / FPS, atol=1e-6)
    kept = [t for t, frame in read_frames(video, fps=4, start=1.0, end=2.0)]
    assert kept[0] == pytest.approx(1.0) and len(kept) == 4 and kept[-1] < 2.0
    samples = voice(1.0)
    wav = write_audio(tmp_path / "a.wav", samples)
    np.testing.assert_allclose(read_audio(wav), samples, atol=1e-4)  # 16-bit PCM round trip
    np.testing.assert_allclose(read_audio(wav, start=0.5), samples[RATE // 2:], atol=1e-4)
    assert len(read_audio(wav, 8000)) == 8000  # resampled
    assert not probe(wav).video


def test_corrupt_and_streamless_files_name_the_file(video, tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(video.read_bytes()[:2000])  # cut short
    with pytest.raises(MediaError, match="cannot decode the recording") as info:
        list(read_frames(bad))
    assert str(bad) in str(info.value)
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"\x00not audio" * 50)
    with pytest.raises(MediaError, match="junk.wav"):
        probe(junk)
    wav = write_audio(tmp_path / "a.wav", voice(0.5))
    with pytest.raises(MediaError, match="no video stream"):
        list(read_frames(wav))


def test_acoustic_features(video):
    extractor = AcousticFeatures()
    frames = extractor(Segment("clip", 0.0, 3.0, audio=video))
    assert extractor.dim == 61 == len(extractor.names) == frames.features.shape[1]
    assert frames.features.dtype == np.float32 and np.isfinite(frames.features).all()
    np.testing.assert_allclose(np.diff(frames.times), 0.01)
    assert len(frames.times) == pytest.approx(300, abs=5)
    middle = frames.features[20:-20]
    f0 = 27.5 * 2 ** (middle[:, extractor.names.index("f0_semitones")] / 12)
    assert np.median(f0) == pytest.approx(150.0, rel=0.02)  # the voice's pitch
    assert middle[:, extractor.names.index("voicing")].mean() > 0.8
    assert frames.valid.all()  # nothing silent
    part = extractor(Segment("clip", 1.0, 2.0, audio=video))
    assert part.times[0] == pytest.approx(1.0) and len(part.times) == 101


def test_silence_is_marked_and_no_sound_gives_no_frames(tmp_path):
    samples = np.concatenate([voice(1.0), np.zeros(RATE, np.float32)])
    wav = write_audio(tmp_path / "half.wav", samples)
    frames = AcousticFeatures()(Segment("half", 0.0, 2.0, audio=wav))
    voicing = frames.features[:, AcousticFeatures().names.index("f0_semitones")]
    assert frames.valid[10:90].all() and not frames.valid[120:].any()
    assert (voicing[120:] == 0).all() and (voicing[10:90] > 0).all()
    empty = AcousticFeatures()(Segment("mute", 0.0, 2.0))
    assert empty.features.shape == (0, 61)


def test_face_features(video):
    extractor = FaceFeatures()
    frames = extractor(Segment("clip", 0.0, 3.0, video=video))
    assert frames.features.shape == (30, 154) == (30, len(extractor.names))
    assert np.isfinite(frames.features).all()
    np.testing.assert_allclose(frames.times, np.arange(30) / 10, atol=1e-6)
    np.testing.assert_array_equal(frames.valid, frames.times < 2.0)  # the face, then none
    found = frames.features[frames.valid]
    assert (found[:, 0] == 1).all() and found[:, 1] == pytest.approx(0.5, abs=0.05)
    assert not frames.features[~frames.valid].any()
    assert found[:, 10:].sum(1).min() > 0  # gradient histograms of the face
    assert found[1:, extractor.names.index("motion")].max() > 0  # the mouth moves
    assert len(FaceFeatures(fps=5)(Segment("clip", 0.0, 3.0, video=video)).times) == 15
    assert FaceFeatures()(Segment("clip", 0.0, 3.0)).features.shape == (0, 154)


def test_registry_specs_and_user_extractors():
    assert make_extractor("face:fps=15,min_neighbors=3") == FaceFeatures(fps=15.0,
                                                                         min_neighbors=3)
    assert make_extractor("face:fps=none").fps is None
    assert make_extractor("acoustic:hop=0.02").hop == 0.02
    for spec, message in [("nope", "unknown extractor 'nope'"), ("face:speed=2", "no option"),
                          ("face:fps=fast", "not a float"), ("face:fps=1,2", "not key=value")]:
        with pytest.raises(ValueError, match=message):
            make_extractor(spec)

    class Constant:
        name, dim = "constant", 2

        def __init__(self, value="1"):
            self.value = float(value)

        def __call__(self, segment):
            times = np.arange(segment.start, segment.end, 0.5)
            return np.full((len(times), 2), self.value), times

    register_extractor("constant", Constant)
    try:
        extractor = make_extractor("constant:3")
        frames = check_frames(extractor(Segment("x", 0.0, 2.0)), extractor, "x")
        assert isinstance(frames, Frames) and frames.features.tolist() == [[3.0, 3.0]] * 4
        with pytest.raises(ValueError, match="already registered"):
            register_extractor("constant", Constant)
    finally:
        del EXTRACTORS["constant"]
    with pytest.raises(ValueError, match="is not an extractor"):
        make_extractor(object())


def test_malformed_frames_name_the_extractor():
    extractor = FaceFeatures()
    for result, found in [((np.zeros((3, 2)), np.zeros(3)), "features \\(3, 2\\)"),
                          ((np.full((2, 154), np.nan), np.zeros(2)), "non-finite"),
                          ((np.zeros((2, 154)), np.array([1.0, 0.0])), "times that go backwards"),
                          (np.zeros(3), "a ndarray")]:
        with pytest.raises(ValueError, match=f"extractor 'face'.*found {found}"):
            check_frames(result, extractor, "rec")
