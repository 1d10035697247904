"""Label vocabularies and the CMU-MOSEI emotion columns."""

import numpy as np
import pytest

from dhmd_graph.data.errors import DatasetError
from dhmd_graph.data.labels import MOSEI_EMOTIONS, mosei_emotion_presence


def test_mosei_emotion_presence_is_intensity_above_zero():
    rows = np.array([
        # sentiment, happiness, sadness, anger, surprise, disgust, fear
        [1.0, 2.0, 0.0, 0.0, 0.3333, 0.0, 0.0],
        [-2.3, 0.0, 1.0, 3.0, 0.0, 0.6667, 0.0],
        [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    ])
    present = mosei_emotion_presence(rows)
    assert present.dtype == np.float32 and present.shape == (3, len(MOSEI_EMOTIONS))
    np.testing.assert_array_equal(present, [[1, 0, 0, 1, 0, 0], [0, 1, 1, 0, 1, 0],
                                            [0, 0, 0, 0, 0, 0]])
    # The sentiment column plays no part; one row gives one (6,) vector.
    np.testing.assert_array_equal(mosei_emotion_presence([3.0, 0, 0, 0, 0, 0, 0.1]),
                                  [0, 0, 0, 0, 0, 1])


@pytest.mark.parametrize("rows, match", [
    (np.zeros((2, 6)), r"wrong MOSEI label rows.*field 'labels'.*expected \(N, 7\).*shape \(2, 6\)"),
    ([[0, 1, 0, 0, 0, 0, np.nan]], r"outside \[0, 3\].*fear = nan in row 0"),
    ([[0, 1, 0, 0, 0, 0, 0], [0, 0, -0.5, 4, 0, 0, 0]],
     r"sadness = -0.5 in row 1 \(2 such values\)"),
])
def test_bad_rows_name_the_problem(rows, match):
    with pytest.raises(DatasetError, match=match):
        mosei_emotion_presence(rows, file="CMU_MOSEI_Labels.csd")
