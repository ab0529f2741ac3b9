from collections import OrderedDict

import pytest
import torch

from core.checkpoint import CheckpointError, ModelMeta, load_checkpoint, save_checkpoint
from core.labels import FASHION_MNIST_LABELS


def test_round_trip_rebuilds_the_same_model(tiny_model_path, tmp_path):
    model, meta = load_checkpoint(tiny_model_path)
    assert meta.arch == "default" and meta.labels == list(FASHION_MNIST_LABELS)
    assert meta.train_config["epochs"] == 1 and meta.dataset["checksum"]
    assert meta.normalization is not None and meta.versions["torch"] == torch.__version__
    copy = save_checkpoint(tmp_path / "copy.safetensors", model, meta)
    model2, meta2 = load_checkpoint(copy)
    x = torch.rand(8, 1, 28, 28)
    with torch.inference_mode():
        assert torch.equal(model(x), model2(x))
    assert meta2.weights_sha256 == meta.weights_sha256


def test_truncated_file_is_a_clear_error(tiny_model_path, tmp_path):
    data = tiny_model_path.read_bytes()
    bad = tmp_path / "cut.safetensors"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(bad)


def test_flipped_weight_byte_is_detected(tiny_model_path, tmp_path):
    data = bytearray(tiny_model_path.read_bytes())
    data[-100] ^= 0xFF
    bad = tmp_path / "flip.safetensors"
    bad.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(bad)


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x10\x00\x00\x00\x00\x00\x00\x00{}"])
def test_not_a_checkpoint(tmp_path, content):
    bad = tmp_path / "x.safetensors"
    bad.write_bytes(content)
    with pytest.raises(CheckpointError):
        load_checkpoint(bad)


def test_weights_that_do_not_match_the_declared_labels(tiny_model_path, tmp_path):
    model, meta = load_checkpoint(tiny_model_path)
    wrong = meta.model_copy(update={"labels": ["a", "b", "c"]})
    path = save_checkpoint(tmp_path / "wrong.safetensors", model, wrong)
    with pytest.raises(CheckpointError, match="do not match arch 'default' with 3 labels"):
        load_checkpoint(path)


def test_unknown_arch_in_metadata(tiny_model_path, tmp_path):
    model, meta = load_checkpoint(tiny_model_path)
    path = save_checkpoint(tmp_path / "x.safetensors", model, meta.model_copy(update={"arch": "x"}))
    with pytest.raises(CheckpointError, match="Unknown arch 'x'"):
        load_checkpoint(path)


def original_project_module():
    """The original tutorial wrote the network as an nn.Sequential."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 32, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(32 * 26 * 26, 128), torch.nn.ReLU(), torch.nn.Linear(128, 10),
    )


def test_original_projects_pth_loads_into_baseline(tmp_path):
    original = original_project_module().eval()
    path = tmp_path / "fashion_mnist_cnn.pth"
    torch.save(original.state_dict(), path)
    model, meta = load_checkpoint(path)
    assert meta.arch == "baseline"
    x = torch.rand(4, 1, 28, 28)
    with torch.inference_mode():
        assert torch.allclose(model(x), original(x))


def test_pth_of_another_network_is_refused(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(OrderedDict(w=torch.zeros(3)), path)
    with pytest.raises(CheckpointError, match="does not hold the baseline network"):
        load_checkpoint(path)
    (tmp_path / "junk.pth").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError, match="cannot read .pth"):
        load_checkpoint(tmp_path / "junk.pth")


def test_meta_defaults_record_preprocessing():
    meta = ModelMeta(arch="default", labels=["a", "b"])
    assert meta.preprocessing and meta.created_at
