"""spkid.kaldi.datadir / validate / split: Kaldi data-dir semantics on real and synthetic data dirs."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import make_real_dir, write_dir

from spkid.errors import SpkidError
from spkid.kaldi.datadir import (
    DataDir,
    combine_data_dirs,
    fix_data_dir,
    load_data_dir,
    split_data_dir,
    subset_data_dir,
)
from spkid.kaldi.split import split_indices, split_scp
from spkid.kaldi.tables import c_sorted, read_text_table
from spkid.kaldi.validate import check_data_dir, validate_data_dir


def synthetic(path: Path, n_spk: int = 3, n_utt: int = 4, **extra) -> Path:
    utt2spk = {f"spk{s}-utt{u}": f"spk{s}" for s in range(n_spk) for u in range(n_utt)}
    wav = {u: f"/audio/{u}.wav" for u in utt2spk}
    return write_dir(path, utt2spk, wav, **extra)


def errors(problems) -> list[str]:
    return [p.message for p in problems if p.level == "error"]


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines()


def edit(path: Path, fn) -> None:
    path.write_text("".join(line + "\n" for line in fn(lines_of(path))))


# ---------------------------------------------------------------- validate


def test_valid_real_dir_passes(tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data)
    assert errors(check_data_dir(data, no_feats=True, no_text=True)) == []
    assert validate_data_dir(data, no_feats=True, no_text=True) == []
    # text / feats.scp are required unless --no-text / --no-feats, as in Kaldi
    msgs = errors(check_data_dir(data))
    assert any("text: no such file" in m for m in msgs)
    assert any("feats.scp: no such file" in m for m in msgs)


def _swap(lines, i, j):
    lines[i], lines[j] = lines[j], lines[i]
    return lines


BREAKAGES = {
    # name: (file to edit, edit function, regex the error must match (file:line named))
    "utt2spk unsorted": ("utt2spk", lambda ls: _swap(ls, 2, 3),
                         r"out of order at .*utt2spk:4 \(after 'spk0-utt3'.*: 'spk0-utt2'$"),
    "wav.scp duplicate": ("wav.scp", lambda ls: ls[:3] + [ls[2]] + ls[3:],
                          r"duplicate id at .*wav\.scp:4: 'spk0-utt2'$"),
    "utt missing from wav.scp": ("wav.scp", lambda ls: ls[:5] + ls[6:], r"wav\.scp: has no utterance "
                                 r"'spk1-utt1' of .*utt2spk:6"),
    "utt not in utt2spk": ("wav.scp", lambda ls: ls + ["zzz /a.wav"], r"wav\.scp:13: utterance 'zzz' is not in"),
    "spk2utt inconsistent": ("spk2utt", lambda ls: [ls[0] + " spk1-utt0", ls[1].replace(" spk1-utt0", ""),
                                                   ls[2]], r"spk2utt:1: utterance 'spk1-utt0' is under "
                             r"speaker 'spk0' but .*utt2spk:5 gives speaker 'spk1'"),
    "spk2utt missing utt": ("spk2utt", lambda ls: [ls[0].replace(" spk0-utt3", "")] + ls[1:],
                            r"utt2spk:4: utterance 'spk0-utt3' of speaker 'spk0' is not in .*spk2utt"),
    "no final newline": ("wav.scp", None, r"wav\.scp:12: last line does not end with a newline"),
    "utt2spk two fields": ("utt2spk", lambda ls: ls[:1] + [ls[1] + " extra"] + ls[2:],
                           r"utt2spk:2: bad line"),
}


@pytest.mark.parametrize("name", list(BREAKAGES))
def test_validate_catches_breakage_with_file_line(tmp_path, name):
    data = synthetic(tmp_path / "d")
    assert errors(check_data_dir(data, no_feats=True, no_text=True)) == []
    file, fn, pattern = BREAKAGES[name]
    if fn is None:
        (data / file).write_text((data / file).read_text().rstrip("\n"))
    else:
        edit(data / file, fn)
    msgs = errors(check_data_dir(data, no_feats=True, no_text=True))
    assert any(re.search(pattern, m) for m in msgs), msgs
    with pytest.raises(SpkidError, match="invalid data dir"):
        validate_data_dir(data, no_feats=True, no_text=True)


def test_validate_tables_keyed_by_utt_spk_and_values(tmp_path):
    data = synthetic(tmp_path / "d", utt2dur={f"spk{s}-utt{u}": "1.5" for s in range(3) for u in range(4)},
                     feats_scp={f"spk{s}-utt{u}": "a.ark:1" for s in range(3) for u in range(4)},
                     spk2gender={"spk0": "m", "spk1": "f", "spk2": "m"})
    assert errors(check_data_dir(data, no_text=True)) == []
    edit(data / "utt2dur", lambda ls: ls[:2] + ["spk0-utt2 0"] + ls[3:])
    edit(data / "feats.scp", lambda ls: ls[:-1])
    edit(data / "spk2gender", lambda ls: ls[:2] + ["spk2 x"])
    msgs = "\n".join(errors(check_data_dir(data, no_text=True)))
    assert re.search(r"utt2dur:3: bad line 'spk0-utt2 0'", msgs)
    assert re.search(r"feats\.scp: has no utterance 'spk2-utt3' of .*utt2spk:12", msgs)
    assert re.search(r"spk2gender:3: bad line 'spk2 x'", msgs)


def test_validate_segments(tmp_path):
    utt2spk = {"spkA-1": "spkA", "spkA-2": "spkA", "spkB-1": "spkB"}
    segments = {"spkA-1": "rec1 0.0 1.5", "spkA-2": "rec1 1.5 3.0", "spkB-1": "rec2 0 2"}
    data = write_dir(tmp_path / "d", utt2spk, {"rec1": "/a.wav", "rec2": "/b.wav"}, segments=segments)
    assert errors(check_data_dir(data, no_feats=True, no_text=True)) == []
    edit(data / "segments", lambda ls: [ls[0], "spkA-2 rec1 3.0 1.5", "spkB-1 rec3 0 2"])
    msgs = "\n".join(errors(check_data_dir(data, no_feats=True, no_text=True)))
    assert re.search(r"segments:2: bad line 'spkA-2 rec1 3.0 1.5'", msgs)
    assert re.search(r"wav\.scp:2: recording 'rec2' is not in .*segments", msgs)
    assert re.search(r"wav\.scp: has no recording 'rec3' of .*segments:3", msgs)


def test_speaker_order_and_prefix(tmp_path):
    # utterance ids not prefixed by the speaker: only a warning while utt2spk sorts both ways ...
    data = write_dir(tmp_path / "d", {"a1": "x", "a2": "y"}, {"a1": "/1.wav", "a2": "/2.wav"})
    problems = check_data_dir(data, no_feats=True, no_text=True)
    assert errors(problems) == []
    assert any("do not start with their speaker id" in p.message for p in problems if p.level == "warning")
    # ... an error once utt2spk is not sorted by speaker too (Kaldi), unless no_spk_sort
    data = write_dir(tmp_path / "e", {"a1": "y", "a2": "x"}, {"a1": "/1.wav", "a2": "/2.wav"})
    assert any(re.search(r"utt2spk:2: utt2spk is not sorted by speaker", m)
               for m in errors(check_data_dir(data, no_feats=True, no_text=True)))
    assert errors(check_data_dir(data, no_feats=True, no_text=True, no_spk_sort=True)) == []


# ---------------------------------------------------------------- fix


def test_fix_repairs_broken_dir(tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data, per_spk=3)
    orig = read_text_table(data / "utt2spk")
    utts = c_sorted(orig)
    dropped_wav, dropped_dur = utts[4], utts[7]
    durs = {u: ("0" if u == dropped_dur else "1.25") for u in utts}
    (data / "utt2dur").write_text("".join(f"{u} {durs[u]}\n" for u in reversed(utts)))  # unsorted
    edit(data / "wav.scp", lambda ls: [x for x in ls if not x.startswith(dropped_wav + " ")])
    edit(data / "utt2spk", lambda ls: ls[::-1] + ls[:2])  # unsorted, with duplicates
    edit(data / "spk2utt", lambda ls: ls[1:])  # first speaker missing: inconsistent
    before = (data / "utt2spk").read_text()
    assert errors(check_data_dir(data, no_feats=True, no_text=True))

    messages: list[str] = []
    kept, total = fix_data_dir(data, log=messages.append)

    assert (kept, total) == (len(utts) - 2, len(utts))
    assert errors(check_data_dir(data, no_feats=True, no_text=True)) == []
    new = read_text_table(data / "utt2spk")
    assert set(new) == set(utts) - {dropped_wav, dropped_dur}
    assert all(new[u] == orig[u] for u in new)
    assert set(read_text_table(data / "utt2dur")) == set(new)
    assert (data / ".backup" / "utt2spk").read_text() == before
    assert any("kept 40 utterances out of 42" in m for m in messages)
    assert any("not in sorted order" in m for m in messages)


def test_fix_drops_recordings_and_speakers_without_utterances(tmp_path):
    utt2spk = {"spkA-1": "spkA", "spkA-2": "spkA", "spkB-1": "spkB", "spkC-1": "spkC"}
    segments = {"spkA-1": "rec1 0 1", "spkA-2": "rec1 1 2", "spkB-1": "rec2 0 2", "spkC-1": "recX 0 1"}
    wav = {"rec1": "/a.wav", "rec2": "/b.wav", "rec3": "/unused.wav"}
    feats = {u: "f.ark:1" for u in utt2spk if u != "spkB-1"}
    data = write_dir(tmp_path / "d", utt2spk, wav, segments=segments, feats_scp=feats,
                     spk2gender={"spkA": "m", "spkB": "f", "spkC": "f"})
    fix_data_dir(data)
    assert c_sorted(read_text_table(data / "utt2spk")) == ["spkA-1", "spkA-2"]
    assert list(read_text_table(data / "wav.scp")) == ["rec1"]
    assert list(read_text_table(data / "spk2gender")) == ["spkA"]
    assert read_text_table(data / "spk2utt") == {"spkA": "spkA-1 spkA-2"}
    assert errors(check_data_dir(data, no_text=True)) == []


def test_fix_refuses_utt2spk_not_sorted_by_speaker(tmp_path):
    data = write_dir(tmp_path / "d", {"a1": "y", "a2": "x"}, {"a1": "/1.wav", "a2": "/2.wav"})
    with pytest.raises(SpkidError, match=r"utt2spk:2: utt2spk is not sorted by speaker .*'a2 x' sorts after"):
        fix_data_dir(data)


def test_fix_fails_when_nothing_remains(tmp_path):
    data = synthetic(tmp_path / "d", feats_scp={"other": "x.ark:1"})
    with pytest.raises(SpkidError, match="no utterances remained"):
        fix_data_dir(data)


def test_load_duplicate_is_error_with_line(tmp_path):
    data = synthetic(tmp_path / "d")
    edit(data / "utt2spk", lambda ls: ls + [ls[-1]])
    with pytest.raises(SpkidError, match=r"utt2spk:13: duplicate id"):
        load_data_dir(data)


# ---------------------------------------------------------------- split


def _parts(root: Path, n: int) -> list[dict[str, str]]:
    return [read_text_table(root / str(i) / "utt2spk") for i in range(1, n + 1)]


@pytest.mark.parametrize("num", [1, 3, 5, 14])
def test_split_by_speaker(tmp_path, shared_data, num):
    data = make_real_dir(tmp_path / "d", shared_data)
    utt2spk = read_text_table(data / "utt2spk")
    dirs = split_data_dir(data, num)
    assert dirs == [data / f"split{num}" / str(i) for i in range(1, num + 1)]
    parts = _parts(data / f"split{num}", num)
    all_utts = [u for p in parts for u in p]
    assert sorted(all_utts) == sorted(utt2spk)  # every utterance exactly once
    for i, part in enumerate(parts):
        assert part and all(utt2spk[u] == s for u, s in part.items())
        others = {s for j, p in enumerate(parts) if j != i for s in p.values()}
        assert not set(part.values()) & others  # no speaker in two parts
        assert errors(check_data_dir(dirs[i], no_feats=True, no_text=True)) == []
        assert set(read_text_table(dirs[i] / "wav.scp")) == set(part)
    sizes = sorted(len(p) for p in parts)
    assert sizes[-1] - sizes[0] <= 10  # 10 utterances a speaker: balanced to one speaker


def test_split_per_utt(tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data)
    split_data_dir(data, 9, per_utt=True)
    parts = _parts(data / "split9utt", 9)
    assert sorted(u for p in parts for u in p) == sorted(read_text_table(data / "utt2spk"))
    assert max(map(len, parts)) - min(map(len, parts)) <= 1
    assert any(len(set(p.values()) & set(q.values())) for p in parts for q in parts if p is not q)


def test_split_segments_and_speaker_tables(tmp_path):
    utt2spk = {f"s{s}-{u}": f"s{s}" for s in range(4) for u in range(3)}
    segments = {u: f"rec{u[1]} {int(u[-1])}.0 {int(u[-1]) + 1}.0" for u in utt2spk}
    wav = {f"rec{s}": f"/r{s}.wav" for s in range(4)}
    data = write_dir(tmp_path / "d", utt2spk, wav, segments=segments,
                     spk2gender={f"s{s}": "mf"[s % 2] for s in range(4)})
    for part in split_data_dir(data, 2):
        assert errors(check_data_dir(part, no_feats=True, no_text=True)) == []
        spks = set(read_text_table(part / "utt2spk").values())
        assert set(read_text_table(part / "spk2gender")) == spks
        assert set(read_text_table(part / "wav.scp")) == {f"rec{s[1]}" for s in spks}


def test_datadir_files_and_audio_items(tmp_path):
    """DataDir is the one door to a data dir's files: wav.scp (+ segments) as audio items, tables read once."""
    plain = DataDir(synthetic(tmp_path / "plain", n_spk=1, n_utt=2))
    assert plain.wav_rspecifier == f"scp:{plain.path / 'wav.scp'}" and plain.segments_path is None
    items, problems = plain.audio_items()
    assert [(i.utt, i.entry, i.segment) for i in items] == [("spk0-utt0", "/audio/spk0-utt0.wav", None),
                                                            ("spk0-utt1", "/audio/spk0-utt1.wav", None)]
    assert problems == []
    assert plain.table("utt2spk") == {"spk0-utt0": "spk0", "spk0-utt1": "spk0"}
    with pytest.raises(SpkidError, match="no feats.scp in data dir"):
        plain.table("feats.scp")
    segmented = DataDir(write_dir(tmp_path / "seg", {"a-1": "a", "a-2": "a"}, {"rec": "/rec.wav"},
                                  segments={"a-1": "rec 0.0 1.5", "a-2": "rec 1.5 3.0", "a-3": "gone 0 1"}))
    items, problems = segmented.audio_items()
    assert segmented.segments_path == segmented.path / "segments"
    assert [(i.utt, i.entry, i.segment.start, i.segment.end) for i in items] == [("a-1", "/rec.wav", 0.0, 1.5),
                                                                                ("a-2", "/rec.wav", 1.5, 3.0)]
    assert [utt for utt, _ in problems] == ["a-3"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(SpkidError, match="no wav.scp in data dir"):
        DataDir(tmp_path / "empty").audio_items()


def test_split_keeps_fresh_split_and_redoes_stale(tmp_path):
    data = synthetic(tmp_path / "d", feats_scp={f"spk{s}-utt{u}": "x.ark:9" for s in range(3) for u in range(4)})
    split_data_dir(data, 2)
    first = data / "split2" / "1" / "utt2spk"
    stamp = first.stat().st_mtime_ns
    split_data_dir(data, 2)
    assert first.stat().st_mtime_ns == stamp
    edit(data / "utt2spk", lambda ls: ls[:-1])
    edit(data / "spk2utt", lambda ls: ls[:-1] + [ls[-1].rsplit(" ", 1)[0]])
    edit(data / "wav.scp", lambda ls: ls[:-1])
    (data / "feats.scp").unlink()
    split_data_dir(data, 2)
    assert sum(len(p) for p in _parts(data / "split2", 2)) == 11
    assert not list(data.glob("split2/*/feats.scp"))  # a table gone from the source is gone from the split


def test_split_too_many_parts(tmp_path):
    data = synthetic(tmp_path / "d", n_spk=3)
    with pytest.raises(SpkidError, match="only 3 speakers"):
        split_data_dir(data, 4)


def test_split_indices_balances_like_kaldi():
    # speakers a, b, c of 1 utterance and d of 9, in 2 parts: Kaldi's split_scp.pl gives [a b c] [d]
    keys = ["a1", "b1", "c1"] + [f"d{i}" for i in range(9)]
    utt2spk = {k: k[0] for k in keys}
    parts = split_indices(keys, 2, utt2spk)
    assert [[keys[i] for i in p] for p in parts] == [["a1", "b1", "c1"], keys[3:]]
    assert split_indices(list("abcdefghij"), 3) == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]]


def test_split_scp_verbatim(tmp_path):
    src = tmp_path / "in.scp"
    src.write_text("".join(f"u{i}  value with  spaces {i}\n" for i in range(7)))
    outs = [str(tmp_path / f"o{i}") for i in range(3)]
    split_scp(src, outs)
    assert "".join(Path(o).read_text() for o in outs) == src.read_text()
    assert [len(lines_of(Path(o))) for o in outs] == [3, 2, 2]


# ---------------------------------------------------------------- subset / combine


def test_subset_modes(tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data)
    utts = c_sorted(read_text_table(data / "utt2spk"))

    def subset(name, *args, **kw):
        dest = tmp_path / name
        subset_data_dir(data, dest, *args, **kw)
        assert errors(check_data_dir(dest, no_feats=True, no_text=True)) == []
        return c_sorted(read_text_table(dest / "utt2spk"))

    assert subset("first", 5, first=True) == utts[:5]
    assert subset("last", 5, last=True) == utts[-5:]
    assert len(subset("even", 7)) == 7
    rand = subset("rand", 9, random_pick=True, seed=3)
    assert len(rand) == 9 and rand == subset("rand2", 9, random_pick=True, seed=3)
    per_spk = read_text_table(tmp_path / "d" / "utt2spk")
    chosen = subset("perspk", 2, per_spk=True)
    assert len(chosen) == 28 and all(sum(per_spk[u] == s for u in chosen) == 2 for s in set(per_spk.values()))
    spk_sel = subset("speakers", 25, speakers=True)
    assert len(spk_sel) == 30  # whole speakers of 10 utterances until at least 25
    (tmp_path / "list").write_text(f"{utts[3]}\n{utts[0]} extra fields\nnot-an-utt\n")
    assert subset("uttlist", utt_list=tmp_path / "list") == [utts[0], utts[3]]
    (tmp_path / "spks").write_text("p225\n1688\n")
    assert {per_spk[u] for u in subset("spklist", spk_list=tmp_path / "spks")} == {"p225", "1688"}
    with pytest.raises(SpkidError, match="cannot subset to 141"):
        subset_data_dir(data, tmp_path / "big", 141)
    with pytest.raises(SpkidError, match="is the source"):
        subset_data_dir(data, data, 3, first=True)


def test_subset_shortest(tmp_path):
    data = synthetic(tmp_path / "d", utt2dur={f"spk{s}-utt{u}": str(10 - s - u) for s in range(3)
                                               for u in range(4)})
    subset_data_dir(data, tmp_path / "s", 2, shortest=True)
    # durations 10 - s - u: spk2-utt3 is 5 s; spk1-utt3 and spk2-utt2 tie at 6 s (id order decides)
    assert c_sorted(read_text_table(tmp_path / "s" / "utt2spk")) == ["spk1-utt3", "spk2-utt3"]


def test_combine(tmp_path, shared_data):
    a = make_real_dir(tmp_path / "a", shared_data, datasets=("vctk_mini",))
    b = make_real_dir(tmp_path / "b", shared_data, datasets=("librispeech_test_other",), per_spk=4)
    dest = tmp_path / "all"
    combine_data_dirs(dest, [a, b])
    assert errors(check_data_dir(dest, no_feats=True, no_text=True)) == []
    assert read_text_table(dest / "utt2spk") == {**read_text_table(a / "utt2spk"), **read_text_table(b / "utt2spk")}
    with pytest.raises(SpkidError, match=r"duplicate utterance '.*' in .*b/utt2spk and .*"):
        combine_data_dirs(tmp_path / "dup", [a, b, b])


def test_combine_segments_with_whole_recordings(tmp_path):
    a = write_dir(tmp_path / "a", {"sa-1": "sa", "sa-2": "sa"}, {"rec": "/r.wav"},
                  segments={"sa-1": "rec 0 1", "sa-2": "rec 1 2"}, utt2dur={"sa-1": "1", "sa-2": "1"})
    b = write_dir(tmp_path / "b", {"sb-1": "sb"}, {"sb-1": "/b.wav"}, utt2dur={"sb-1": "3.5"})
    dest = tmp_path / "ab"
    combine_data_dirs(dest, [a, b])
    assert read_text_table(dest / "segments") == {"sa-1": "rec 0 1", "sa-2": "rec 1 2", "sb-1": "sb-1 0 3.5"}
    assert read_text_table(dest / "wav.scp") == {"rec": "/r.wav", "sb-1": "/b.wav"}
    assert errors(check_data_dir(dest, no_feats=True, no_text=True)) == []


def test_combine_skips_tables_missing_somewhere(tmp_path):
    a = synthetic(tmp_path / "a", n_spk=2, feats_scp={f"spk{s}-utt{u}": "x:1" for s in range(2) for u in range(4)})
    b_utts = {f"zz{s}-u": f"zz{s}" for s in range(2)}
    b = write_dir(tmp_path / "b", b_utts, {u: "/w.wav" for u in b_utts})
    messages: list[str] = []
    combine_data_dirs(tmp_path / "c", [a, b], log=messages.append)
    assert not (tmp_path / "c" / "feats.scp").exists()
    assert any("not combining feats.scp" in m for m in messages)
    assert len(read_text_table(tmp_path / "c" / "utt2spk")) == 10
    assert not os.path.exists(tmp_path / "c" / "text")
