"""Datasets: stratified split, CIFAR loading on generated files, synthetic data, augmentation."""

import hashlib
import pickle
import tarfile

import numpy as np
import pytest
import torch
from torchvision import datasets

from ablate.data import Split, stratified_split, take_stratified
from ablate.data.augment import DeviceLoader, channel_stats, random_crop, random_flip
from ablate.data.cifar import cifar100
from ablate.data.synthetic import synthetic
from ablate.registry import AblateError


def test_stratified_split_sizes_and_balance():
    labels = torch.arange(100).repeat_interleave(500)  # CIFAR-100's 50,000 training labels
    train, val = stratified_split(labels, 2500, seed=0)
    assert (len(train), len(val)) == (47_500, 2_500)
    assert torch.bincount(labels[val], minlength=100).tolist() == [25] * 100
    assert torch.bincount(labels[train], minlength=100).tolist() == [475] * 100
    assert not set(train.tolist()) & set(val.tolist())
    again, _ = stratified_split(labels, 2500, seed=0)
    other, _ = stratified_split(labels, 2500, seed=1)
    assert torch.equal(train, again) and not torch.equal(train, other)


def test_take_stratified_keeps_classes_balanced():
    split = Split(torch.zeros(1000, 3, 4, 4, dtype=torch.uint8), torch.arange(10).repeat(100))
    small = take_stratified(split, 200, seed=0)
    assert torch.bincount(small.y).tolist() == [20] * 10


def _write_cifar100(root, n_train=200, n_test=100):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name, n in (("train", n_train), ("test", n_test)):
        entry = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "fine_labels": [i % 100 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(entry))
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [f"c{i}" for i in range(100)]}))
    return folder


def _md5(path):
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture
def cifar_files(tmp_path, monkeypatch):
    """A small CIFAR-100-format copy, with torchvision's checksums pointed at it."""
    folder = _write_cifar100(tmp_path)
    monkeypatch.setattr(datasets.CIFAR100, "train_list", [["train", _md5(folder / "train")]])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", [["test", _md5(folder / "test")]])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {**datasets.CIFAR100.meta, "md5": _md5(folder / "meta")})
    return tmp_path


def test_cifar100_loads_generated_files(cifar_files):
    splits = cifar100(data_dir=cifar_files, val_size=100)
    assert splits.sizes == {"train": 100, "val": 100, "test": 100}
    assert splits.train.x.shape == (100, 3, 32, 32) and splits.train.x.dtype == torch.uint8
    assert torch.bincount(splits.val.y, minlength=100).tolist() == [1] * 100
    raw = pickle.loads((cifar_files / "cifar-100-python" / "test").read_bytes())
    assert torch.equal(splits.test.x[5], torch.from_numpy(raw["data"][5].reshape(3, 32, 32)))


def test_cifar100_extracts_an_archive_without_network(cifar_files, monkeypatch):
    archive = cifar_files / "cifar-100-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(cifar_files / "cifar-100-python", arcname="cifar-100-python")
    monkeypatch.setattr(datasets.CIFAR100, "tgz_md5", _md5(archive))
    for f in (cifar_files / "cifar-100-python").iterdir():
        f.unlink()
    splits = cifar100(data_dir=cifar_files, download=True, val_size=100)
    assert len(splits.test) == 100


def test_missing_cifar_says_where_to_put_it(tmp_path):
    with pytest.raises(AblateError) as exc:
        cifar100(data_dir=tmp_path / "nowhere")
    message = str(exc.value)
    assert "cifar100: no valid copy in" in message and "cifar-100-python" in message and "--download" in message


def test_synthetic_is_deterministic_and_shaped_like_cifar():
    a, b = synthetic(train_size=300, val_size=50, test_size=50), synthetic(train_size=300, val_size=50, test_size=50)
    assert torch.equal(a.train.x, b.train.x) and torch.equal(a.test.y, b.test.y)
    assert a.train.x.shape == (300, 3, 32, 32) and a.train.x.dtype == torch.uint8
    assert a.num_classes == 100 and set(a.train.y.tolist()) == set(range(100))
    c = synthetic(train_size=300, val_size=50, test_size=50, seed=1)
    assert not torch.equal(a.train.x, c.train.x)
    assert not torch.equal(a.train.x[:50], a.val.x)


def test_crop_and_flip_keep_shapes_and_are_seeded():
    x = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    out = random_flip(random_crop(x, 4, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(0))
    again = random_flip(random_crop(x, 4, torch.Generator().manual_seed(0)), torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8 and torch.equal(out, again)


def test_crop_is_a_shifted_window_of_the_padded_image():
    x = torch.arange(2 * 1 * 8 * 8, dtype=torch.uint8).view(2, 1, 8, 8)
    out = random_crop(x, 2, torch.Generator().manual_seed(3))
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    for i in range(2):
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)


def test_flip_mirrors_about_half_the_images():
    x = torch.arange(1000 * 4, dtype=torch.float32).view(1000, 1, 1, 4)
    out = random_flip(x, torch.Generator().manual_seed(0))
    flipped = (out[:, 0, 0, 0] != x[:, 0, 0, 0]).float().mean().item()
    assert 0.4 < flipped < 0.6


def test_loader_normalises_and_only_augments_training_batches():
    split = synthetic(train_size=200, val_size=10, test_size=10).train
    mean, std = channel_stats(split.x)
    plain = DeviceLoader(split, 50, mean, std)
    xb, yb = next(plain.batches())
    assert xb.shape == (50, 3, 32, 32) and xb.dtype == torch.float32
    full = torch.cat([b for b, _ in plain.batches()])
    assert full.mean(dim=(0, 2, 3)).abs().max() < 1e-4 and (full.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2
    aug = DeviceLoader(split, 50, mean, std, augment=True, shuffle=True, drop_last=True)
    first = [b for b, _ in aug.batches(seed=7)]
    assert all(torch.equal(a, b) for a, b in zip(first, [b for b, _ in aug.batches(seed=7)]))
    assert not torch.equal(first[0], next(aug.batches(seed=8))[0])


def test_channels_last_batches_hold_the_same_values():
    split = synthetic(train_size=100, val_size=10, test_size=10).train
    mean, std = channel_stats(split.x)
    make = lambda cl: DeviceLoader(split, 50, mean, std, augment=True, shuffle=True, channels_last=cl)  # noqa: E731
    for nchw, nhwc in zip(make(False).batches(seed=1), make(True).batches(seed=1)):
        assert nhwc[0].is_contiguous(memory_format=torch.channels_last) and nchw[0].is_contiguous()
        assert torch.equal(nchw[0], nhwc[0]) and torch.equal(nchw[1], nhwc[1])
