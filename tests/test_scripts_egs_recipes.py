"""The egs/ recipes' data stages (run.sh --stage 0 [--stop-stage 1]) on miniature corpora.

The recipes run from a copy of egs/ in tmp (their data/, exp/ and fbank/ are relative to the recipe),
whose path.sh, utils and steps point at this checkout; the corpora are the builders' miniatures.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import kaldiio
import pytest
import torch
from recipe_corpora import (
    build_aidatatang,
    build_librispeech,
    build_magicdata,
    build_vctk,
    build_voxceleb1,
    build_voxceleb2,
    ffmpeg_exe,
)

from spkid.kaldi.tables import read_text_table
from spkid.kaldi.validate import validate_data_dir

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ["voxceleb/v1", "voxceleb/v2", "voxceleb/v3", "librispeech/v1", "mandarin/v1", "vctk/v1"]


@pytest.fixture
def egs(tmp_path) -> Path:
    """tmp/egs: a copy of the recipes, with tmp/{path.sh,utils,steps,sid} pointing into the checkout."""
    for name in ("path.sh", "utils", "steps", "sid"):
        os.symlink(ROOT / name, tmp_path / name)
    for corpus in ("voxceleb", "librispeech", "mandarin", "vctk"):
        shutil.copytree(ROOT / "egs" / corpus, tmp_path / "egs" / corpus, symlinks=True)
    return tmp_path / "egs"


def recipe(run, egs: Path, name: str, *args: str, check: bool = True):
    env_path = os.environ.get("PATH", "")
    ffmpeg = ffmpeg_exe()
    if ffmpeg and not shutil.which("ffmpeg"):  # VoxCeleb2's wav.scp pipes run ffmpeg
        env_path = str(Path(ffmpeg).parent) + os.pathsep + env_path
    return run(["bash", "-c", 'PATH="$1"; shift; exec "$@"', "-", env_path, "./run.sh", *args],
               cwd=egs / name, check=check)


def validated(path: Path, feats: bool = False) -> dict[str, str]:
    validate_data_dir(path, no_feats=not feats, no_text=True)
    return read_text_table(path / "utt2spk")


def trials(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()]


def test_recipe_layout_and_configs():
    from spkid.train.config import resolve_config

    for name in RECIPES:
        d = ROOT / "egs" / name
        assert os.access(d / "run.sh", os.X_OK) and (d / "README.md").is_file(), name
        for link in ("path.sh", "utils", "steps", "sid/num_gpus.sh", "cmd.sh", "conf/fbank.conf", "conf/vad.conf"):
            assert (d / link).exists(), f"{name}/{link}"
        assert os.readlink(d / "path.sh") == "../../../path.sh" and os.readlink(d / "sid") == "../../../sid"
        # local/ holds corpus-specific scripts only: no recipe borrows another corpus's local/
        local = d / "local"
        assert not local.exists() or name.startswith("voxceleb/") and "prepare_voxceleb.sh" in os.listdir(local), name
        mel = [line.split("=")[1] for line in (d / "conf/fbank.conf").read_text().split() if "num-mel-bins" in line]
        for yaml in sorted((d / "conf").glob("*.yaml")):
            config = resolve_config(str(yaml))
            assert config["features"]["num_mel_bins"] == int(mel[0]), yaml
            assert config["task"] == ("ge2e" if "ge2e" in yaml.name else "triplet" if "triplet" in yaml.name
                                      else "classification"), yaml
    assert "cd \"$(dirname \"$0\")/v1\" && exec ./run.sh \"$@\"" in (ROOT / "egs/voxceleb/run.sh").read_text()


def test_voxceleb_v1_data_stages(shared_data, tmp_path, egs, run):
    if ffmpeg_exe() is None:
        pytest.skip("no ffmpeg for VoxCeleb2's .m4a (apt-get install ffmpeg, or pip install imageio-ffmpeg)")
    vox1, vox2 = build_voxceleb1(shared_data, tmp_path), build_voxceleb2(shared_data, tmp_path)
    args = ["--voxceleb1-root", str(vox1), "--voxceleb2-root", str(vox2), "--nj", "1"]
    # the entry point egs/voxceleb/run.sh passes options on to v1; no trial lists -> a clear error
    (tmp_path / "nolists").mkdir()
    proc = recipe(run, egs, "voxceleb", *args, "--trials-dir", str(tmp_path / "nolists"), "--stop-stage", "0",
                  check=False)
    assert proc.returncode != 0 and f"no trial list {tmp_path}/nolists/veri_test2.txt" in proc.stderr.decode()
    proc = recipe(run, egs, "voxceleb", *args, "--stage", "0", "--stop-stage", "1")
    assert "already prepared" in proc.stderr.decode()  # the failed run's data dirs were complete
    data = egs / "voxceleb/v1/data"
    train = validated(data / "voxceleb2_dev", feats=True)
    evals = validated(data / "voxceleb1", feats=True)
    assert len(train) == 6 and set(train.values()) == {"voxceleb2_id00012", "voxceleb2_id00015", "voxceleb2_id00016"}
    assert len(evals) == 12 and (data / "voxceleb1/vad.scp").is_file()
    for utt, feats in kaldiio.load_scp_sequential(str(data / "voxceleb2_dev/feats.scp")):
        assert feats.shape[1] == 40 and feats.shape[0] > 50, utt
    for name, source in (("vox1_o", "veri_test2.txt"), ("vox1_e", "list_test_all2.txt"),
                         ("vox1_h", "list_test_hard2.txt")):
        rows = trials(data / f"voxceleb1/trials_{name}")
        assert len(rows) == len((vox1 / source).read_text().splitlines())
        assert all(a in evals and b in evals and (evals[a] == evals[b]) == (t == "target") for a, b, t in rows)
    # --shards true: VoxCeleb2 dev as shards for training (every utterance), VoxCeleb1 features as before
    recipe(run, egs, "voxceleb/v1", *args, "--stage", "1", "--stop-stage", "1", "--shards", "true",
           "--shard-size", "4")
    shards = json.loads((data / "voxceleb2_dev_shards/shards.json").read_text())
    assert shards["num_utterances"] == 6 and shards["num_shards"] == 2 and shards["num_speakers"] == 3
    assert (data / "voxceleb2_dev_shards/utt2spk").read_text() == (data / "voxceleb2_dev/utt2spk").read_text()
    # re-running the data stage changes nothing (the features stay)
    before = {p.name: p.read_bytes() for p in (data / "voxceleb1").iterdir() if p.is_file()}
    recipe(run, egs, "voxceleb/v1", *args, "--stage", "0", "--stop-stage", "0")
    assert {p.name: p.read_bytes() for p in (data / "voxceleb1").iterdir() if p.is_file()} == before


def test_librispeech_v1_data_stage(shared_data, tmp_path, egs, run):
    libri, vox1 = build_librispeech(shared_data, tmp_path), build_voxceleb1(shared_data, tmp_path)
    recipe(run, egs, "librispeech/v1", "--librispeech-root", str(libri), "--voxceleb1-root", str(vox1),
           "--nj", "1", "--stop-stage", "0")
    data = egs / "librispeech/v1/data"
    train = validated(data / "train")
    assert {s.split("_")[0] for s in train.values()} == {"librispeech", "voxceleb1"} and len(train) == 6 + 12
    test = validated(data / "librispeech_test_clean")
    rows = trials(data / "librispeech_test_clean/trials")
    assert {t for _, _, t in rows} == {"target", "nontarget"} and len(rows) == 6  # every pair of 4 utterances
    assert all((test[a] == test[b]) == (t == "target") for a, b, t in rows)


def test_mandarin_v1_data_stage(shared_data, tmp_path, egs, run):
    aidatatang, magic = build_aidatatang(shared_data, tmp_path / "a"), build_magicdata(shared_data, tmp_path / "m")
    args = ["--aidatatang-root", str(aidatatang), "--magicdata-root", str(magic), "--nj", "1"]
    recipe(run, egs, "mandarin/v1", *args, "--stop-stage", "0")
    data = egs / "mandarin/v1/data"
    train = validated(data / "train")
    assert len(train) == 8 and {s.split("_")[0] for s in train.values()} == {"aidatatang", "magicdata"}
    for name in ("magicdata_test", "aidatatang_200zh_test"):
        test = validated(data / name)
        rows = trials(data / name / "trials")
        assert len(test) == 4 and len(rows) == 6 and sum(t == "target" for _, _, t in rows) == 2
        assert all((test[a] == test[b]) == (t == "target") for a, b, t in rows)
    # training continues from --init-model, which must exist
    proc = recipe(run, egs, "mandarin/v1", *args, "--stage", "2", "--init-model", str(tmp_path / "none"),
                  check=False)
    assert proc.returncode != 0 and f"no model {tmp_path}/none to start from" in proc.stderr.decode()


def test_vctk_v1_data_stage(shared_data, tmp_path, egs, run):
    build_vctk(shared_data, tmp_path, "0.92")
    recipe(run, egs, "vctk/v1", "--vctk-root", str(tmp_path), "--num-test-speakers", "2", "--mic", "mic1",
           "--stop-stage", "0")
    data = egs / "vctk/v1/data"
    test = validated(data / "vctk_test")
    assert set(test.values()) == {"vctk_p227", "vctk_p228"}
    train = validated(data / "vctk_train")
    assert set(train.values()) == {"vctk_p225", "vctk_p226"} and "vctk_p225-003_mic1" in train
    rows = trials(data / "vctk_test/trials")
    assert len(rows) == 15 and all((test[a] == test[b]) == (t == "target") for a, b, t in rows)


def test_voxceleb_v3_all_stages_tiny(shared_data, tmp_path, egs, run):
    """v3 end to end on the miniatures with a tiny ResNet34 and a few steps: training, large-margin fine-tuning
    from it (its head too), checkpoint averaging, embeddings, cosine and AS-norm results on Vox1-O/E/H."""
    if ffmpeg_exe() is None:
        pytest.skip("no ffmpeg for VoxCeleb2's .m4a (apt-get install ffmpeg, or pip install imageio-ffmpeg)")
    vox1, vox2 = build_voxceleb1(shared_data, tmp_path), build_voxceleb2(shared_data, tmp_path)
    opts = ("--opts model.args.base_channels 2 model.args.embed_dim 16 train.max_steps 2 train.checkpoint_every 1 "
            "classification.batch_size 4 data.crop_frames 40 data.num_workers 0 train.amp false")
    recipe(run, egs, "voxceleb/v3", "--voxceleb1-root", str(vox1), "--voxceleb2-root", str(vox2), "--nj", "1",
           "--nproc", "0", "--models", "resnet34", "--avg-num", "2", "--train-opts", opts)
    exp = egs / "voxceleb/v3/exp"
    avg = torch.load(exp / "resnet34_lm/avg_model.pt", weights_only=True)
    assert avg["averaged_steps"] == [1, 2] and avg["model"]["config"]["feat_dim"] == 80
    assert "initialised weights and head from" in (exp / "resnet34_lm/train.log").read_text()
    results = (exp / "resnet34_lm/scores/results").read_text().splitlines()
    assert [line.split()[:2] for line in results] == [[t, b] for t in ("trials_vox1_o", "trials_vox1_e",
                                                                     "trials_vox1_h") for b in ("cosine", "asnorm")]
    assert all("EER" in line and "minDCF(0.05)" in line for line in results)
