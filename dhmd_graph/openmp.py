"""OpenMP settings of the entry points, chosen before PyTorch is imported.

PyTorch runs its CPU kernels on OpenMP threads. With GNU OpenMP's default wait policy a
thread that reaches a barrier first *spins* on its core (about 3 ms) before it sleeps.
On an idle machine that saves a wake-up; on a small machine where another process is
busy, the spinning threads take the time slices the working thread needs, and a training
run becomes many times slower (issue 13: on a 2-core machine with another busy process,
the quickstart's first epoch took 871 s). A *passive* wait policy makes a waiting thread
sleep at once.

OpenMP reads its environment once, when the runtime starts (when ``torch`` is imported),
so the entry points (the ``dhmd`` command and the scripts in ``examples/``) apply
:func:`openmp_defaults` first thing::

    os.environ.update(openmp_defaults())  # before anything imports torch

A user who sets ``OMP_WAIT_POLICY`` or ``OMP_NUM_THREADS`` keeps exactly what they set
(``OMP_WAIT_POLICY=ACTIVE`` restores spinning); the library itself never changes the
environment. ``benchmarks/quickstart_time.py`` measures both policies on a quiet machine
and beside a busy process.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

__all__ = ["USER_VARIABLES", "WAIT_POLICY", "openmp_defaults"]

WAIT_POLICY = "PASSIVE"
"""The wait policy the entry points choose when the user has chosen nothing."""

USER_VARIABLES = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")
"""Setting any of these means the user has chosen; the entry points then change nothing."""


def openmp_defaults(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    r"""The OpenMP variables an entry point should add to its environment.

    ``{"OMP_WAIT_POLICY": "PASSIVE"}`` when none of :data:`USER_VARIABLES` is set in
    ``environ`` and PyTorch has not been imported yet (afterwards the OpenMP runtime
    has read its settings, and a change would only reach child processes); otherwise
    ``{}``.

    Args:
        environ (Mapping[str, str], optional): The environment to inspect;
            :obj:`None` means :data:`os.environ`. (default: :obj:`None`)
    """
    environ = os.environ if environ is None else environ
    if "torch" in sys.modules or any(environ.get(name) for name in USER_VARIABLES):
        return {}
    return {"OMP_WAIT_POLICY": WAIT_POLICY}
