"""spkid make-shards and the shard stream: bit-exact audio, failures, resume, exactly-once per epoch."""
from __future__ import annotations

import gzip
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import shard_data_dir as data_dir

from spkid.data.shard_stream import (
    ShardBatches,
    ShardIndex,
    batches_done_by_worker,
    make_shard_loader,
    slot_stream,
    speaker_groups,
)
from spkid.data.shards import SHAR, make_shards, read_shard_ids
from spkid.errors import SpkidError

FBANK = {"type": "kaldi-fbank", "num_mel_bins": 24, "dither": 0.0, "cmn": True}


def test_make_shards_audio_is_bit_exact_and_readable_by_lhotse(tmp_path, shared_data, run):
    from lhotse import CutSet

    d = data_dir(tmp_path, shared_data)
    run(["spkid", "make-shards", "--data", str(d), "--output", str(tmp_path / "sh"), "--shard-size", "16",
         "--nj", "2"])
    wav = dict(line.split() for line in (d / "wav.scp").read_text().splitlines())
    utt2spk = dict(line.split() for line in (d / "utt2spk").read_text().splitlines())
    seen = []
    for cut in CutSet.from_shar(in_dir=tmp_path / "sh" / SHAR):
        ref, rate = sf.read(wav[cut.id], dtype="float32")
        assert cut.sampling_rate == rate and np.array_equal(cut.load_audio()[0], ref), cut.id
        assert cut.supervisions[0].speaker == utt2spk[cut.id]
        seen.append(cut.id)
    assert sorted(seen) == sorted(wav)
    assert (tmp_path / "sh" / "utt2spk").read_text() == (d / "utt2spk").read_text()


def test_make_shards_reports_bad_audio_and_writes_the_rest(tmp_path, shared_data, run):
    d = data_dir(tmp_path, shared_data, bad=True)
    proc = run(["spkid", "make-shards", "--data", str(d), "--output", str(tmp_path / "sh"), "--shard-size", "20"],
               check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    assert "zz-missing" in err and "zz-broken" in err and "2 of 60 utterances failed" in err
    index = ShardIndex(tmp_path / "sh")
    utts = all_utts(index)
    assert len(utts) == index.num_utterances == 58 and "zz-missing" not in utts


def all_utts(index: ShardIndex) -> list[str]:
    return [u for i in range(index.num_shards) for u in index.utt_ids(i)]


def utt_of(index: ShardIndex, item) -> str:
    return index.utt_ids(item.shard)[item.pos]


def test_make_shards_resumes_keeping_complete_shards(tmp_path, shared_data):
    d, out = data_dir(tmp_path, shared_data), tmp_path / "sh"
    assert not make_shards(d, out, shard_size=16)
    first = {p.name: p.stat().st_mtime_ns for p in (out / SHAR).iterdir()}
    # as if killed while writing shard 2: its manifest was never renamed into place, a partial dir is left
    (out / SHAR / "cuts.000002.jsonl.gz").unlink()
    (out / ".partial-000002").mkdir()
    (out / ".partial-000002" / "recording.000002.tar").write_bytes(b"half")
    assert not make_shards(d, out, shard_size=16)
    after = {p.name: p.stat().st_mtime_ns for p in (out / SHAR).iterdir()}
    assert sorted(after) == sorted(first) and not (out / ".partial-000002").exists()
    kept = [n for n in first if ".000002." not in n]
    assert all(after[n] == first[n] for n in kept)  # complete shards untouched
    assert len(read_shard_ids(out / SHAR / "cuts.000002.jsonl.gz")) == 16
    with pytest.raises(SpkidError, match="another job"):
        make_shards(d, out, shard_size=10)


def test_every_utterance_read_once_per_epoch_across_slots(tmp_path, shared_data):
    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=7)  # 9 shards, unequal last one
    index = ShardIndex(out)
    for num_slots in (1, 2, 4, 9):
        for epoch in range(2):
            read = []
            for slot in range(num_slots):
                for e, item in slot_stream(index, slot, num_slots, seed=3, block=5):
                    if e > epoch:
                        break
                    if e == epoch:
                        read.append(utt_of(index, item))
            assert Counter(read) == Counter(all_utts(index)), (num_slots, epoch)
    with pytest.raises(SpkidError, match="every slot needs a shard"):
        next(slot_stream(index, 0, 10, seed=3, block=5))
    orders = [[tuple(it) for _, (_, it) in zip(range(58), slot_stream(index, 0, 1, seed=s, block=5))] for s in (1, 2)]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])


def test_speaker_groups_hold_n_speakers_by_m_utterances(tmp_path, shared_data):
    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=7)
    index = ShardIndex(out)
    groups = list(zip(range(20), speaker_groups(slot_stream(index, 0, 1, seed=0, block=16), 3, 2)))
    assert len(groups) == 20
    for _, group in groups:
        speakers = [item.speaker for item in group]
        assert len(group) == 6 and len(set(speakers)) == 3
        assert speakers == sorted(speakers, key=speakers.index) and Counter(speakers).most_common()[-1][1] == 2


def batches(dataset: ShardBatches, workers: int, count: int) -> list[dict]:
    loader = make_shard_loader(dataset, workers)
    out = [b for _, b in zip(range(count), loader)]
    del loader
    return out


def test_loader_reads_each_utterance_once_across_ranks_and_workers(tmp_path, shared_data):
    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=6)  # 10 shards, 4 slots
    index = ShardIndex(out)
    read = []
    for rank in range(2):
        ds = ShardBatches(index, FBANK, ("fixed", 1), crop_frames=50, seed=5, rank=rank, world_size=2, with_ids=True)
        # batch k comes from worker k % 2; each worker's first epoch is the utterances of its slot's shards
        sizes = [sum(len(index.shard_speakers[s]) for s in index.epoch_order(0, 5)[rank * 2 + w::4]) for w in range(2)]
        got = batches(ds, 2, 2 * max(sizes))
        assert all(b["feats"].shape == (1, 50, 24) for b in got)
        for w in range(2):
            read += [b["utts"][0] for b in got[w::2][:sizes[w]]]
    assert Counter(read) == Counter(all_utts(index))


def test_resumed_loader_continues_exactly_where_it_stopped(tmp_path, shared_data):
    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=6)
    index = ShardIndex(out)
    make = lambda start: ShardBatches(index, FBANK, ("speakers", 2, 2), crop_frames=40, seed=1, rank=1,  # noqa: E731
                                      world_size=2, start_step=start, with_ids=True)
    full = batches(make(0), 2, 9)
    resumed = batches(make(5), 2, 4)
    for a, b in zip(full[5:], resumed):
        assert a["utts"] == b["utts"] and torch.equal(a["feats"], b["feats"])
    assert batches_done_by_worker(5, 0, 2) == 3 and batches_done_by_worker(5, 1, 2) == 2


def test_shards_folder_without_summary_is_refused(tmp_path):
    (tmp_path / SHAR).mkdir()
    with gzip.open(tmp_path / SHAR / "cuts.000000.jsonl.gz", "wt"):
        pass
    with pytest.raises(SpkidError, match="shards.json"):
        ShardIndex(tmp_path)
    assert os.listdir(tmp_path) == [SHAR]


def _read_one_epoch(rank: int, world: int, folder: str, port: int, out: str) -> None:
    """One DDP rank (gloo): read this rank's first epoch through a 2-worker DataLoader; rank 0 writes all ids."""
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    index = ShardIndex(folder)
    ds = ShardBatches(index, FBANK, ("fixed", 2), crop_frames=30, seed=7, rank=dist.get_rank(),
                      world_size=dist.get_world_size(), with_ids=True)
    sizes = [sum(len(index.shard_speakers[s]) for s in index.epoch_order(0, 7)[rank * 2 + w::world * 2])
             for w in range(2)]
    got = batches(ds, 2, 2 * max(-(-n // 2) for n in sizes))
    mine = [u for w in range(2) for u in [u for b in got[w::2] for u in b["utts"]][:sizes[w]]]
    every = [None] * world
    dist.all_gather_object(every, mine)
    if rank == 0:
        Path(out).write_text(json.dumps(every))
    dist.destroy_process_group()


def test_two_gloo_ranks_read_every_utterance_once_per_epoch(tmp_path, shared_data):
    import json
    import socket

    import torch.multiprocessing as mp

    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=5)  # 12 shards for 2 ranks x 2 workers
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_read_one_epoch, args=(2, str(out), port, str(tmp_path / "ids.json")), nprocs=2, join=True)
    per_rank = json.loads((tmp_path / "ids.json").read_text())
    index = ShardIndex(out)
    assert not set(per_rank[0]) & set(per_rank[1])
    assert Counter(per_rank[0] + per_rank[1]) == Counter(all_utts(index))


def test_too_few_speakers_for_a_batch_is_one_line_not_a_hang(tmp_path, shared_data, run):
    """Bug 4 (issue 22): N x M batches need N speakers with M utterances, in the folder and in every slot."""
    from spkid.data.shard_stream import Item, ShardSource

    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=6)  # 10 shards, 10 speakers
    source = ShardSource(out, FBANK)
    kw = dict(seed=0, rank=0, world_size=1, start_step=0)
    with pytest.raises(SpkidError, match="only 10 of 10 speakers have 2 utterance.*needs 11 speakers x 2"):
        source.loader(("speakers", 11, 2), 40, num_workers=1, **kw)
    with pytest.raises(SpkidError, match="only 4 of 10 speakers have 4 utterance"):
        source.loader(("speakers", 5, 4), 40, num_workers=1, **kw)
    with pytest.raises(SpkidError, match="reading slot 0 of 10 .* reads 1 shard"):
        source.loader(("speakers", 4, 2), 40, num_workers=10, **kw)
    assert source.loader(("speakers", 4, 2), 40, num_workers=1, **kw) is not None
    # a slot whose later epochs hold too few speakers: an error after a whole epoch without a batch
    stream = ((epoch, Item(0, k, k % 2)) for epoch in range(5) for k in range(4))
    with pytest.raises(SpkidError, match="whole epoch without 3 speakers"):
        list(speaker_groups(stream, 3, 2))
    proc = run(["timeout", "120", "spkid", "train", "--data", str(out), "--output", str(tmp_path / "exp"),
                "--device", "cpu", "--opts", "task", "ge2e", "model.args.hidden_size", "16", "model.args.embed_dim",
                "8", "model.args.num_layers", "1", "data.speakers_per_batch", "11", "data.utterances_per_speaker",
                "2", "data.crop_frames", "40", "train.max_steps", "2"], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "needs 11 speakers x 2" in err and "Traceback" not in err


def _with_tiny(tmp_path: Path, shared_data: Path, utt_index: int = 3) -> tuple[Path, str]:
    """The shard data dir with one utterance replaced by a 6 ms clip (no frame)."""
    d = data_dir(tmp_path, shared_data)
    rows = [line.split(maxsplit=1) for line in (d / "wav.scp").read_text().splitlines()]
    wave, rate = sf.read(rows[utt_index][1].strip(), dtype="float32")
    sf.write(tmp_path / "tiny.wav", wave[:100], rate)
    rows[utt_index][1] = str(tmp_path / "tiny.wav")
    (d / "wav.scp").write_text("".join(f"{u} {p}\n" for u, p in rows))
    return d, rows[utt_index][0]


def test_make_shards_leaves_out_utterances_shorter_than_a_frame(tmp_path, shared_data, run):
    """Bug 6 (issue 22): a clip with no frame is left out with a warning naming it (also on a resumed run)."""
    d, tiny = _with_tiny(tmp_path, shared_data)
    out = tmp_path / "sh"
    for _ in range(2):  # the second run keeps every shard and still lists it
        proc = run(["spkid", "make-shards", "--data", str(d), "--output", str(out), "--shard-size", "20"])
        err = proc.stderr.decode()
        assert f"left out 1 utterance(s) shorter than one frame (0.025 s): {tiny}" in err, err
        assert "done 57 utterances, failed 0" in err
    index = ShardIndex(out)
    assert index.num_utterances == 57 and tiny not in all_utts(index)
    assert tiny not in (out / "utt2spk").read_text()


def test_shard_reader_skips_a_crop_with_no_frames(tmp_path, shared_data, monkeypatch):
    """Bug 6 (issue 22): shards holding an utterance with no frames (an old writer, or VAD empties it) train;
    another crop of the same speaker in the batch stands in."""
    import spkid.data.shards as shards_module

    d, tiny = _with_tiny(tmp_path, shared_data)
    monkeypatch.setattr(shards_module, "MIN_SECONDS", 0.0)  # as written before the fix
    make_shards(d, tmp_path / "sh", shard_size=20)
    index = ShardIndex(tmp_path / "sh")
    assert tiny in all_utts(index)
    for group in (("speakers", 3, 2), ("fixed", 4)):
        ds = ShardBatches(index, FBANK, group, crop_frames=30, seed=1, with_ids=True)
        got = batches(ds, 0, 30)  # more than an epoch
        assert any(tiny in b["utts"] for b in got) and ds.skipped > 0
        assert all(b["feats"].shape[0] == len(b["utts"]) and torch.isfinite(b["feats"]).all() for b in got)
    # every utterance of a speaker in the batch has no frames: nothing can stand in, one line naming it
    huge = {**FBANK, "frame_length": 100000.0}  # a 100 s window: no utterance has a frame
    ds = ShardBatches(index, huge, ("speakers", 3, 2), crop_frames=30, seed=1)
    with pytest.raises(SpkidError, match=r"utterance \S+ \(shard \d\): no frames .* nor in any other"):
        batches(ds, 0, 1)


def _rewrite_tar(path: Path, change) -> None:
    """Rewrite a shard tar: `change(list of (TarInfo, bytes))` returns the new member list."""
    import io
    import tarfile

    with tarfile.open(path) as old:
        members = [(m, old.extractfile(m).read()) for m in old.getmembers()]
    with tarfile.open(path.with_suffix(".new"), "w") as out:
        for info, data in change(members):
            out.addfile(info, io.BytesIO(data) if info.isfile() else None)
    os.replace(path.with_suffix(".new"), path)


@pytest.fixture
def small_shards(tmp_path, shared_data):
    out = tmp_path / "sh"
    make_shards(data_dir(tmp_path, shared_data), out, shard_size=20)
    return out


def test_reader_checks_the_member_is_the_utterance_the_manifest_names(small_shards):
    """Bug 13 (issue 22): a tar in another order than its manifest is one line naming shard and utterance."""
    from spkid.data.shard_stream import Item, read_audio_member

    tar = small_shards / SHAR / "recording.000000.tar"
    _rewrite_tar(tar, lambda m: [x for i in range(len(m) - 2, -1, -2) for x in m[i:i + 2]])  # pairs reversed
    index = ShardIndex(small_shards)
    first = index.utt_ids(0)[0]
    with pytest.raises(SpkidError, match=rf"utterance {first} \(shard 0\): audio member 1 of \S+recording.000000.tar "
                                         r"is '[^']+' \(the tar and its manifest disagree"):
        read_audio_member(index.folder, Item(0, 0, 0))
    assert read_audio_member(index.folder, Item(1, 0, 0))[0] == index.utt_ids(1)[0]  # the other shards read


def test_garbage_or_link_member_is_one_line_naming_shard_and_utterance(small_shards):
    """UX 1 (issue 22): not soundfile's `<exception str() failed>`."""
    import tarfile

    from spkid.data.shard_stream import Item, _open_shard, read_audio_member

    def garbage(members):
        info, _ = members[0]
        info = tarfile.TarInfo(info.name)
        info.size = 64
        return [(info, b"\x00garbage" * 8)] + members[1:]

    def link(members):
        info = tarfile.TarInfo(members[0][0].name)
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        return [(info, b"")] + members[1:]

    tar = small_shards / SHAR / "recording.000000.tar"
    original = tar.read_bytes()
    for change, message in ((garbage, "cannot decode its audio in"), (link, "is not a plain file")):
        tar.write_bytes(original)
        _rewrite_tar(tar, change)
        _open_shard.cache_clear()  # the reader keeps recent shards open
        index = ShardIndex(small_shards)
        with pytest.raises(SpkidError, match=rf"utterance {index.utt_ids(0)[0]} \(shard 0\): .*{message}"):
            read_audio_member(index.folder, Item(0, 0, 0))
    (small_shards / SHAR / "recording.000001.tar").write_bytes(b"not a tar at all")
    with pytest.raises(SpkidError, match="recording.000001.tar: not a readable tar"):
        read_audio_member(small_shards, Item(1, 0, 0))


@pytest.mark.parametrize("text, message", [
    ('{"num_shards": "3"}', "'num_shards' must be a whole number >= 0, got \"3\""),
    ('{"num_utterances": 3}', "'num_shards' must be a whole number >= 0, got null"),
    ('{"num_shards": true}', "'num_shards' must be a whole number"),
    ("not json", "not a JSON object"),
    ("[3]", "not a JSON object"),
    ('{"num_shards": 9}', r"cuts.000003.jsonl.gz: cannot read the shard manifest"),
])
def test_broken_shards_json_is_one_line(small_shards, text, message):
    """UX 1 (issue 22): shards.json with a string or missing num_shards, or not JSON."""
    (small_shards / "shards.json").write_text(text)
    with pytest.raises(SpkidError, match=message):
        ShardIndex(small_shards)


def test_broken_manifest_is_one_line(small_shards):
    (small_shards / SHAR / "cuts.000001.jsonl.gz").write_bytes(b"garbage")
    with pytest.raises(SpkidError, match="cuts.000001.jsonl.gz: not a gzipped JSON-lines cut manifest"):
        ShardIndex(small_shards)
