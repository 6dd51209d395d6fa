"""Checkpoints: round trip, atomic replacement, and clear errors for bad files."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest

import eqprop
from eqprop import checkpoint as ckpt
from eqprop.datasets import load_dataset


@pytest.fixture(scope="module")
def data():
    digits = load_dataset("digits")
    return digits.x_train[:120], digits.y_train[:120]


def trained(data, tmp_path, epochs=1, **kwargs):
    net = eqprop.EqPropNetwork((64, 12, 10), seed=0, threads=1)
    trainer = eqprop.Trainer(
        net, beta=1.0, free_steps=5, nudged_steps=2, epsilon=0.5, learning_rates=(0.2, 0.1),
        batch_size=20, seed=0, threads=1, **kwargs,
    )
    trainer.fit(*data, epochs=epochs, checkpoint_dir=tmp_path)
    return trainer


def test_round_trip_restores_everything(data, tmp_path):
    trainer = trained(data, tmp_path, epochs=2)
    loaded = ckpt.load_checkpoint(tmp_path)
    assert loaded.path == tmp_path / ckpt.CHECKPOINT_NAME
    assert loaded.epoch == 2 and loaded.sizes == (64, 12, 10) and loaded.dtype == "float32"
    assert loaded.config == trainer.config()
    assert loaded.meta["rng_state"] == trainer.rng.bit_generator.state
    assert loaded.meta["history"] == trainer.history.to_rows()
    for saved, live in zip(loaded.weights + loaded.biases + loaded.particles,
                           trainer.net.weights + trainer.net.biases + trainer.particles):
        assert saved.dtype == live.dtype
        np.testing.assert_array_equal(saved, live)
    net = loaded.build_network()
    for w, live in zip(net.weights, trainer.net.weights):
        np.testing.assert_array_equal(w, live)

    restored = eqprop.Trainer.resume(tmp_path, threads=2)
    assert restored.threads == 2 and restored.epoch == 2 and restored.seed == trainer.seed
    assert restored.history.records == trainer.history.records
    assert restored.rng.random() == trainer.rng.random()  # same RNG state


def test_non_persistent_runs_store_no_particles(data, tmp_path):
    trained(data, tmp_path, persistent=False)
    assert ckpt.load_checkpoint(tmp_path).particles is None
    assert eqprop.Trainer.resume(tmp_path).particles is None


def test_failed_save_leaves_the_previous_checkpoint_intact(data, tmp_path, monkeypatch):
    trainer = trained(data, tmp_path)
    before = (tmp_path / ckpt.CHECKPOINT_NAME).read_bytes()

    def crash_midway(handle, **arrays):
        handle.write(b"PK\x03\x04 half a zip file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.np, "savez", crash_midway)
    with pytest.raises(OSError, match="disk full"):
        trainer.fit(*data, epochs=1, checkpoint_dir=tmp_path)
    assert (tmp_path / ckpt.CHECKPOINT_NAME).read_bytes() == before
    assert ckpt.load_checkpoint(tmp_path).epoch == 1
    assert sorted(os.listdir(tmp_path)) == [ckpt.CHECKPOINT_NAME]  # no temporary file left behind


def test_a_crash_before_the_rename_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.csv"
    ckpt.atomic_write_text(target, "old\n")
    monkeypatch.setattr(ckpt.os, "replace", lambda *args: (_ for _ in ()).throw(OSError("power cut")))
    with pytest.raises(OSError, match="power cut"):
        ckpt.atomic_write_text(target, "new\n")
    assert target.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["metrics.csv"]


def test_atomic_writes_have_ordinary_permissions(tmp_path):
    target = tmp_path / "config.json"
    previous = os.umask(0o022)
    try:
        ckpt.atomic_write_json(target, {"a": [1, 2]})
    finally:
        os.umask(previous)
    assert json.loads(target.read_text()) == {"a": [1, 2]}
    assert stat.S_IMODE(target.stat().st_mode) == 0o644  # not mkstemp's 0600


def test_missing_and_invalid_checkpoints(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint found"):
        ckpt.load_checkpoint(tmp_path)
    (tmp_path / ckpt.CHECKPOINT_NAME).write_bytes(b"not a zip file")
    with pytest.raises(ckpt.CheckpointError, match="not a readable checkpoint"):
        ckpt.load_checkpoint(tmp_path)
    np.savez(tmp_path / ckpt.CHECKPOINT_NAME, weight_0=np.zeros(3))
    with pytest.raises(ckpt.CheckpointError, match="not an eqprop checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_format_version_is_checked(tmp_path):
    net = eqprop.EqPropNetwork((4, 3, 2), seed=0)
    meta = {"network": {"sizes": [4, 3, 2], "dtype": "float32"}, "epoch": 0}
    path = ckpt.save_checkpoint(tmp_path, meta=meta, weights=net.weights, biases=net.biases, particles=None)
    assert ckpt.load_checkpoint(path).epoch == 0  # a path to the .npz works too
    monkey_meta = json.dumps(dict(meta, format_version=99)).encode()
    arrays = {"meta_json": np.frombuffer(monkey_meta, dtype=np.uint8)}
    np.savez(path, **arrays)
    with pytest.raises(ckpt.CheckpointError, match="format 99"):
        ckpt.load_checkpoint(path)
