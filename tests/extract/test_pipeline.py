"""``extract`` end to end on recordings made here: utterance boundaries against the
transcripts, frame counts per utterance, shapes and finiteness, the summary, a corrupt file,
a killed run resumed to the same arrays, word-level alignment, the command line, and
extract → train → predict."""

import argparse
import csv
import json
import socket

import numpy as np
import pytest
from recordings import FPS, voice, write_audio, write_srt, write_video, write_vtt

pytest.importorskip("av", reason="needs the [extract] extra")
pytest.importorskip("cv2", reason="needs the [extract] extra")
pytest.importorskip("librosa", reason="needs the [extract] extra")

from dhmd_graph.data import load_arrays  # noqa: E402
from dhmd_graph.extract import FaceFeatures, MediaError, extract  # noqa: E402
from dhmd_graph.extract.cli import add_extract_parser, run_extract  # noqa: E402

SECONDS = 4.0
NO_FACE_AFTER = 3.0
CUES = [(0.2, 1.5, "I really liked it"), (1.6, 3.25, "but the end, was bad"),
        (3.3, 3.9, "ok")]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """Four 4 s videos (the face until 3 s, then none) with SRT, VTT and CSV transcripts,
    one audio-only recording, and a manifest labelling the recordings."""
    root = tmp_path_factory.mktemp("corpus")
    media = root / "recordings"
    media.mkdir()
    for i in range(4):
        write_video(media / f"rec{i}.mp4", SECONDS, face=lambda t: t < NO_FACE_AFTER,
                    f0=120 + 20 * i, seed=i)
    for i in (0, 1):
        write_srt(media / f"rec{i}.srt", CUES)
    write_vtt(media / "rec2.vtt", CUES)
    (media / "rec3.csv").write_text("id,start,end,text\n" + "".join(
        f'r3_{n},{a},{b},"{text}"\n' for n, (a, b, text) in enumerate(CUES)))
    write_audio(media / "voice.wav", voice(2.0, 200.0))
    (media / "voice.srt").write_text("1\n00:00:00,500 --> 00:00:01,500\nhello there\n")
    manifest = root / "manifest.csv"
    manifest.write_text("id,label,split\nrec0,1.5,train\nrec1,-1.0,train\nvoice,0.5,train\n"
                        "rec2,2.0,valid\nr3_0,-2.0,test\nr3_1,0.0,test\nr3_2,1.0,test\n")
    return root


@pytest.fixture(scope="module")
def extracted(corpus):
    out = corpus / "data"
    summary = extract(corpus / "recordings", out, manifest=corpus / "manifest.csv",
                      progress=False)
    return summary, out


def rows(folder):
    with (folder / "labels.csv").open(newline="") as file:
        return list(csv.DictReader(file))


def test_network_is_refused_here():
    with pytest.raises(AssertionError, match="network"):
        socket.create_connection(("127.0.0.1", 9))


def test_utterances_follow_the_transcripts(extracted):
    summary, out = extracted
    table = rows(out)
    ids = [row["id"] for row in table]
    assert ids == ["rec0_1", "rec0_2", "rec0_3", "rec1_1", "rec1_2", "rec1_3", "voice_1",
                   "rec2_1", "rec2_2", "rec2_3", "r3_0", "r3_1", "r3_2"]
    assert [row["split"] for row in table] == ["train"] * 7 + ["valid"] * 3 + ["test"] * 3
    assert [float(row["label"]) for row in table][:4] == [1.5, 1.5, 1.5, -1.0]
    assert table[1]["raw_text"] == "but the end, was bad" == table[8]["raw_text"]
    start = np.load(out / "extra.start_seconds.npy")
    end = np.load(out / "extra.end_seconds.npy")
    expected = np.array(CUES * 2 + [(0.5, 1.5, "")] + CUES * 2, dtype=object)
    np.testing.assert_allclose(start, expected[:, 0].astype(float), atol=1e-6)
    np.testing.assert_allclose(end, expected[:, 1].astype(float), atol=1e-6)


def test_frame_counts_per_utterance(extracted):
    _, out = extracted
    start, end = np.load(out / "extra.start_seconds.npy"), np.load(out / "extra.end_seconds.npy")
    audio_times = np.arange(0, SECONDS + 0.1, 0.01)  # 100 frames a second from 0
    video_times = np.arange(int(SECONDS * FPS)) / FPS
    audio = np.load(out / "audio_lengths.npy")
    vision = np.load(out / "vision_lengths.npy")
    for i, (a, b) in enumerate(zip(start.astype(float), end.astype(float), strict=True)):
        assert audio[i] == np.sum((audio_times >= a - 1e-6) & (audio_times < b - 1e-6))
        if i != 6:  # the audio-only recording has no video: one zero step
            assert vision[i] == np.sum((video_times >= a - 1e-6) & (video_times < b - 1e-6))
    assert vision[6] == 1 and np.load(out / "extra.vision_present.npy")[6] == 0
    text = np.load(out / "text_lengths.npy")
    assert text.tolist()[:3] == [4, 6, 1] and text[6] == 2  # "but the end , was bad"


def test_features_are_finite_padded_arrays(extracted):
    _, out = extracted
    datasets = load_arrays(out)
    train = datasets["train"]
    assert train.feature_dims == {"audio": 61, "text": None, "vision": 154} or (
        train.features["audio"].shape[2] == 61 and train.features["vision"].shape[2] == 154)
    for name in ("audio", "vision"):
        array = np.load(out / f"{name}.npy")
        lengths = np.load(out / f"{name}_lengths.npy")
        assert array.dtype == np.float32 and np.isfinite(array).all()
        for i, length in enumerate(lengths):
            assert not array[i, length:].any()  # zero padding past the length
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    assert vocabulary[:2] == ["<pad>", "<unk>"] and "liked" in vocabulary
    tokens = np.load(out / "text.npy")
    assert tokens.dtype == np.int64 and tokens.max() < len(vocabulary)
    assert [vocabulary[t] for t in tokens[0, :4]] == ["i", "really", "liked", "it"]
    names = json.loads((out / "extract.json").read_text())["features"]
    assert names["vision"][0] == "face_found" and len(names["audio"]) == 61


def test_summary_reports_gaps(extracted):
    summary, out = extracted
    by_name = {report.recording: report for report in summary.files}
    assert by_name["rec0"].status == "extracted" and by_name["rec0"].utterances == 3
    assert by_name["rec0"].frames["vision"] == 40
    assert by_name["rec0"].invalid["vision"] == 10  # frames after 3 s have no face
    assert summary.missing == {"vision": ["voice_1"]}
    assert summary.splits == {"train": 7, "valid": 3, "test": 3} and not summary.skipped
    table = summary.table()
    assert "vision frames (frames without a face)" in table and "40 (25%)" in table
    assert "vision: no frame in the interval: 1 (voice_1)" in table
    vision = np.load(out / "vision.npy")
    assert (vision[2, :6, 0] == 0).all()  # "ok" (3.3-3.9 s) is after the face left


def test_corrupt_file_is_skipped_or_stops_the_run(corpus, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_video(media / "good.mp4", 2.0)
    (media / "broken.mp4").write_bytes((corpus / "recordings" / "rec0.mp4").read_bytes()[:1500])
    summary = extract(media, tmp_path / "out", progress=False, cache=False)
    (skipped,) = summary.skipped
    assert skipped.recording == "broken" and str(media / "broken.mp4") in skipped.message
    assert "skipped broken (not in the folder): cannot decode" in summary.table()
    assert [row["id"] for row in rows(tmp_path / "out")] == ["good"]  # no transcript: one
    assert rows(tmp_path / "out")[0].keys() == {"id", "split", "raw_text"}  # unlabelled
    assert summary.no_transcript == ["good"] and not (tmp_path / "out" / "text.npy").exists()
    with pytest.raises(MediaError, match="cannot decode the recording") as info:
        extract(media, tmp_path / "stopped", on_error="stop", progress=False, cache=False)
    assert str(media / "broken.mp4") in str(info.value)
    assert not (tmp_path / "stopped").exists()


class Killed(BaseException):
    """Stands for a kill: a BaseException, like KeyboardInterrupt, that no handler takes."""


def test_killed_run_resumes_to_the_same_arrays(corpus, tmp_path, monkeypatch):
    media, manifest = corpus / "recordings", corpus / "manifest.csv"
    fresh = tmp_path / "fresh"
    extract(media, fresh, manifest=manifest, progress=False, cache=False)
    calls, dying = [], [True]
    original = FaceFeatures.__call__

    def dies_on_the_third(self, segment):
        calls.append(segment.recording)
        if len(calls) == 3 and dying:
            raise Killed  # as a kill mid-run: nothing after this line runs
        return original(self, segment)

    monkeypatch.setattr(FaceFeatures, "__call__", dies_on_the_third)
    with pytest.raises(Killed):
        extract(media, tmp_path / "out", manifest=manifest, progress=False)
    assert sorted(p.name for p in (tmp_path / "out.cache").iterdir()) == ["rec0.npz", "rec1.npz"]
    assert not (tmp_path / "out").exists()
    calls.clear()
    dying.clear()
    summary = extract(media, tmp_path / "out", manifest=manifest, progress=False)
    assert calls == ["rec2", "rec3", "voice"]  # the cached two are not extracted again
    assert [r.status for r in summary.files] == ["cached"] * 2 + ["extracted"] * 3
    for array in sorted(fresh.glob("*.npy")):
        np.testing.assert_array_equal(np.load(array), np.load(tmp_path / "out" / array.name),
                                      err_msg=array.name)
    assert (fresh / "labels.csv").read_text() == (tmp_path / "out" / "labels.csv").read_text()


def test_word_level_alignment_averages_frames(corpus, tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    write_video(media / "a.mp4", SECONDS, face=lambda t: t < NO_FACE_AFTER)
    write_srt(media / "a.srt", CUES[:2])
    words = tmp_path / "words"
    words.mkdir()
    (words / "a.csv").write_text("start,end,word\n0.2,0.6,I\n0.6,1.0,really\n1.0,1.45,liked\n"
                                 "1.7,2.2,but\n2.21,2.25,the\n2.3,3.2,end\n")
    summary = extract(media, tmp_path / "out", words=words, collapse="words", progress=False)
    out = tmp_path / "out"
    for name in ("audio", "vision", "text"):
        assert np.load(out / f"{name}_lengths.npy").tolist() == [3, 3]  # one step per word
    vocabulary = json.loads((out / "vocabulary.json").read_text())
    assert [vocabulary[t] for t in np.load(out / "text.npy")[1]] == ["but", "the", "end"]
    cached = np.load(tmp_path / "out.cache" / "a.npz")
    times, features = cached["vision.times"], cached["vision.features"]
    expected = features[(times >= 0.6) & (times < 1.0)].mean(0)
    np.testing.assert_allclose(np.load(out / "vision.npy")[0, 1], expected, rtol=1e-6)
    assert summary.empty_words == 1  # "the" (2.21-2.25 s) holds no video frame
    assert not np.load(out / "vision.npy")[1, 1].any()


def test_manifest_problems(corpus, tmp_path):
    media = corpus / "recordings"
    bad = tmp_path / "bad.csv"
    bad.write_text("id,label,speaker\nrec0,1,a\n")
    with pytest.raises(ValueError, match="wrong manifest columns.*speaker"):
        extract(media, tmp_path / "a", manifest=bad, progress=False)
    bad.write_text("id,label\nrec0,good\n")
    with pytest.raises(ValueError, match="label is not a number.*line 2"):
        extract(media, tmp_path / "b", manifest=bad, progress=False)
    partial = tmp_path / "partial.csv"  # no split column: whole recordings, in name order
    partial.write_text("id,label\nrec0,1\nrec1,2\nrec2,3\nrec3,4\nmissing,0\n")
    summary = extract(media, tmp_path / "c", manifest=partial, progress=False)
    assert summary.unlabelled == ["voice_1"] and summary.unmatched == ["missing"]
    split = {row["id"].split("_")[0]: row["split"] for row in rows(tmp_path / "c")}
    assert split == {"rec0": "train", "rec1": "train", "rec2": "valid", "r3": "test"}


def test_refuses_a_full_folder_before_extracting(corpus, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "x").write_text("")
    with pytest.raises(ValueError, match="not empty"):
        extract(corpus / "recordings", tmp_path / "out", progress=False)


def parser():
    root = argparse.ArgumentParser(prog="dhmd")
    add_extract_parser(root.add_subparsers(dest="command", required=True))
    return root


def test_command_line(corpus, tmp_path, capsys):
    args = parser().parse_args(["extract", str(corpus / "recordings"), "--out",
                                str(tmp_path / "out"), "--vision", "none", "--no-text",
                                "--audio", "acoustic:n_mels=20,n_mfcc=10", "--quiet",
                                "--cache", str(tmp_path / "cache")])
    assert args.func is run_extract and args.func(args) == 0
    assert "written: 13 utterances (test 13)" in capsys.readouterr().out
    assert sorted(p.name for p in (tmp_path / "out").glob("*.npy")) == [
        "audio.npy", "audio_lengths.npy", "extra.audio_present.npy", "extra.end_seconds.npy",
        "extra.start_seconds.npy"]
    assert np.load(tmp_path / "out" / "audio.npy").shape[2] == 10 + 20 + 8
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 5


@pytest.mark.parametrize("option, message", [
    (["--vision", "face:fps=abc"], "extractor 'face:fps=abc': fps='abc' is not a float"),
    (["--vision", "nosuch"], "unknown extractor 'nosuch'"),
])
def test_bad_extractor_options_exit_2_through_dhmd(corpus, tmp_path, capsys, option, message):
    from dhmd_graph.cli import main

    status = main(["extract", str(corpus / "recordings"), "--out", str(tmp_path / "out"),
                   *option])
    err = capsys.readouterr().err
    assert status == 2 and message in err and "Traceback" not in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_command_line_without_the_extra(corpus, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "av", None)
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    args = parser().parse_args(["extract", str(corpus / "recordings"), "--out",
                                str(tmp_path / "out")])
    assert run_extract(args) == 2
    assert "pip install 'dhmd_graph[extract]'" in capsys.readouterr().err


def test_extract_train_predict(extracted, tmp_path):
    from dhmd_graph.cli import main

    _, data = extracted
    tiny = ["model.width=8", "model.num_heads=2", "model.encoder.num_layers=1",
            "model.encoder.memory_layers=1", "model.dictionary.atoms=4", "train.max_epochs=1",
            "train.batch_size=4", "train.accumulation_steps=1", "train.progress=false"]
    run = tmp_path / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--seeds", "0",
                 "--set", *tiny]) == 0
    predictions = tmp_path / "predictions.csv"
    assert main(["predict", str(run), "--data", str(data), "--out", str(predictions)]) == 0
    with predictions.open(newline="") as file:
        predicted = list(csv.DictReader(file))
    assert [row["id"] for row in predicted] == ["r3_0", "r3_1", "r3_2"]
