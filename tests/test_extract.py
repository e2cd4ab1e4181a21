"""extract-embeddings on CPU: worker processes that embed chunks give the same results, in input order,
with the same failures, as embedding in the main process."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import soundfile as sf
from conftest import flac_files

import spkid.extract as extract
from spkid.errors import FailureLog
from spkid.extract import iter_embeddings, load_embedder, utterances_from_scp, write_embeddings
from spkid.kaldi.io import read_dict
from spkid.models.windows import embed_frames


@pytest.fixture(scope="module")
def embedder(tmp_path_factory):
    pytest.importorskip("resemblyzer")
    from spkid.bin.import_resemblyzer import import_resemblyzer

    exp = tmp_path_factory.mktemp("ge2e")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import_resemblyzer(exp)
    return load_embedder(str(exp), "cpu")


@pytest.fixture
def wav_scp(shared_data, tmp_path):
    files = flac_files(shared_data, "arabic_speech_commands", n_spk=2, n_utt=4)
    files += flac_files(shared_data, "librispeech_test_other", n_spk=1, n_utt=2)
    sf.write(tmp_path / "silence.wav", np.zeros(16000, np.int16), 16000, subtype="PCM_16")
    lines = [f"{u} {p}" for _, u, p in files] + ["zz_missing /nonexistent.flac", f"zz_silent {tmp_path}/silence.wav"]
    path = tmp_path / "wav.scp"
    path.write_text("".join(f"{ln}\n" for ln in sorted(lines, key=str.encode)))
    return path


def test_workers_equal_main_process(embedder, wav_scp, monkeypatch):
    utts, problems = utterances_from_scp(str(wav_scp))
    assert not problems
    monkeypatch.setattr(extract, "CPU_CHUNK", 3)  # several chunks, one of them partly failed
    inline = list(iter_embeddings(utts, embedder, num_workers=0))
    workers = list(iter_embeddings(utts, embedder, num_workers=2))
    assert [u.utt for u, _, _ in workers] == [u.utt for u in utts] == [u.utt for u, _, _ in inline]
    failed = {u.utt: err for u, emb, err in workers if err is not None}
    assert set(failed) == {"zz_missing", "zz_silent"}
    assert "does not exist" in failed["zz_missing"] and "no voiced audio" in failed["zz_silent"]
    for (_, a, ea), (_, b, eb) in zip(inline, workers):
        assert ea == eb
        if a is not None:
            np.testing.assert_allclose(a, b, atol=1e-6)
            assert abs(np.linalg.norm(b) - 1) < 1e-5
    feats = [embedder.features(*sf.read(u.audio.entry, dtype="float32")) for u, _, e in inline if e is None]
    np.testing.assert_allclose(np.stack([a for _, a, e in inline if e is None]),
                               embed_frames(embedder.model, feats, embedder.extraction), atol=1e-6)


def test_write_embeddings_with_workers(embedder, wav_scp, tmp_path):
    utts, _ = utterances_from_scp(str(wav_scp))
    out = {}
    for workers in (0, 2):
        log = FailureLog()
        written = write_embeddings(utts, embedder, f"ark,scp:{tmp_path}/e{workers}.ark,{tmp_path}/e{workers}.scp",
                                   str(tmp_path / f"npy{workers}"), log, num_workers=workers)
        assert written == len(utts) - 2 and [u for u, _ in log.failures] == ["zz_missing", "zz_silent"]
        out[workers] = read_dict(f"scp:{tmp_path}/e{workers}.scp")
    assert list(out[0]) == list(out[2])
    for utt in out[0]:
        np.testing.assert_allclose(out[0][utt], out[2][utt], atol=1e-6)
        np.testing.assert_allclose(np.load(tmp_path / "npy2" / f"{utt}.npy"), out[2][utt])


def bfloat16_runs_here(model) -> bool:
    """Whether this CPU runs the model's layers under bfloat16 autocast (oneDNN: no bf16 LSTM on AVX2-only)."""
    import torch

    try:
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            model(torch.zeros(1, 160, 40))
    except RuntimeError:
        return False
    return True


def test_bfloat16_precision_agrees_with_float32(embedder, wav_scp, tmp_path, run, caplog):
    """--precision bfloat16 (autocast) gives embeddings close to float32 ones, through workers too (seen: cosine
    0.9999 on LibriSpeech utterances, 0.995 on 1 s clips; bfloat16 keeps 8 bits of mantissa). On a CPU where
    bfloat16 has no kernel for the model's layers it falls back to float32 with a warning; where it is only
    emulated (no AVX512-BF16/AMX) a warning says so. Checks whichever this CPU is."""
    from spkid.devices import cpu_has_bfloat16
    from spkid.errors import SpkidError

    utts, _ = utterances_from_scp(str(wav_scp))
    fp32 = {u.utt: e for u, e, err in iter_embeddings(utts, embedder, num_workers=0) if err is None}
    with caplog.at_level("WARNING", logger="spkid.inference"):
        half = load_embedder(embedder.checkpoint, "cpu", "bfloat16")
    runs = bfloat16_runs_here(embedder.model)
    warnings_ = [r.getMessage() for r in caplog.records if r.name == "spkid.inference"]
    assert half.precision == ("bfloat16" if runs else "float32")
    if not runs:
        assert len(warnings_) == 1 and "using float32" in warnings_[0]
    elif cpu_has_bfloat16() is False:
        assert len(warnings_) == 1 and "emulated" in warnings_[0]
    else:
        assert not warnings_
    bf16 = {u.utt: e for u, e, err in iter_embeddings(utts, half, num_workers=2) if err is None}
    assert list(fp32) == list(bf16) and len(fp32) == len(utts) - 2
    cosines = [float(np.dot(fp32[u], bf16[u])) for u in fp32]
    assert min(cosines) > 0.99
    assert (max(abs(c - 1) for c in cosines) > 1e-5) == runs  # really ran in bfloat16 where it can
    with pytest.raises(SpkidError, match="precision must be one of"):
        load_embedder(embedder.checkpoint, "cpu", "float16")
    run(["spkid", "extract-embeddings", "--model", embedder.checkpoint, "--scp", str(wav_scp), "--precision",
         "bfloat16", "--output", f"ark,t:{tmp_path}/bf16.txt"], check=False)
    written = read_dict(f"ark:{tmp_path}/bf16.txt")
    assert set(written) == set(fp32)
    assert min(float(np.dot(written[u], fp32[u])) for u in fp32) > 0.99


def test_bfloat16_without_a_kernel_falls_back_to_float32(embedder, wav_scp, monkeypatch, caplog):
    """Simulated AVX2-only CPU: oneDNN cannot build a bfloat16 LSTM (the error seen in data loader workers);
    `precision bfloat16` is probed once at load, warns in one line and extracts in float32, workers included."""
    import torch

    real = torch.nn.LSTM.forward

    def no_bf16_kernel(self, *args, **kwargs):
        if torch.is_autocast_enabled("cpu"):
            raise RuntimeError("could not create a primitive descriptor for the LSTM forward propagation primitive")
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.nn.LSTM, "forward", no_bf16_kernel)
    with caplog.at_level("WARNING", logger="spkid.inference"):
        half = load_embedder(embedder.checkpoint, "cpu", "bfloat16")
    messages = [r.getMessage() for r in caplog.records if r.name == "spkid.inference"]
    assert half.precision == "float32"
    assert len(messages) == 1 and "bfloat16 cannot run this model" in messages[0] and "primitive" in messages[0]
    utts, _ = utterances_from_scp(str(wav_scp))
    fp32 = [(u.utt, e) for u, e, err in iter_embeddings(utts, embedder, num_workers=0) if err is None]
    got = [(u.utt, e) for u, e, err in iter_embeddings(utts, half, num_workers=2) if err is None]
    assert [u for u, _ in got] == [u for u, _ in fp32] and len(got) == len(utts) - 2
    np.testing.assert_allclose(np.stack([e for _, e in got]), np.stack([e for _, e in fp32]), atol=1e-6)
