"""The served model's threads: one per TensorFlow op and BLAS call, a request's posters split
over the cores in order, set from ``POSTERML_MODEL_THREADS`` when the model loads."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from posterml.serving import pyfunc
from posterml.serving.pyfunc import PosterGenreModel
from posterml.serving.threads import ENV_MODEL_THREADS, ServingThreads, usable_cores


def test_threads_come_from_the_environment() -> None:
    cores = usable_cores()
    assert ServingThreads.from_env({}) == ServingThreads(per_op=1, parts=cores)
    assert ServingThreads.from_env({ENV_MODEL_THREADS: " 2 "}).parts == max(1, cores // 2)
    assert ServingThreads.from_env({ENV_MODEL_THREADS: "0"}) == ServingThreads(None, 1)
    for bad in ("-1", "two", "1.5"):
        with pytest.raises(ValueError, match=ENV_MODEL_THREADS):
            ServingThreads.from_env({ENV_MODEL_THREADS: bad})


def test_apply_limits_blas_and_tensorflow_before_it_starts() -> None:
    """In a fresh process (the limits are process-wide): BLAS at one thread, and
    TensorFlow told through the variable it reads when its runtime starts."""
    code = (
        "import json, os, sys\n"
        "import numpy\n"
        "from threadpoolctl import threadpool_info\n"
        "from posterml.serving.threads import ServingThreads\n"
        "ServingThreads.from_env({}).apply()\n"
        "print(json.dumps({'blas': [p['num_threads'] for p in threadpool_info()],\n"
        "  'tf': os.environ.get('TF_NUM_INTRAOP_THREADS'),\n"
        "  'imported': 'tensorflow' in sys.modules}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["blas"] and set(seen["blas"]) == {1}
    assert seen["tf"] == "1" and not seen["imported"]  # no TensorFlow import just for this


class CountingPipeline:
    """Features that name their row, and the sizes and threads of the calls that made them."""

    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []

    def features(self, images: list) -> np.ndarray:
        self.calls.append((len(images), threading.current_thread().name))
        return np.asarray(images, dtype=np.float32)[:, None]


def test_a_batch_is_split_over_the_cores_in_order() -> None:
    model = PosterGenreModel()
    model.pipeline, model.threads = CountingPipeline(), ServingThreads(per_op=1, parts=2)
    with ThreadPoolExecutor(2, thread_name_prefix="posterml-features") as pool:
        model.parts = pool
        rows = list(range(11))
        assert model.features(rows)[:, 0].tolist() == rows
        assert sorted(n for n, _ in model.pipeline.calls) == [5, 6]
        assert all(name.startswith("posterml-features") for _, name in model.pipeline.calls)
        model.pipeline.calls.clear()  # too few rows for two parts of MIN_PART_ROWS: one call
        few = list(range(2 * pyfunc.MIN_PART_ROWS - 1))
        assert model.features(few)[:, 0].tolist() == few
        assert [n for n, _ in model.pipeline.calls] == [len(few)]


class DetailedPipeline(CountingPipeline):
    """A pipeline with a detail view: its crops' features are computed in parts too."""

    detail = object()

    def detail_features(self, images: list) -> np.ndarray:
        self.calls.append((len(images), "detail:" + threading.current_thread().name))
        return -np.asarray(images, dtype=np.float32)[:, None]


def test_the_detail_crops_are_split_over_the_cores_too() -> None:
    model = PosterGenreModel()
    model.pipeline, model.threads = DetailedPipeline(), ServingThreads(per_op=1, parts=2)
    assert model.detail_features([1, 2]).ravel().tolist() == [-1, -2]  # no pool: one call
    with ThreadPoolExecutor(2, thread_name_prefix="posterml-features") as pool:
        model.parts = pool
        rows = list(range(10))
        assert model.detail_features(rows)[:, 0].tolist() == [-r for r in rows]
        detail_calls = [n for n, name in model.pipeline.calls if "posterml-features" in name]
        assert sorted(detail_calls) == [5, 5]
    model.pipeline = CountingPipeline()
    assert model.detail_features(rows) is None  # no detail view, nothing computed
