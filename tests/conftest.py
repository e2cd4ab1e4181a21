"""Shared fixtures: the real speech in ../shared/data and a way to run `spkid` commands."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from spkid.kaldi.tables import c_sorted

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("SPKID_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data: <dataset>/<speaker>/<utt>.flac (40 speakers). Required, never copied."""
    if not SHARED_DATA.is_dir():
        pytest.fail(f"real speech not found at {SHARED_DATA} (set SPKID_SHARED_DATA)")
    return SHARED_DATA


def test_seed() -> int:
    """$SPKID_TEST_SEED (default 0): the seed learning tests (`-m learning`) train with (`train.seed`, or
    torch's), so another value gives another draw of batches and initial weights; their bounds hold over
    the seeds and thread counts their docstrings name."""
    return int(os.environ.get("SPKID_TEST_SEED", "0"))


test_seed.__test__ = False  # a helper, not a test pytest should collect


def spkid_env() -> dict:
    """Environment for subprocesses: the venv's bin, utils/ and steps/ first on PATH."""
    env = dict(os.environ)
    bindir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([bindir, str(ROOT / "utils"), str(ROOT / "steps"), env.get("PATH", "")])
    env["LC_ALL"] = "C"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def run_cmd(args, cwd=None, input=None, check=True, **kw) -> subprocess.CompletedProcess:
    """Run a command (list or shell string) with spkid on PATH; return the completed process."""
    shell = isinstance(args, str)
    proc = subprocess.run(args, shell=shell, cwd=cwd, input=input, capture_output=True, env=spkid_env(),
                          executable="/bin/bash" if shell else None, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"command failed ({proc.returncode}): {args}\nstdout: {proc.stdout[-3000:]!r}\n"
                             f"stderr: {proc.stderr[-3000:]!r}")
    return proc


@pytest.fixture
def run():
    return run_cmd


def flac_files(root: Path, dataset: str, n_spk: int = 2, n_utt: int = 2) -> list[tuple[str, str, Path]]:
    """(speaker, utt-id, path) for the first n_utt files of the first n_spk speakers of a dataset."""
    out = []
    for spk_dir in sorted(d for d in (root / dataset).iterdir() if d.is_dir())[:n_spk]:
        for f in sorted(spk_dir.glob("*.flac"))[:n_utt]:
            utt = f.stem if f.stem.startswith(spk_dir.name) else f"{spk_dir.name}-{f.stem}"
            out.append((spk_dir.name, utt, f))
    return out


def speaker_split_dirs(root: Path, shared_data: Path, fbank_args: list[str], vad: bool = False) -> Path:
    """ROOT/train: 7 utterances of each of 14 speakers (LibriSpeech + VCTK); ROOT/valid: their other 3, with
    all-pairs trials; fbank (+ VAD) from `spkid compute-fbank FBANK_ARGS --dither=0`."""
    files = flac_files(shared_data, "librispeech_test_other", 10, 10) + flac_files(shared_data, "vctk_mini", 4, 10)
    by_spk: dict[str, list] = {}
    for s, u, p in files:
        by_spk.setdefault(s, []).append((s, u, str(p)))
    train = [x for v in by_spk.values() for x in v[:7]]
    valid = [x for v in by_spk.values() for x in v[7:]]
    _write_featured_dirs(root, train, valid, fbank_args, vad)
    return root


def open_set_dirs(root: Path, shared_data: Path, fbank_args: list[str], vad: bool = False) -> Path:
    """ROOT/train: 94 speakers (the 34 of LibriSpeech, VCTK and the Arabic commands, 10 utterances each, and 60
    of speechocean762, 8 each); ROOT/valid: 5 utterances of each of 20 other speechocean762 speakers (adults
    and children, one corpus: no easy cross-corpus pairs), all-pairs trials (200 target / 4950); fbank (+ VAD)
    as speaker_split_dirs computes them."""
    train = [(s, u, str(p)) for dataset, n in (("librispeech_test_other", 10), ("vctk_mini", 4),
                                               ("arabic_speech_commands", 20))
             for s, u, p in flac_files(shared_data, dataset, n, 10)]
    ocean: dict[str, list] = {}
    for s, u, p in flac_files(shared_data.parent, "speechocean762", 80, 8):
        ocean.setdefault(s, []).append((s, u, str(p)))
    speakers = sorted(ocean)
    train += [x for s in speakers[:60] for x in ocean[s]]
    valid = [x for s in speakers[60:] for x in ocean[s][:5]]
    _write_featured_dirs(root, train, valid, fbank_args, vad)
    return root


def _write_featured_dirs(root: Path, train: list, valid: list, fbank_args: list[str], vad: bool) -> None:
    """ROOT/train and ROOT/valid from (speaker, utt, path) triples, with features and all-pairs valid trials."""
    import itertools

    valid = sorted(valid, key=lambda x: x[1].encode())
    with open(write_data_dir(root / "valid", valid) / "trials", "w") as f:
        for a, b in itertools.combinations(valid, 2):
            f.write(f"{a[1]} {b[1]} {'target' if a[0] == b[0] else 'nontarget'}\n")
    commands = [("feats", ["compute-fbank", *fbank_args])] + ([("vad", ["compute-vad"])] if vad else [])
    for d in (write_data_dir(root / "train", train), root / "valid"):
        for name, cmd in commands:
            subprocess.run(["spkid", *cmd, "--dither=0", "--data", str(d), f"ark,scp:{d}/{name}.ark,{d}/{name}.scp"],
                           check=True, env=spkid_env(), capture_output=True)


def write_data_dir(path: Path, entries: list[tuple[str, str, str]]) -> Path:
    """A Kaldi data dir from (speaker, utt, wav.scp value) triples, sorted LC_ALL=C."""
    path.mkdir(parents=True, exist_ok=True)
    entries = sorted(entries, key=lambda e: e[1].encode())
    (path / "wav.scp").write_text("".join(f"{u} {v}\n" for _, u, v in entries))
    (path / "utt2spk").write_text("".join(f"{u} {s}\n" for s, u, _ in entries))
    spk2utt: dict[str, list[str]] = {}
    for s, u, _ in entries:
        spk2utt.setdefault(s, []).append(u)
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    return path


def shard_data_dir(tmp_path: Path, shared_data: Path, bad: bool = False) -> Path:
    """vctk_mini (4 speakers x 10) + 6 LibriSpeech speakers x 3: 58 utterances (+ 2 bad ones)."""
    d = tmp_path / "data"
    d.mkdir()
    files = flac_files(shared_data, "vctk_mini", 4, 10) + flac_files(shared_data, "librispeech_test_other", 6, 3)
    rows = [(utt, str(path), spk) for spk, utt, path in files]
    if bad:
        rows.append(("zz-missing", str(tmp_path / "missing.flac"), "zz"))
        rows.append(("zz-broken", f"{tmp_path}/not-audio.flac", "zz"))
        (tmp_path / "not-audio.flac").write_text("not audio")
    rows.sort()
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p, _ in rows))
    (d / "utt2spk").write_text("".join(f"{u} {s}\n" for u, _, s in rows))
    return d


REAL_DIR_DATASETS = ("vctk_mini", "librispeech_test_other")  # 4 + 10 speakers, 10 utterances each


def make_real_dir(path: Path, shared_data: Path, datasets=REAL_DIR_DATASETS, per_spk: int | None = None) -> Path:
    """A data dir of real flac files: utterance ids `<speaker>-<file stem>`, sorted LC_ALL=C."""
    rows = []
    for dataset in datasets:
        for spk_dir in sorted(p for p in (shared_data / dataset).iterdir() if p.is_dir()):
            for flac in sorted(spk_dir.glob("*.flac"))[:per_spk]:
                rows.append((f"{spk_dir.name}-{flac.stem}", spk_dir.name, str(flac)))
    return write_dir(path, {u: s for u, s, _ in rows}, {u: w for u, _, w in rows})


def write_dir(path: Path, utt2spk: dict[str, str], wav: dict[str, str] | None = None, **tables) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    keys = c_sorted(utt2spk)
    (path / "utt2spk").write_text("".join(f"{u} {utt2spk[u]}\n" for u in keys))
    spk2utt: dict[str, list[str]] = {}
    for u in keys:
        spk2utt.setdefault(utt2spk[u], []).append(u)
    (path / "spk2utt").write_text("".join(f"{s} {' '.join(spk2utt[s])}\n" for s in c_sorted(spk2utt)))
    if wav is not None:
        (path / "wav.scp").write_text("".join(f"{k} {wav[k]}\n" for k in c_sorted(wav)))
    for name, table in tables.items():
        (path / name.replace("_scp", ".scp")).write_text("".join(f"{k} {table[k]}\n" for k in c_sorted(table)))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """One intra-op torch thread for a module: with `pytest -n 2` on 2 cores, more oversubscribe and crawl."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


TINY_FEATURES = {"type": "kaldi-fbank", "num_mel_bins": 24, "dither": 0.0, "sample_frequency": 16000.0,
                 "cmn": False, "vad": None}


def tiny_ge2e_checkpoint(folder: Path) -> Path:
    """A small untrained GE2E checkpoint (24 mel bins, 40-frame windows): enough to run extraction quickly."""
    import torch

    from spkid.models import build_model
    from spkid.train.checkpoint import save_checkpoint

    config = {"input_dim": 24, "hidden_size": 16, "num_layers": 1, "embedding_dim": 8}
    torch.manual_seed(0)
    model = build_model("ge2e", config)
    return save_checkpoint(folder / "tiny.pt", model_name="ge2e", model_config=config,
                           feature_config=TINY_FEATURES, state_dict=model.state_dict(),
                           extra={"extraction": {"window_frames": 40}})


def tiny_checkpoint(path, seed: int = 1):
    """A random 8-dim GE2E checkpoint (40-bin fbank, no dither) at `path`: a model in a second."""
    import torch

    from spkid.models import build_model
    from spkid.train.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    model = build_model("ge2e", {"input_dim": 40, "hidden_size": 8, "num_layers": 1, "embedding_dim": 8})
    return save_checkpoint(path, model_name="ge2e", model_config=model.to_config(),
                           feature_config={"type": "kaldi-fbank", "num_mel_bins": 40, "dither": 0.0},
                           state_dict=model.state_dict())


@pytest.fixture(scope="module")
def pretrained_cache(tmp_path_factory):
    """An empty SPKID_CACHE for the module (pretrained names are imported there on first use), holding a link
    to the CAM++ weights `make pretrained` cached, when they are there."""
    from spkid.pretrained import cached_path

    weights = cached_path("campplus-zh-en")  # the user's cache, before SPKID_CACHE is changed
    path = tmp_path_factory.mktemp("cache")
    if weights.is_file():
        (path / weights.name).symlink_to(weights)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SPKID_CACHE", str(path))
        yield path
