"""Datasets read from their real on-disk formats (fabricated here), splits, and batched
augmentation."""

from __future__ import annotations

import pickle

import pytest
import torch

from optsweep.data import load_splits, read_dataset
from optsweep.data.batches import Normalize, crop_at, flip_where, train_batches
from optsweep.data.cifar import read_cifar
from optsweep.errors import DataError
from tests import fakes, processes
from tests.conftest import make_cfg


@pytest.fixture(autouse=True)
def _fresh_cache():
    read_dataset.cache_clear()
    yield
    read_dataset.cache_clear()


def test_fabricated_files_have_python2_keys(cifar_root):
    path = cifar_root / "cifar-100-python" / "train"
    as_text = pickle.loads(path.read_bytes(), encoding="latin1")
    as_bytes = pickle.loads(path.read_bytes(), encoding="bytes")
    assert "fine_labels" in as_text and b"fine_labels" in as_bytes


@pytest.mark.parametrize("name, n_train, n_test, classes", [("cifar100", 200, 100, 100),
                                                           ("cifar10", 100, 40, 10)])
def test_cifar_reader_returns_the_written_pixels(cifar_root, name, n_train, n_test, classes):
    train_x, train_y, test_x, test_y, names = read_cifar(name, cifar_root, download=False)
    assert train_x.shape == (n_train, 3, 32, 32) and train_x.dtype == torch.uint8
    assert test_x.shape == (n_test, 3, 32, 32) and len(names) == classes
    folder = cifar_root / ("cifar-100-python" if name == "cifar100" else "cifar-10-batches-py")
    batch = folder / ("train" if name == "cifar100" else "data_batch_1")
    first = pickle.loads(batch.read_bytes(), encoding="bytes")
    label_key = b"fine_labels" if name == "cifar100" else b"labels"
    assert torch.equal(train_x[0].flatten(), torch.from_numpy(first[b"data"][0]))
    assert train_y[: len(first[label_key])].tolist() == list(first[label_key])


def test_missing_dataset_offline_names_path_files_and_alternative(tmp_path, no_network):
    with pytest.raises(DataError) as info:
        read_cifar("cifar100", tmp_path, download=True)
    message = str(info.value)
    assert str(tmp_path) in message and "cifar-100-python" in message and "data=digits" in message


def test_missing_dataset_without_download_says_how(tmp_path):
    with pytest.raises(DataError, match="data.download=true"):
        read_cifar("cifar10", tmp_path, download=False)


@pytest.mark.parametrize("damage", [b"", b"not a pickle at all", None])
def test_corrupt_file_is_named(tmp_path, damage):
    fakes.write_cifar100(tmp_path, n_train=20, n_test=10)
    path = tmp_path / "cifar-100-python" / "test"
    if damage is None:  # a valid pickle of the wrong shape
        fakes.py2_pickle(path, {fakes.Py2Str("data"): b"\x00" * 10,
                                fakes.Py2Str("fine_labels"): [1]})
    else:
        path.write_bytes(damage)
    with pytest.raises(DataError) as info:
        read_cifar("cifar100", tmp_path, download=False)
    assert str(path) in str(info.value) and "corrupt" in str(info.value)


def test_truncated_file_is_named(tmp_path):
    fakes.write_cifar100(tmp_path, n_train=20, n_test=10)
    path = tmp_path / "cifar-100-python" / "train"
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="train is corrupt"):
        read_cifar("cifar100", tmp_path, download=False)


def test_digits_are_real_10_class_images():
    train_x, train_y, test_x, test_y, names = read_dataset("digits", "unused", False, 32)
    assert len(train_y) + len(test_y) == 1797 and names == [str(d) for d in range(10)]
    assert train_x.shape[1:] == (3, 32, 32) and train_x.dtype == torch.uint8
    assert set(test_y.tolist()) == set(range(10))
    assert torch.equal(train_x[:, 0], train_x[:, 1])  # grey: the three channels are equal


def test_imagefolder_reads_and_resizes(tmp_path):
    fakes.write_imagefolder(tmp_path, per_class=3, size=20)
    train_x, train_y, test_x, test_y, names = read_dataset("imagefolder", str(tmp_path), False, 32)
    assert names == ["cat", "dog"] and train_x.shape == (6, 3, 32, 32)
    assert train_y.tolist() == [0, 0, 0, 1, 1, 1]


def test_imagefolder_without_split_folders_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="has no 'train/' folder"):
        read_dataset("imagefolder", str(tmp_path), False, 32)


def test_split_is_seeded_disjoint_and_capped(cifar_root):
    cfg = make_cfg([f"data.root={cifar_root}", "data.train_limit=150", "data.test_limit=30",
                    "data.val_fraction=0.2"]).data
    a, b, c = load_splits(cfg, 0), load_splits(cfg, 0), load_splits(cfg, 1)
    assert (len(a.train), len(a.val), len(a.test)) == (120, 30, 30)
    assert torch.equal(a.val.images, b.val.images) and not torch.equal(a.val.images, c.val.images)
    train_rows = {bytes(x.flatten().tolist()) for x in a.train.images}
    assert not any(bytes(x.flatten().tolist()) in train_rows for x in a.val.images)


def test_no_val_split_when_fraction_is_zero(cifar_root):
    splits = load_splits(make_cfg([f"data.root={cifar_root}", "data.val_fraction=0"]).data, 0)
    assert splits.val is None and len(splits.train) == 200


def test_batch_flip_is_a_mirror_or_identity():
    images = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    flip = torch.rand(64, generator=torch.Generator().manual_seed(0)) < 0.5
    out = flip_where(images, flip)
    same = (out == images).flatten(1).all(1)
    mirrored = (out == images.flip(-1)).flatten(1).all(1)
    assert out.shape == images.shape and out.dtype == torch.uint8
    assert bool((same | mirrored).all()) and 0 < int(mirrored.sum()) < 64
    assert torch.equal(out[flip], images[flip].flip(-1)) and torch.equal(out[~flip], images[~flip])


def test_batch_crop_is_a_shift_with_zero_fill():
    images = torch.randint(1, 256, (32, 3, 8, 8), dtype=torch.uint8)  # no zero pixels
    shifts = torch.randint(0, 5, (2, 32), generator=torch.Generator().manual_seed(0))
    out = crop_at(images, 2, shifts)
    assert out.shape == images.shape and out.dtype == torch.uint8
    padded = torch.nn.functional.pad(images, (2, 2, 2, 2))
    for i in range(len(images)):  # each output is one of the 25 windows of the padded image
        windows = [padded[i, :, dy:dy + 8, dx:dx + 8] for dy in range(5) for dx in range(5)]
        assert any(torch.equal(out[i], w) for w in windows)
        dy, dx = shifts[:, i].tolist()  # and exactly the one its shift names
        assert torch.equal(out[i], padded[i, :, dy:dy + 8, dx:dx + 8])


def test_train_batches_cover_the_split_once():
    from optsweep.data import Split

    split = Split(torch.zeros(50, 3, 4, 4, dtype=torch.uint8), torch.arange(50))
    batches = list(train_batches(split, 16, torch.Generator().manual_seed(0), augment=True))
    assert [len(y) for _, y in batches] == [16, 16, 16, 2]
    assert sorted(torch.cat([y for _, y in batches]).tolist()) == list(range(50))


def test_normalize_matches_the_torchvision_transform():
    from torchvision.transforms import v2

    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    mean, std = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
    ours = Normalize(mean, std, 32, torch.device("cpu"), channels_last=True)(images)
    reference = v2.Normalize(mean, std)(images.float() / 255)
    assert ours.is_contiguous(memory_format=torch.channels_last)
    torch.testing.assert_close(ours, reference, rtol=1e-5, atol=1e-5)
    resized = Normalize(mean, std, 64, torch.device("cpu"), channels_last=False)(images)
    assert resized.shape == (4, 3, 64, 64)


# --- honest subsets -------------------------------------------------------------------------------

from optsweep import contract  # noqa: E402
from optsweep.data.subset import class_quotas, stratified_sample  # noqa: E402


def test_a_capped_class_sorted_split_keeps_every_class_in_proportion():
    labels = torch.arange(10).repeat_interleave(torch.tensor([30] * 5 + [10] * 5))  # sorted, 200
    picked = stratified_sample(labels, 40, torch.Generator().manual_seed(0))
    counts = torch.bincount(labels[picked], minlength=10).tolist()
    assert counts == [6] * 5 + [2] * 5 and len(set(picked.tolist())) == 40
    again = stratified_sample(labels, 40, torch.Generator().manual_seed(0))
    other = stratified_sample(labels, 40, torch.Generator().manual_seed(1))
    assert torch.equal(picked, again) and not torch.equal(picked.sort().values, other.sort().values)


def test_quotas_hand_out_the_leftover_by_largest_remainder():
    assert class_quotas(torch.tensor([5, 3, 2]), 5).tolist() == [3, 1, 1]  # 2.5, 1.5, 1.0
    assert class_quotas(torch.tensor([1, 1, 1]), 2).tolist() == [1, 1, 0]  # ties: lower index
    assert class_quotas(torch.tensor([7, 3]), 10).tolist() == [7, 3]


def test_train_and_test_limits_draw_stratified_subsets_from_a_class_sorted_folder(tmp_path):
    fakes.write_imagefolder(tmp_path, classes=("a", "b", "c", "d"), per_class=6, size=8)
    cfg = make_cfg(["data=imagefolder", f"data.root={tmp_path}", "data.train_limit=12",
                    "data.test_limit=8", "data.val_fraction=0.25"]).data
    splits = load_splits(cfg, 0)
    train_val = torch.cat([splits.train.labels, splits.val.labels])
    assert torch.bincount(train_val, minlength=4).tolist() == [3, 3, 3, 3]
    # not [6, 2, 0, 0]
    assert torch.bincount(splits.test.labels, minlength=4).tolist() == [2, 2, 2, 2]
    assert torch.equal(load_splits(cfg, 1).test.images, splits.test.images)  # same for every seed


def test_capped_runs_get_a_new_fingerprint_and_uncapped_ones_keep_theirs(cfg_factory):
    import hashlib
    import json

    from omegaconf import OmegaConf

    def recorded_before(cfg):  # the fingerprint as the code before the new keys computed it
        container = OmegaConf.to_container(cfg, resolve=True)
        container.pop("scheduler")
        for group, keys in contract.RESULT_FREE_KEYS.items():
            for key in keys:
                container.get(group, {}).pop(key, None)
        for group, keys in contract.NEUTRAL_KEYS.items():
            for key in keys:
                container[group].pop(key)
        return hashlib.sha256(json.dumps(container, sort_keys=True).encode()).hexdigest()[:16]

    plain = cfg_factory(["data=digits"])
    capped = cfg_factory(["data=digits", "data.test_limit=30"])
    assert contract.config_fingerprint(plain) == recorded_before(plain)
    assert contract.config_fingerprint(capped) != recorded_before(capped)
    assert contract.config_fingerprint(cfg_factory(["data=digits", "scheduler=cosine"])) != (
        contract.config_fingerprint(plain))


@pytest.mark.slow
def test_decoded_images_are_cached_for_the_next_process_and_redone_when_a_file_changes(tmp_path):
    fakes.write_imagefolder(tmp_path, per_class=3, size=20)
    probe = ("import logging, sys; logging.basicConfig(level=logging.INFO); "
             "from optsweep.data.imagefolder import read_imagefolder; "
             f"x = read_imagefolder({str(tmp_path)!r}, 16); "
             "print(int(x[0].sum()), int(x[2].sum()))")

    def read() -> tuple[str, bool]:
        done = processes.code(probe, check=True, timeout=120)
        return done.stdout.strip(), "decoded images read from" in done.stderr

    first, hit = read()
    assert not hit and list((tmp_path / ".optsweep_cache").glob("*/train_x.npy"))
    second, hit = read()
    assert hit and second == first  # another process: memory-mapped, the same images
    from PIL import Image

    changed = sorted((tmp_path / "train").glob("*/*"))[0]
    Image.new("RGB", (20, 20), (255, 255, 255)).save(changed)
    third, hit = read()
    assert not hit and third != first  # a changed folder is decoded again
