"""The adapters on small hand-written files with the tools' real column names: OpenFace 2
``FeatureExtraction`` CSVs (spaces after the commas, ``timestamp``/``confidence``/
``success``) and openSMILE LLD CSVs (SMILExtract's ``;`` files, the Python package's)."""

import numpy as np
import pytest

from dhmd_graph.extract import (
    MediaError,
    OpenFaceCSV,
    OpenSmileCSV,
    Segment,
    make_extractor,
    read_openface,
    read_opensmile,
)

AU_R = ["AU01_r", "AU02_r", "AU04_r", "AU05_r", "AU06_r", "AU07_r", "AU09_r", "AU10_r",
        "AU12_r", "AU14_r", "AU15_r", "AU17_r", "AU20_r", "AU23_r", "AU25_r", "AU26_r", "AU45_r"]
AU_C = ["AU01_c", "AU02_c", "AU04_c", "AU05_c", "AU06_c", "AU07_c", "AU09_c", "AU10_c",
        "AU12_c", "AU14_c", "AU15_c", "AU17_c", "AU20_c", "AU23_c", "AU25_c", "AU26_c",
        "AU28_c", "AU45_c"]
GAZE = ["gaze_0_x", "gaze_0_y", "gaze_0_z", "gaze_1_x", "gaze_1_y", "gaze_1_z",
        "gaze_angle_x", "gaze_angle_y"]
POSE = ["pose_Tx", "pose_Ty", "pose_Tz", "pose_Rx", "pose_Ry", "pose_Rz"]
EGEMAPS_LLD = [
    "Loudness_sma3", "alphaRatio_sma3", "hammarbergIndex_sma3", "slope0-500_sma3",
    "slope500-1500_sma3", "spectralFlux_sma3", "mfcc1_sma3", "mfcc2_sma3", "mfcc3_sma3",
    "mfcc4_sma3", "F0semitoneFrom27.5Hz_sma3nz", "jitterLocal_sma3nz", "shimmerLocaldB_sma3nz",
    "HNRdBACF_sma3nz", "logRelF0-H1-H2_sma3nz", "logRelF0-H1-A3_sma3nz", "F1frequency_sma3nz",
    "F1bandwidth_sma3nz", "F1amplitudeLogRelF0_sma3nz", "F2frequency_sma3nz",
    "F2bandwidth_sma3nz", "F2amplitudeLogRelF0_sma3nz", "F3frequency_sma3nz",
    "F3bandwidth_sma3nz", "F3amplitudeLogRelF0_sma3nz"]


def openface_csv(path, rows):
    """An OpenFace 2.2 FeatureExtraction CSV: its full header, as OpenFace writes it (', '),
    and ``rows`` of (frame, face_id, timestamp, confidence, success, value)."""
    landmarks = ([f"eye_lmk_{a}_{i}" for a in "xyXYZ" for i in range(56)] + POSE
                 + [f"{a}_{i}" for a in "xyXYZ" for i in range(68)]
                 + ["p_scale", "p_rx", "p_ry", "p_rz", "p_tx", "p_ty"]
                 + [f"p_{i}" for i in range(34)])
    header = (["frame", "face_id", "timestamp", "confidence", "success"] + GAZE + landmarks
              + AU_R + AU_C)
    lines = [", ".join(header)]
    for frame, face, time, confidence, success, value in rows:
        cells = [str(frame), str(face), f"{time:.3f}", f"{confidence:.2f}", str(success)]
        cells += [f"{value + i / 1000:.4f}" for i in range(len(header) - 5)]
        lines.append(", ".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return header


def test_openface_reads_groups_by_their_real_names(tmp_path):
    header = openface_csv(tmp_path / "clip.csv", [
        (1, 0, 0.000, 0.98, 1, 1.0), (2, 0, 0.033, 0.10, 1, 2.0),  # low confidence
        (3, 0, 0.067, 0.97, 0, 3.0), (4, 0, 0.100, 0.95, 1, 4.0)])  # not tracked
    frames, names = read_openface(tmp_path / "clip.csv")
    assert names == AU_R + AU_C + GAZE + POSE and frames.features.shape == (4, 49)
    np.testing.assert_allclose(frames.times, [0.0, 0.033, 0.067, 0.1])
    np.testing.assert_array_equal(frames.valid, [True, False, False, True])
    assert not frames.features[1:3].any()  # invalid frames are zeros
    column = header.index("AU12_r") - 5  # the value written in that cell
    assert frames.features[3, names.index("AU12_r")] == pytest.approx(4.0 + column / 1000)
    assert frames.features[0, names.index("pose_Rz")] == pytest.approx(
        1.0 + (header.index("pose_Rz") - 5) / 1000)
    only, names = read_openface(tmp_path / "clip.csv", groups=("au_c",))
    assert names == AU_C and only.features.shape == (4, 18)


def test_openface_keeps_the_most_confident_face_per_frame(tmp_path):
    header = openface_csv(tmp_path / "two.csv", [
        (1, 0, 0.0, 0.6, 1, 1.0), (1, 1, 0.0, 0.9, 1, 5.0),
        (2, 0, 0.04, 0.9, 1, 2.0), (2, 1, 0.04, 0.7, 1, 6.0)])
    frames, _ = read_openface(tmp_path / "two.csv", groups=("au_r",))
    offset = (header.index("AU01_r") - 5) / 1000
    assert frames.features[:, 0] == pytest.approx([5.0 + offset, 2.0 + offset], abs=1e-4)
    np.testing.assert_allclose(frames.times, [0.0, 0.04])


def test_openface_extractor_cuts_the_segment_and_names_missing_files(tmp_path):
    openface_csv(tmp_path / "clip.csv", [(i + 1, 0, i * 0.1, 0.9, 1, i) for i in range(10)])
    extractor = make_extractor(f"openface:{tmp_path},groups=au_r+pose,min_confidence=0.8")
    assert isinstance(extractor, OpenFaceCSV) and extractor.dim == 17 + 6
    frames = extractor(Segment("clip", 0.3, 0.6))
    np.testing.assert_allclose(frames.times, [0.3, 0.4, 0.5])
    with pytest.raises(MediaError, match="no OpenFace output") as info:
        extractor(Segment("other", 0.0, 1.0))
    assert str(tmp_path / "other.csv") in str(info.value)
    (tmp_path / "cut.csv").write_text("frame, face_id, timestamp, confidence, success\n1, 0, 0\n")
    with pytest.raises(MediaError, match="wrong number of cells"):
        extractor(Segment("cut", 0.0, 1.0))
    (tmp_path / "cut.csv").write_text("frame, face_id, timestamp, confidence, success\n"
                                      "1, 0, 0.0, 0.9, 1\n")
    with pytest.raises(MediaError, match="missing columns"):
        extractor(Segment("cut", 0.0, 1.0))
    with pytest.raises(ValueError, match="unknown groups"):
        OpenFaceCSV(tmp_path, groups=("aus",))


def test_opensmile_lld_csv_with_semicolons(tmp_path):
    lines = [";".join(["name", "frameTime"] + EGEMAPS_LLD)]
    for i in range(5):
        lines.append(";".join(["'unknown'", f"{i * 0.01:.6f}"]
                              + [f"{i + j / 100:.6f}" for j in range(len(EGEMAPS_LLD))]))
    (tmp_path / "clip.csv").write_text("\n".join(lines) + "\n")
    frames, names = read_opensmile(tmp_path / "clip.csv")
    assert names == EGEMAPS_LLD and frames.features.shape == (5, 25)
    np.testing.assert_allclose(frames.times, [0, 0.01, 0.02, 0.03, 0.04])
    assert frames.features[2, EGEMAPS_LLD.index("F0semitoneFrom27.5Hz_sma3nz")] == (
        pytest.approx(2 + 10 / 100))
    extractor = OpenSmileCSV(tmp_path)
    assert extractor.dim == 25 and len(extractor(Segment("clip", 0.015, 0.035)).times) == 2


def test_opensmile_python_package_csv_with_time_deltas(tmp_path):
    header = ",".join(["file", "start", "end", *EGEMAPS_LLD[:3]])
    rows = [f"a.wav,0 days 00:00:0{i}.010000,0 days 00:00:0{i}.030000,1,2,3" for i in (1, 0)]
    (tmp_path / "a.csv").write_text("\n".join([header, *rows]) + "\n")
    frames, names = read_opensmile(tmp_path / "a.csv")
    assert names == EGEMAPS_LLD[:3]
    np.testing.assert_allclose(frames.times, [0.01, 1.01])  # sorted by time


def test_opensmile_functionals_and_mismatched_files_are_refused(tmp_path):
    (tmp_path / "f.csv").write_text("name;Loudness_sma3_amean\n'unknown';0.5\n")
    with pytest.raises(MediaError, match="no time column.*LLDs"):
        read_opensmile(tmp_path / "f.csv")
    (tmp_path / "f.csv").unlink()
    (tmp_path / "a.csv").write_text("name;frameTime;x;y\n'a';0.0;1;2\n")
    (tmp_path / "b.csv").write_text("name;frameTime;x\n'b';0.0;1\n")
    with pytest.raises(MediaError, match="columns differ between files"):
        OpenSmileCSV(tmp_path)(Segment("b", 0.0, 1.0))
    (tmp_path / "c.csv").write_text("name;frameTime;x;y\n'c';0.0;1;oops\n")
    with pytest.raises(MediaError, match="not a number"):
        OpenSmileCSV(tmp_path)(Segment("c", 0.0, 1.0))
