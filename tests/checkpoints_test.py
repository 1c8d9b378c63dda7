"""Tests of rppgedit.checkpoints: shipped weights and their records, orbax round trips, open-rppg
and PyTorch converters, loading."""

import shutil

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rppgedit import checkpoints
from rppgedit.errors import RppgEditError
from rppgedit.models import physnet

# The test extra installs the attackers extra (open-rppg): the converter tests run, never skip.


def _one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message and message
    return message


def test_save_restore_round_trip_is_bit_exact(tmp_path, rng):
    tree = {
        "params": {
            "a": rng.standard_normal((3, 4, 5)).astype(np.float32),
            "b": {"c": np.array([np.pi, 1e-30, -0.0, np.inf], np.float32)},
        },
        "batch_stats": {"n": rng.integers(-5, 5, (7,)).astype(np.int32)},
    }
    path = checkpoints.save_pytree(tmp_path / "ckpt", tree, metadata={"bn_epsilon": 1e-3})
    assert path == (tmp_path / "ckpt").resolve()
    # Orbax writes into a temporary folder and renames it: nothing but the checkpoint remains.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]
    restored = checkpoints.restore_pytree(path)
    assert jax.tree.structure(restored) == jax.tree.structure(tree)
    for got, want in zip(jax.tree.leaves(restored), jax.tree.leaves(tree), strict=True):
        assert isinstance(got, jax.Array) and got.dtype == want.dtype and got.shape == want.shape
        assert np.asarray(got).tobytes() == want.tobytes()
    assert checkpoints.pytree_metadata(path) == {"bn_epsilon": 1e-3}
    with pytest.raises(RppgEditError) as err:
        checkpoints.save_pytree(path, tree)
    assert "already exists" in _one_line(err)
    checkpoints.save_pytree(path, {"x": np.ones(2, np.float32)}, force=True)
    assert np.asarray(checkpoints.restore_pytree(path)["x"]).tolist() == [1.0, 1.0]


def test_restore_missing_or_broken_checkpoint_is_one_line_error(tmp_path):
    with pytest.raises(RppgEditError) as err:
        checkpoints.restore_pytree(tmp_path / "nothing")
    assert "nothing" in _one_line(err)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "_CHECKPOINT_METADATA").write_text("not json")
    with pytest.raises(RppgEditError) as err:
        checkpoints.restore_pytree(tmp_path / "broken")
    assert "broken" in _one_line(err)


def test_default_checkpoint_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("RPPGEDIT_CHECKPOINTS", str(tmp_path))
    assert checkpoints.default_checkpoint_dir() == tmp_path
    monkeypatch.delenv("RPPGEDIT_CHECKPOINTS")
    assert checkpoints.default_checkpoint_dir() == checkpoints.PACKAGE_DIR
    assert (checkpoints.PACKAGE_DIR / "__init__.py").samefile(checkpoints.__file__)


def test_missing_open_rppg_gives_one_line_error(monkeypatch, tmp_path):
    monkeypatch.setattr(checkpoints, "_find_spec", lambda name: None)
    with pytest.raises(RppgEditError) as err:
        checkpoints.load_physnet("pure", tmp_path / "empty")
    message = _one_line(err)
    assert (
        "pip install open-rppg" in message and str(tmp_path / "empty" / "physnet_pure") in message
    )
    with pytest.raises(RppgEditError) as err:
        checkpoints.open_rppg_weight_file("rlap")
    assert "pip install open-rppg" in _one_line(err)
    with pytest.raises(RppgEditError) as err:
        checkpoints.load_physnet("ubfc", tmp_path)
    assert "unknown PhysNet variant" in _one_line(err)


@pytest.mark.parametrize("variant", ["pure", "rlap"])
def test_convert_open_rppg_matches_h5_values(tmp_path, variant):
    h5_path = checkpoints.open_rppg_weight_file(variant)
    variables = checkpoints.convert_open_rppg_physnet(variant, tmp_path / "ckpt")
    with h5py.File(h5_path, "r") as f:

        def h5(key):
            return np.asarray(f[key]).astype(np.float64)

        checks = [
            (variables["params"]["ConvBlock1"]["conv"]["kernel"], "ConvBlock1/layers/conv3d/vars/0"),
            (variables["params"]["ConvBlock9"]["bn"]["bias"], "ConvBlock9/layers/batch_normalization/vars/1"),
            (variables["batch_stats"]["ConvBlock4"]["bn"]["var"], "ConvBlock4/layers/batch_normalization/vars/3"),
            (variables["params"]["upsample"]["conv"]["kernel"], "layers/sequential_9/layers/conv3d_transpose/vars/0"),
            (variables["batch_stats"]["upsample2"]["bn"]["mean"], "layers/sequential_10/layers/batch_normalization/vars/2"),
            (variables["params"]["ConvBlock10"]["bias"], "convBlock10/vars/1"),
        ]  # fmt: skip
        for got, key in checks:
            assert got.dtype == jnp.float32
            np.testing.assert_array_equal(np.asarray(got, np.float64), h5(key))
        stored = sum(
            int(np.prod(d.shape)) for d in _datasets(f)
        )  # every stored value lands somewhere
    assert stored == sum(int(np.prod(a.shape)) for a in jax.tree.leaves(variables)) == 769_825
    meta = checkpoints.pytree_metadata(tmp_path / "ckpt")
    assert meta["bn_epsilon"] == physnet.KERAS_BN_EPSILON and len(meta["sha256"]) == 64
    assert meta["license"].startswith("MIT")


def _datasets(group):
    out = []
    group.visititems(lambda _, obj: out.append(obj) if isinstance(obj, h5py.Dataset) else None)
    return out


def test_load_physnet_converts_once_and_caches(tmp_path, caplog):
    caplog.set_level("INFO", logger="rppgedit.checkpoints")
    first = checkpoints.load_physnet("rlap", tmp_path)
    assert (tmp_path / "physnet_rlap" / "_CHECKPOINT_METADATA").is_file()
    assert sum("converting open-rppg PhysNet" in r.getMessage() for r in caplog.records) == 1
    assert checkpoints.load_physnet("rlap", tmp_path) is first  # per-process cache
    checkpoints._load_cached.cache_clear()
    again = checkpoints.load_physnet("rlap", str(tmp_path))  # restored from disk, not converted
    assert sum("converting" in r.getMessage() for r in caplog.records) == 1
    for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(again), strict=True):
        assert np.asarray(a).tobytes() == np.asarray(b).tobytes()


def test_run_convert_sources(tmp_path):
    out = checkpoints.run_convert("open_rppg:pure", tmp_path)
    assert out == tmp_path.resolve() / "physnet_pure"
    assert checkpoints.pytree_metadata(out)["trained_on"] == "PURE"
    for bad in ("open_rppg:ubfc", "keras:x.h5", "torch:", "pure"):
        with pytest.raises(RppgEditError) as err:
            checkpoints.run_convert(bad, tmp_path)
        _one_line(err)


def test_torch_missing_gives_one_line_error(monkeypatch, tmp_path):
    import sys

    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` raise ImportError
    with pytest.raises(RppgEditError) as err:
        checkpoints.convert_torch_physnet(tmp_path / "model.pth", tmp_path / "out")
    assert "pip install torch" in _one_line(err)


def test_h5py_missing_gives_one_line_error(monkeypatch, tmp_path):
    import sys

    h5 = checkpoints.open_rppg_weight_file("pure")
    monkeypatch.setitem(sys.modules, "h5py", None)  # the core install has no h5py
    with pytest.raises(RppgEditError) as err:
        checkpoints.convert_open_rppg_physnet("pure", tmp_path / "out")
    message = _one_line(err)
    assert "pip install 'rppgedit[convert]'" in message and str(h5) in message


def _torch_physnet(torch):
    """A PyTorch PhysNet with rPPG-Toolbox's attribute names (written for this test)."""
    nn = torch.nn

    def block(cin, cout, kernel, padding):
        return nn.Sequential(
            nn.Conv3d(cin, cout, kernel, padding=padding), nn.BatchNorm3d(cout), nn.ReLU()
        )

    def up():
        return nn.Sequential(
            nn.ConvTranspose3d(64, 64, (4, 1, 1), stride=(2, 1, 1), padding=(1, 0, 0)),
            nn.BatchNorm3d(64),
            nn.ELU(),
        )

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.ConvBlock1 = block(3, 16, (1, 5, 5), (0, 2, 2))
            self.ConvBlock2 = block(16, 32, 3, 1)
            self.ConvBlock3 = block(32, 64, 3, 1)
            for i in range(4, 10):
                setattr(self, f"ConvBlock{i}", block(64, 64, 3, 1))
            self.upsample, self.upsample2 = up(), up()
            self.ConvBlock10 = nn.Conv3d(64, 1, 1)

        def forward(self, x):  # (B, 3, T, H, W)
            pool_s, pool_st = nn.MaxPool3d((1, 2, 2)), nn.MaxPool3d(2)
            x = pool_s(self.ConvBlock1(x))
            x = pool_st(self.ConvBlock3(self.ConvBlock2(x)))
            x = pool_st(self.ConvBlock5(self.ConvBlock4(x)))
            x = pool_s(self.ConvBlock7(self.ConvBlock6(x)))
            x = self.upsample2(self.upsample(self.ConvBlock9(self.ConvBlock8(x))))
            x = self.ConvBlock10(x.mean(dim=(3, 4), keepdim=True))
            return x.reshape(x.shape[0], -1)

    return Net()


def test_convert_torch_physnet_matches_torch(tmp_path, rng):
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = _torch_physnet(torch)
    with torch.no_grad():  # non-trivial running statistics
        for module in net.modules():
            if isinstance(module, torch.nn.BatchNorm3d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    net.eval()
    pth = tmp_path / "physnet.pth"
    torch.save({"state_dict": {f"module.{k}": v for k, v in net.state_dict().items()}}, pth)

    x = rng.standard_normal((2, 16, 16, 16, 3)).astype(np.float32)  # (B, T, H, W, C)
    with torch.no_grad():
        want = net(torch.from_numpy(x).permute(0, 4, 1, 2, 3)).double().numpy()

    out = checkpoints.run_convert(f"torch:{pth}", tmp_path)
    assert out == tmp_path.resolve() / "physnet_torch_physnet"
    assert checkpoints.pytree_metadata(out)["bn_epsilon"] == physnet.TORCH_BN_EPSILON
    variables = checkpoints.restore_pytree(out)
    got = jax.jit(physnet.PhysNet(bn_epsilon=physnet.TORCH_BN_EPSILON).apply)(variables, x)
    assert got.shape == want.shape == (2, 16)
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=0, atol=1e-5)
    assert np.abs(want).max() > 1e-2  # the comparison is not between two near-zero outputs

    with pytest.raises(RppgEditError) as err:
        checkpoints.convert_torch_physnet(tmp_path / "missing.pth", tmp_path / "x")
    assert "missing.pth" in _one_line(err)


# --- The shipped weights ------------------------------------------------------------------------

SHIPPED = ("physnet_pure", "physnet_rlap", "physiolatent/vae", "physiolatent/editor")


def test_shipped_weights_match_their_sha256_records():
    root = checkpoints.PACKAGE_DIR
    records = checkpoints.read_records()
    # Every weight file is recorded, and every record names a file with that sha256.
    assert sorted(records) == checkpoints._weight_files(root)
    for name, digest in records.items():
        assert checkpoints._sha256(root / name) == digest, name
    for folder in SHIPPED:
        assert any(name.startswith(folder + "/") for name in records), folder
    assert "blaze_face.onnx" in records
    # The third-party weights travel with their licences.
    mit = (root / "LICENSES" / "open-rppg-MIT.txt").read_text()
    assert "MIT License" in mit and "Permission is hereby granted" in mit
    assert "Apache License" in (root / "LICENSES" / "Apache-2.0.txt").read_text()
    assert sum((root / name).stat().st_size for name in records) < 8_000_000


def test_shipped_physnet_equals_the_conversion_of_open_rppg(tmp_path):
    for variant in checkpoints.VARIANTS:
        shipped = checkpoints.load_physnet(variant)  # the default folder: the shipped one
        converted = checkpoints.convert_open_rppg_physnet(variant, tmp_path / variant)
        assert jax.tree.structure(shipped) == jax.tree.structure(converted)
        for a, b in zip(jax.tree.leaves(shipped), jax.tree.leaves(converted), strict=True):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes()
        meta = checkpoints.pytree_metadata(checkpoints.PACKAGE_DIR / f"physnet_{variant}")
        assert meta["sha256"] == checkpoints._sha256(checkpoints.open_rppg_weight_file(variant))


@pytest.fixture
def shipped_copy(tmp_path, monkeypatch):
    """A copy of the shipped folder standing in for it (so a test may damage it)."""
    root = tmp_path / "shipped"
    shutil.copytree(
        checkpoints.PACKAGE_DIR, root, ignore=shutil.ignore_patterns("__pycache__", "*.py")
    )
    monkeypatch.setattr(checkpoints, "PACKAGE_DIR", root)
    checkpoints._verified.cache_clear()
    yield root
    checkpoints._verified.cache_clear()


def test_changed_missing_or_extra_shipped_file_is_refused(shipped_copy):
    path = shipped_copy / "physnet_rlap"
    assert "params" in checkpoints.restore_pytree(path)  # the intact copy passes
    data = next(p for p in sorted((path / "ocdbt.process_0" / "d").iterdir()))
    blob = bytearray(data.read_bytes())
    blob[len(blob) // 2] ^= 1
    data.write_bytes(bytes(blob))
    checkpoints._verified.cache_clear()
    with pytest.raises(RppgEditError) as err:
        checkpoints.restore_pytree(path)
    assert str(data) in _one_line(err) and "sha256" in _one_line(err)

    (shipped_copy / "physiolatent" / "vae" / "stray.bin").write_bytes(b"x")
    with pytest.raises(RppgEditError) as err:
        checkpoints.restore_pytree(shipped_copy / "physiolatent" / "vae")
    assert "stray.bin" in _one_line(err) and "no sha256 record" in _one_line(err)

    (shipped_copy / "blaze_face.onnx").write_bytes(b"not a model")
    with pytest.raises(RppgEditError) as err:
        checkpoints.shipped_file("blaze_face.onnx")
    assert "blaze_face.onnx" in _one_line(err)
    (shipped_copy / "blaze_face.onnx").unlink()
    with pytest.raises(RppgEditError) as err:
        checkpoints.shipped_file("blaze_face.onnx")
    assert "missing" in _one_line(err)


def test_write_records_rerecords_changed_weights(shipped_copy):
    (shipped_copy / "physnet_pure" / "commit_success.txt").write_text("changed on purpose")
    with pytest.raises(RppgEditError):
        checkpoints.restore_pytree(shipped_copy / "physnet_pure")
    checkpoints.write_records(shipped_copy)
    records = checkpoints.read_records(shipped_copy)
    changed = shipped_copy / "physnet_pure" / "commit_success.txt"
    assert records["physnet_pure/commit_success.txt"] == checkpoints._sha256(changed)
    assert "params" in checkpoints.restore_pytree(shipped_copy / "physnet_pure")


def test_checkpoints_elsewhere_are_not_checked(tmp_path):
    out = checkpoints.save_pytree(tmp_path / "mine", {"x": np.zeros(3, np.float32)})
    (out / "extra.txt").write_text("not recorded anywhere")
    assert np.asarray(checkpoints.restore_pytree(out)["x"]).tolist() == [0.0, 0.0, 0.0]


def test_convert_without_a_folder_writes_to_the_cache_not_the_package(tmp_path, monkeypatch):
    monkeypatch.delenv("RPPGEDIT_CHECKPOINTS", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    before = checkpoints._sha256(checkpoints.PACKAGE_DIR / "physnet_rlap" / "_CHECKPOINT_METADATA")
    out = checkpoints.run_convert("open_rppg:rlap", None)
    assert out == (tmp_path / "cache" / "rppgedit" / "checkpoints" / "physnet_rlap").resolve()
    after = checkpoints._sha256(checkpoints.PACKAGE_DIR / "physnet_rlap" / "_CHECKPOINT_METADATA")
    assert before == after
