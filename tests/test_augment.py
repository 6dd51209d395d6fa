"""Random translations of the training images (eqprop.augment, Trainer(translate=...), --translate)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import eqprop
from eqprop.augment import translate_images
from eqprop.checkpoint import load_checkpoint
from eqprop.cli import main
from eqprop.datasets import load_dataset

SMALL = dict(beta=1.0, free_steps=10, nudged_steps=3, epsilon=0.5, learning_rates=(0.2, 0.1), batch_size=16,
             algorithm="centered", persistent=False)


@pytest.fixture(scope="module")
def digits():
    data = load_dataset("digits")
    return data.x_train[:200], data.y_train[:200]


def moved_one_by_one(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """Pixel (c, i, j) of the result is pixel (c, i - dy, j - dx) of ``image``, or 0 outside it."""
    out = np.zeros_like(image)
    channels, height, width = image.shape
    for c in range(channels):
        for i in range(height):
            for j in range(width):
                if 0 <= i - dy < height and 0 <= j - dx < width:
                    out[c, i, j] = image[c, i - dy, j - dx]
    return out


@pytest.mark.parametrize("shape, shift", [((1, 8, 8), 1), ((1, 8, 8), 3), ((2, 5, 7), 2)])
def test_every_image_moves_by_its_own_offset(shape, shift):
    rng = np.random.default_rng(0)
    n = 600
    x = rng.random((n, int(np.prod(shape))), dtype=np.float32)
    moved = translate_images(x, shape, shift, np.random.default_rng(7))
    offsets = np.random.default_rng(7).integers(-shift, shift + 1, size=(n, 2))
    assert {(int(a), int(b)) for a, b in offsets} == {(a, b) for a in range(-shift, shift + 1)
                                                      for b in range(-shift, shift + 1)}  # every offset occurs
    for i in range(n):
        expected = moved_one_by_one(x[i].reshape(shape), *offsets[i])
        np.testing.assert_array_equal(moved[i].reshape(shape), expected)


def test_no_shift_copies_and_out_is_written():
    x = np.random.default_rng(1).random((10, 64))
    out = np.full_like(x, np.nan)
    assert translate_images(x, (1, 8, 8), 0, np.random.default_rng(0), out=out) is out
    np.testing.assert_array_equal(out, x)


def test_an_epoch_trains_on_the_translated_images(digits):
    """translate=1 trains epoch 1 exactly as translate=0 on the images moved by the same draws."""
    x, y = digits
    seed = 3
    net = eqprop.EqPropNetwork([64, 20, 10], seed=0, threads=1)
    eqprop.Trainer(net, **SMALL, seed=seed, threads=1, translate=1, image_shape=(1, 8, 8)).fit(x, y, epochs=1)

    rng = np.random.default_rng(seed)
    rng.permutation(len(x))  # the epoch's order is drawn first, then the offsets
    moved = translate_images(x, (1, 8, 8), 1, rng)
    assert not np.array_equal(moved, x)
    plain = eqprop.EqPropNetwork([64, 20, 10], seed=0, threads=1)
    eqprop.Trainer(plain, **SMALL, seed=seed, threads=1).fit(moved, y, epochs=1)
    for a, b in zip(net.weights + net.biases, plain.weights + plain.biases, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resume_with_translations_is_exact(digits, tmp_path):
    x, y = digits

    def trainer():
        net = eqprop.EqPropNetwork([64, 20, 10], seed=0, threads=1)
        return eqprop.Trainer(net, **SMALL, seed=5, threads=1, translate=2, image_shape=(1, 8, 8))

    straight = trainer()
    straight.fit(x, y, epochs=3)
    first = trainer()
    first.fit(x, y, epochs=1, checkpoint_dir=tmp_path)
    resumed = eqprop.Trainer.resume(tmp_path)
    assert resumed.translate == 2 and tuple(resumed.image_shape) == (1, 8, 8)
    resumed.fit(x, y, epochs=2)
    for a, b in zip(straight.net.weights + straight.net.biases, resumed.net.weights + resumed.net.biases, strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_conv_network_takes_its_image_shape_from_the_input():
    net = eqprop.EqPropNetwork([(1, 8, 8), eqprop.Conv2d(2, 3, pool="max"), 10], seed=0, threads=1)
    trainer = eqprop.Trainer(net, **{**SMALL, "learning_rates": (0.1, 0.1)}, seed=0, translate=1)
    assert trainer.config()["translate"] == 1 and trainer.config()["image_shape"] is None
    assert trainer._image_shape == (1, 8, 8)


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(translate=-1, image_shape=(1, 8, 8)), ValueError, "translate must be a non-negative integer"),
    (dict(translate=1.5, image_shape=(1, 8, 8)), TypeError, "translate must be a non-negative integer"),
    (dict(translate=True, image_shape=(1, 8, 8)), TypeError, "translate must be a non-negative integer"),
    (dict(translate=1), ValueError, "the network's input is flat \\(64 features\\): give image_shape"),
    (dict(translate=1, image_shape=(1, 7, 7)), ValueError, "image_shape \\(1, 7, 7\\) holds 49 values"),
    (dict(translate=1, image_shape=(8, 8)), ValueError, "image_shape must be three positive integers"),
    (dict(translate=8, image_shape=(1, 8, 8)), ValueError, "translate must be below the image's height"),
])
def test_bad_translation_settings_are_refused(kwargs, error, message):
    net = eqprop.EqPropNetwork([64, 20, 10], seed=0, threads=1)
    with pytest.raises(error, match=message):
        eqprop.Trainer(net, **SMALL, seed=0, **kwargs)


def test_the_cli_records_translations_and_resumes_exactly(tmp_path, capsys):
    common = ["train", "--preset", "digits", "--train-size", "200", "--seed", "1", "--threads", "1", "--quiet",
              "--translate", "1"]
    assert main([*common, "--epochs", "2", "--out", str(tmp_path / "straight")]) == 0
    config = json.loads((tmp_path / "straight" / "config.json").read_text())
    assert config["translate"] == 1 and config["image_shape"] == [1, 8, 8]
    assert main([*common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", str(tmp_path / "split"), "--epochs", "2", "--quiet"]) == 0
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "split")
    for a, b in zip(straight.weights + straight.biases, resumed.weights + resumed.biases, strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(SystemExit) as info:
        main(["train", "--preset", "digits", "--translate", "8", "--out", str(tmp_path / "x")])
    assert info.value.code == 2
    assert "--translate must be below the images' side (8 pixels for digits); got 8" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
