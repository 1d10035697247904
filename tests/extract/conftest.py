"""The extraction tests run with no network at all.

Every test here runs with ``socket.socket.connect`` and ``socket.create_connection``
replaced by a refusal (as the BERT encoder's test does), so that any attempt of the
package, or of PyAV, OpenCV or librosa, to reach the network fails the test. The modules
that need the ``[extract]`` extra skip without it (``pytest.importorskip``).
"""

import socket

import pytest


def _refuse(*args, **kwargs):
    raise AssertionError("the extraction tried to open a network connection")


@pytest.fixture(autouse=True, scope="module")
def no_network():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(socket.socket, "connect", _refuse)
        patch.setattr(socket, "create_connection", _refuse)
        yield
