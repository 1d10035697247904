"""Transcripts (SRT, WebVTT, CSV) and per-word timestamps: times, text, ids, errors."""

import pytest
from recordings import write_srt, write_vtt

from dhmd_graph.data import DatasetError
from dhmd_graph.extract import read_transcript, read_words
from dhmd_graph.extract.transcripts import tokenize

CUES = [(0.25, 1.5, "I really liked it"), (61.0, 3725.125, "but, the end was bad")]


@pytest.mark.parametrize("write", [write_srt, write_vtt])
def test_srt_and_vtt_give_the_cues(tmp_path, write):
    path = write(tmp_path / f"clip.{write.__name__[-3:]}", CUES)
    utterances = read_transcript(path)
    assert [u.id for u in utterances] == ["clip_1", "clip_2"]
    assert [(u.start, u.end, u.text) for u in utterances] == CUES  # markup and cue settings gone


def test_vtt_with_identifiers_hours_and_multiline_text(tmp_path):
    path = tmp_path / "talk.vtt"
    path.write_text("WEBVTT - a title\n\nSTYLE\n::cue { color: red }\n\nintro\n"
                    "01:00:01.500 --> 01:00:02.000\n<i>two</i>\nlines\n", encoding="utf-8")
    (utterance,) = read_transcript(path, recording="rec")
    assert (utterance.id, utterance.start, utterance.end, utterance.text) == (
        "rec_1", 3601.5, 3602.0, "two lines")


def test_csv_keeps_its_ids(tmp_path):
    path = tmp_path / "a.csv"
    path.write_text('id,start,end,text\nvid_7,1.5,2.25,"hello, there"\nvid_8,3,4,\n')
    utterances = read_transcript(path)
    assert [(u.id, u.start, u.end, u.text) for u in utterances] == [
        ("vid_7", 1.5, 2.25, "hello, there"), ("vid_8", 3.0, 4.0, "")]


@pytest.mark.parametrize("text, problem", [
    ("1\n00:00:02,000 --> 00:00:01,000\nbackwards\n", "empty interval"),
    ("1\n00:00:xx,000 --> 00:00:01,000\nbad\n", "malformed time"),
    ("1\nno times here\n", "malformed cue"),
])
def test_bad_srt_names_the_file(tmp_path, text, problem):
    path = tmp_path / "bad.srt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=problem) as info:
        read_transcript(path)
    assert str(path) in str(info.value)


def test_bad_transcripts(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    with pytest.raises(DatasetError, match="unknown transcript format"):
        read_transcript(tmp_path / "a.txt")
    (tmp_path / "b.vtt").write_text("00:01.000 --> 00:02.000\nno header\n")
    with pytest.raises(DatasetError, match="not a WebVTT file"):
        read_transcript(tmp_path / "b.vtt")
    (tmp_path / "c.csv").write_text("id,begin,end,text\nx,1,2,a\n")
    with pytest.raises(DatasetError, match="missing columns.*id,start,end,text"):
        read_transcript(tmp_path / "c.csv")
    (tmp_path / "d.csv").write_text("id,start,end,text\nx,1,2,a\nx,3,4,b\n")
    with pytest.raises(DatasetError, match="repeated utterance id"):
        read_transcript(tmp_path / "d.csv")


def test_words_sorted_and_checked(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("start,end,word\n0.5,0.9,world\n0.1,0.4,hello\n")
    assert [(w.start, w.end, w.word) for w in read_words(path)] == [
        (0.1, 0.4, "hello"), (0.5, 0.9, "world")]
    path.write_text("start,end,word\n0.5,0.2,x\n")
    with pytest.raises(DatasetError, match="negative word duration.*line 2"):
        read_words(path)


def test_tokenize():
    assert tokenize("Don't GO, now!") == ["don't", "go", ",", "now", "!"]
