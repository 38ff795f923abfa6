"""Model files: a round trip rebuilds the same network through its family, and every broken
or foreign file is refused with one message naming the file and the key, never with a hint to
load it unsafely."""

import re

import pytest
import torch

from astroflow.modelfile import ModelFileError, load_model, save_model
from astroflow.models.cnn2d import MomentCNN2d


def small_net():
    torch.manual_seed(0)
    return MomentCNN2d(in_channels=1, n_params=2, map_size=16, hidden=4).eval()


META = {
    "model": "cnn2d",
    "arch": {"in_channels": 1, "n_params": 2, "map_size": 16, "hidden": 4},
    "fields": ["Mgas"],
    "params": ["Omega_m", "sigma_8"],
    "settings": {},
}


def test_model_file_round_trip_gives_identical_predictions(tmp_path):
    net = small_net()
    save_model(tmp_path / "model.pt", net.state_dict(), META)
    loaded, meta = load_model(tmp_path / "model.pt")
    assert meta["fields"] == ["Mgas"] and "state_dict" not in meta
    assert not loaded.training
    x = torch.randn(6, 1, 16, 16)
    with torch.no_grad():
        for a, b in zip(net(x), loaded(x), strict=True):
            assert torch.equal(a, b)


def test_missing_model_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.pt"):
        load_model(tmp_path / "absent.pt")


def test_model_file_without_a_key_names_file_and_key(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, small_net().state_dict(), META)
    payload = torch.load(path, weights_only=True)
    del payload["arch"]
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(path))}: key 'arch' missing"):
        load_model(path)


def test_weights_that_do_not_fit_the_architecture_are_refused(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, small_net().state_dict(), {**META, "arch": {**META["arch"], "hidden": 8}})
    with pytest.raises(ModelFileError, match=rf"{re.escape(str(path))}: key 'state_dict'"):
        load_model(path)


def test_pickled_objects_are_refused(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(small_net(), path)  # a whole module: needs unpickling code, not weights only
    with pytest.raises(ModelFileError, match="not a model file written by astroflow") as err:
        load_model(path)
    message = str(err.value).replace(str(path), "")
    assert "weights_only" not in message and "pickle" not in message.lower()


def test_unknown_family_is_named(tmp_path):
    path = tmp_path / "model.pt"
    save_model(path, small_net().state_dict(), {**META, "model": "resnet"})
    with pytest.raises(ModelFileError, match="unknown model family 'resnet'"):
        load_model(path)


@pytest.mark.parametrize("content", [b"", b"\x00garbage" * 100, b"<html>502</html>"])
def test_corrupt_model_files_get_a_safe_message(tmp_path, content):
    path = tmp_path / "model.pt"
    path.write_bytes(content)
    with pytest.raises(ModelFileError, match="model.pt: not a model file") as err:
        load_model(path)
    message = str(err.value).replace(str(path), "")
    assert "weights_only" not in message and "pickle" not in message.lower()


def test_another_experiments_model_file_is_refused(tmp_path):
    path = tmp_path / "model.pt"
    trained = {"model": "cnn2d", "fields": ["Mgas"], "lr": 0.003, "seed": 7}
    save_model(path, small_net().state_dict(), {**META, "settings": trained})
    load_model(path, settings={**trained, "fields": ("Mgas",)})  # its own experiment: fine
    with pytest.raises(ModelFileError, match=r"model.pt: trained with lr=0.003, but the experi"):
        load_model(path, settings={**trained, "lr": 0.001})
