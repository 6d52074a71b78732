"""How the served model uses the cores: one thread per TensorFlow op and BLAS call, and a
request's posters split over the cores instead.

The libraries' defaults spread every TensorFlow op and every BLAS call (the SVM's kernel)
over all the cores, and their idle threads spin for a while after each call, waiting for the
next. That suits one big batch on an idle machine, not a server: the scoring server runs up
to ``POSTERML_MAX_CONCURRENT_REQUESTS`` requests at once, each of whose ops then runs with
threads that compete with the other request's for the same 2 cores, and a one-poster
request's small ops cost more to hand out than to compute. Measured on 2 cores (EPYC,
AVX-512; ``python -m benchmarks.request_cost``): a one-poster request costs ~30% less CPU
with one thread per op, two concurrent one-poster streams 15-35% less, and a 32-poster batch
split in two halves, one per core, is as fast as TensorFlow's own two threads.

``POSTERML_MODEL_THREADS`` (default 1) sets the threads one op may use; 0 leaves TensorFlow's
and BLAS' defaults (and no splitting). The number of parts a request's batch is split into is
the number of cores this process may use. Set when the model loads (``load_context``),
before TensorFlow starts; a process whose TensorFlow already runs keeps its settings.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

ENV_MODEL_THREADS = "POSTERML_MODEL_THREADS"
# TensorFlow reads these when its runtime starts (the first op), not when it is imported.
TF_INTRA_OP_ENV = "TF_NUM_INTRAOP_THREADS"


def usable_cores() -> int:
    """The cores this process may run on (its affinity), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class ServingThreads:
    """``per_op``: threads of one TensorFlow op or BLAS call (None: the libraries' defaults);
    ``parts``: how many parts, run at once, a request's batch of posters is split into."""

    per_op: int | None = 1
    parts: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServingThreads:
        """The setting of ``POSTERML_MODEL_THREADS`` (default 1); a value that is not a whole
        number >= 0 raises ``ValueError`` naming the variable (the server does not start)."""
        environ = os.environ if environ is None else environ
        text = environ.get(ENV_MODEL_THREADS, "").strip() or "1"
        try:
            per_op = int(text)
        except ValueError:
            per_op = -1
        if per_op < 0:
            raise ValueError(
                f"{ENV_MODEL_THREADS}={environ[ENV_MODEL_THREADS]!r}: expected a whole number "
                ">= 0 (0: the libraries' default threads)"
            )
        if per_op == 0:
            return cls(per_op=None, parts=1)
        return cls(per_op=per_op, parts=max(1, usable_cores() // per_op))

    def apply(self) -> None:
        """Limit BLAS now and TensorFlow before it starts (see the module doc)."""
        if self.per_op is None:
            return
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=self.per_op)  # process-wide: OpenBLAS, MKL, OpenMP
        if "tensorflow" not in sys.modules:
            # Not imported yet (the model's load imports it): no import just for this.
            os.environ[TF_INTRA_OP_ENV] = str(self.per_op)
            return
        import tensorflow as tf

        try:
            tf.config.threading.set_intra_op_parallelism_threads(self.per_op)
        except RuntimeError:  # its runtime already started: this process keeps its threads
            if tf.config.threading.get_intra_op_parallelism_threads() != self.per_op:
                log.warning(
                    "TensorFlow already started in this process: %s=%d not applied to it",
                    ENV_MODEL_THREADS,
                    self.per_op,
                )
