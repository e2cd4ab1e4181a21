"""`spkid prepare` on broken corpora (one-line errors naming the file), re-runs, interrupted writes; data2cuts."""
from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from click.testing import CliRunner
from recipe_corpora import (
    build_aidatatang,
    build_librispeech,
    build_magicdata,
    build_vctk,
    build_voxceleb1,
    cut_ids,
    error_line,
    prepare,
)

from spkid.cli import main as spkid_main
from spkid.kaldi.tables import read_text_table

# -- bad input, idempotence, atomicity ---------------------------------------------------------------------------

def _no_outputs(out: Path) -> None:
    leftovers = [p for p in out.rglob("*")] if out.exists() else []
    assert not [p for p in leftovers if p.is_file()], leftovers


@pytest.mark.parametrize("case", ["libri-part", "libri-flac", "vox1-meta", "vox1-line", "vox1-flat",
                                  "aidatatang-tar", "magic-trans", "vctk-info", "vctk-audio"])
def test_bad_corpus(shared_data, tmp_path, case):
    out = tmp_path / "data"
    if case.startswith("libri"):
        corpus = build_librispeech(shared_data, tmp_path)
        if case == "libri-part":
            args, expect = ["librispeech", "--parts", "train-clean-360"], \
                f"no directory {corpus}/train-clean-360 (part 'train-clean-360' is missing"
        else:
            (corpus / "test-clean/2609/156975/2609-156975-0001.flac").unlink()
            args, expect = ["librispeech"], f"no file {corpus}/test-clean/2609/156975/2609-156975-0001.flac"
    elif case.startswith("vox1"):
        corpus = build_voxceleb1(shared_data, tmp_path)
        args = ["voxceleb1"]
        meta = corpus / "vox1_meta.csv"
        if case == "vox1-meta":
            meta.unlink()
            expect = f"no file {meta} (lhotse's prepare_voxceleb expects <corpus-dir>/vox1_meta.csv"
        elif case == "vox1-line":
            meta.write_text(meta.read_text().replace("id10002\t", "id10002,"))
            expect = f"{meta}:3: expected 5 tab-separated fields"
        else:
            (corpus / "wav/id10001/1zcIwhmdeo4/00001.wav").rename(corpus / "wav/id10001/00009.wav")
            expect = f"{corpus}/wav/id10001/00009.wav is not laid out as <speaker>/<video>/<utt>"
    elif case == "aidatatang-tar":
        corpus = build_aidatatang(shared_data, tmp_path, unpacked=False)
        args = ["aidatatang_200zh"]
        expect = f"the archives in {corpus}/aidatatang_200zh/corpus/train (G0002.tar.gz ...) are not unpacked"
    elif case == "magic-trans":
        corpus = build_magicdata(shared_data, tmp_path)
        (corpus / "dev" / "TRANS.txt").unlink()
        args, expect = ["magicdata"], f"no file {corpus}/dev/TRANS.txt (lhotse's prepare_magicdata expects"
    else:
        corpus = build_vctk(shared_data, tmp_path)
        args = ["vctk"]
        if case == "vctk-info":
            (corpus / "speaker-info.txt").unlink()
            expect = f"no file {corpus}/speaker-info.txt"
        else:
            (corpus / "wav48_silence_trimmed/p227/p227_008_mic2.flac").unlink()
            expect = f"no file {corpus}/wav48_silence_trimmed/p227/p227_008_mic2.flac"
    result = prepare(*args, "--corpus-dir", str(corpus), "--output-dir", str(out), ok=False)
    assert expect in error_line(result)
    _no_outputs(out)


def test_error_exit_and_message_from_the_shell(run, tmp_path):
    proc = run(["spkid", "prepare", "magicdata", "--corpus-dir", str(tmp_path / "nowhere"), "--output-dir",
                str(tmp_path / "data")], check=False)
    lines = proc.stderr.decode().strip().splitlines()
    assert proc.returncode == 1 and lines[-1].startswith("Error: magicdata: no directory"), proc.stderr
    assert "Traceback" not in proc.stderr.decode()


def _snapshot(out: Path) -> dict[str, tuple[int, bytes]]:
    snap = {}
    for p in sorted(out.rglob("*")):
        if p.is_file():
            data = gzip.decompress(p.read_bytes()) if p.suffix == ".gz" else p.read_bytes()
            snap[str(p.relative_to(out))] = (p.stat().st_mtime_ns, data)
    return snap


def test_rerun_is_idempotent(shared_data, tmp_path):
    corpus = build_vctk(shared_data, tmp_path, "0.80")
    out = tmp_path / "data"
    prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out))
    first = _snapshot(out)
    result = prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out))
    assert "already prepared" in result.output and _snapshot(out) == first
    prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out), "--force")
    again = _snapshot(out)
    assert sorted(again) == sorted(first)
    assert all(again[k][1] == first[k][1] for k in first)  # same content, rewritten
    assert any(again[k][0] != first[k][0] for k in first)


def test_interrupted_write_leaves_no_manifest(shared_data, tmp_path, monkeypatch):
    from lhotse import CutSet

    corpus = build_vctk(shared_data, tmp_path, "0.80")
    out = tmp_path / "data"

    def broken(self, path):
        Path(path).write_text('{"id": "half')
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(CutSet, "to_file", broken)
    result = prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out), ok=False)
    assert result.exit_code == 1 and "No space left on device" in result.output  # one line, no traceback
    assert "Traceback" not in result.output and result.output.count("Error") == 1
    files = sorted(p.name for p in out.rglob("*") if p.is_file())
    assert not [f for f in files if "cuts" in f or f.startswith(".tmp")], files
    assert not (out / "vctk").exists()
    monkeypatch.undo()
    prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out))  # the re-run completes it
    assert cut_ids(out / "manifests" / "vctk_cuts_all.jsonl.gz") == list(read_text_table(out / "vctk" / "utt2spk"))


def test_data2cuts(shared_data, tmp_path):
    from lhotse import CutSet

    corpus = build_vctk(shared_data, tmp_path, "0.80")
    out = tmp_path / "data"
    prepare("vctk", "--corpus-dir", str(corpus), "--output-dir", str(out))
    data = out / "vctk"
    # a segmented copy: two utterances cut from one recording
    seg = tmp_path / "seg"
    seg.mkdir()
    reco = "vctk_p225-003"
    (seg / "wav.scp").write_text(f"{reco} {read_text_table(data / 'wav.scp')[reco]}\n")
    (seg / "segments").write_text(f"{reco}-a {reco} 0.00 0.80\n{reco}-b {reco} 0.80 1.90\n")
    (seg / "utt2spk").write_text(f"{reco}-a vctk_p225\n{reco}-b vctk_p225\n")
    (seg / "spk2utt").write_text(f"vctk_p225 {reco}-a {reco}-b\n")
    runner = CliRunner()
    for src, dest in ((data, tmp_path / "cuts.jsonl.gz"), (seg, tmp_path / "seg_cuts.jsonl.gz")):
        result = runner.invoke(spkid_main, ["data2cuts", str(src), str(dest)])
        assert result.exit_code == 0, result.output
        cuts = CutSet.from_file(dest)
        utt2spk = read_text_table(src / "utt2spk")
        assert [c.id for c in cuts] == list(utt2spk)
        assert [c.supervisions[0].speaker for c in cuts] == list(utt2spk.values())
    assert [round(c.duration, 2) for c in cuts] == [0.8, 1.1]
    (seg / "spk2utt").write_text(f"vctk_p225 {reco}-a\n")
    result = runner.invoke(spkid_main, ["data2cuts", str(seg), str(tmp_path / "bad.jsonl.gz")])
    assert "spk2utt and utt2spk do not match" in error_line(result)
    assert not (tmp_path / "bad.jsonl.gz").exists()
