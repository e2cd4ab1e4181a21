"""Kaldi data dir -> lhotse Shar shards: sequentially read tar shards of audio with cut manifests.

Layout: `shar/` holds lhotse's files only, `cuts.NNNNNN.jsonl.gz` + `recording.NNNNNN.tar` per shard (so
`lhotse.CutSet.from_shar(in_dir="OUT/shar")` reads it too); beside it `shards.json` (what was written: shard
count, utterances per shard, format, speakers) and `utt2spk` / `spk2utt` of what was written.
The utterances are assigned to shards in data-dir order before anything is written (`plan.json`), so a
killed run is resumed by keeping every complete shard and redoing the rest: a shard is written under
`.partial-NNNNNN/` and its files are renamed into place, the cuts manifest last, so a shard whose manifest
exists is complete. Utterances shorter than one frame (25 ms, Kaldi's default window) are left out with a
warning listing them (`too_short.NNNNNN.txt` beside `shar/` keeps the list of a shard for a resumed run).
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from spkid.atomic import atomic_write_text
from spkid.errors import FailureLog, SpkidError

logger = logging.getLogger("spkid.shards")

AUDIO_FORMATS = ("flac", "wav")
PLAN = "plan.json"
SUMMARY = "shards.json"


SHAR = "shar"
MIN_SECONDS = 0.025  # one frame of the default front-end (Kaldi's 25 ms window): shorter gives no frame


def shard_files(folder: Path, index: int) -> tuple[Path, Path]:
    """(cuts manifest, audio tar) of shard `index` in `folder`."""
    return folder / f"cuts.{index:06d}.jsonl.gz", folder / f"recording.{index:06d}.tar"


def too_short_file(output: Path, index: int) -> Path:
    """The list of utterances of shard `index` left out as shorter than one frame (absent when none)."""
    return output / f"too_short.{index:06d}.txt"


def _plan(utts: list[str], shard_size: int, audio_format: str) -> dict:
    shards = [utts[i:i + shard_size] for i in range(0, len(utts), shard_size)]
    digest = hashlib.sha256("\n".join(utts).encode()).hexdigest()
    return {"shard_size": shard_size, "audio_format": audio_format, "num_utterances": len(utts),
            "utterances_sha256": digest, "shards": shards}


def _check_plan(output: Path, plan: dict) -> None:
    """Resume only the same job: same utterances, shard size and format (else refuse)."""
    path = output / PLAN
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise SpkidError(f"{path}: unreadable ({err}); remove {output} to start again") from None
        keys = ("shard_size", "audio_format", "utterances_sha256")
        if any(old.get(k) != plan[k] for k in keys):
            raise SpkidError(f"{output} holds shards of another job (different utterances, --shard-size or "
                             f"--audio-format); choose a new --output or remove it")
    else:
        leftovers = sorted(p.name for p in (output / SHAR).glob("cuts.*.jsonl.gz"))
        if leftovers:
            raise SpkidError(f"{output} has shards ({leftovers[0]}, ...) but no {PLAN}: not written by "
                             f"make-shards; choose a new --output")
        atomic_write_text(path, json.dumps(plan))


def _write_shard(index: int, items: list, utt2spk: dict[str, str], output: str, audio_format: str
                 ) -> tuple[int, list[str], list[tuple[str, str]], list[str]]:
    """Write one shard; returns (index, utterances written, failures, utterances left out as too short)."""
    from lhotse import AudioSource, MonoCut, Recording, SupervisionSegment
    from lhotse.shar.writers import AudioTarWriter, JsonlShardWriter

    from spkid.kaldi.audio import iter_loaded

    out = Path(output)
    partial = out / f".partial-{index:06d}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    big = len(items) + 1  # one file per writer, numbered `index`
    written, failures, short = [], [], []
    audio_writer = AudioTarWriter(f"{partial}/recording.%06d.tar", shard_size=big, format=audio_format,
                                  shard_offset=index)
    cut_writer = JsonlShardWriter(f"{partial}/cuts.%06d.jsonl.gz", shard_size=big, shard_offset=index)
    with audio_writer, cut_writer:
        for item, wave, rate, error in iter_loaded(items):
            if error is None and not np.isfinite(wave).all():
                error = "audio has non-finite samples (NaN or inf)"
            if error is not None:
                failures.append((item.utt, error))
                continue
            n = len(wave)
            if n < MIN_SECONDS * rate:  # no frame: training from the shards could never use it
                short.append(item.utt)
                continue
            rec = Recording(id=item.utt, sources=[AudioSource(type="shar", channels=[0], source="")],
                            sampling_rate=rate, num_samples=n, duration=n / rate)
            sup = SupervisionSegment(id=item.utt, recording_id=item.utt, start=0.0, duration=n / rate,
                                     channel=0, speaker=utt2spk[item.utt])
            cut = MonoCut(id=item.utt, start=0.0, duration=n / rate, channel=0, recording=rec, supervisions=[sup])
            audio_writer.write(item.utt, wave[None, :], rate, manifest=rec)
            cut_writer.write(cut)
            written.append(item.utt)
    cuts, audio = shard_files(partial, index)
    if not written:  # every utterance failed: lhotse opened no file; an empty shard keeps the numbering
        import gzip
        import tarfile
        with gzip.open(cuts, "wt"), tarfile.open(audio, "w"):
            pass
    final_cuts, final_audio = shard_files(out / SHAR, index)
    too_short_file(out, index).unlink(missing_ok=True)
    if short:
        atomic_write_text(too_short_file(out, index), "".join(f"{u}\n" for u in short))
    audio.rename(final_audio)
    cuts.rename(final_cuts)  # last: a shard whose manifest exists is complete
    shutil.rmtree(partial, ignore_errors=True)
    return index, written, failures, short


def read_shard_ids(cuts_path: Path) -> list[str]:
    """The utterance ids of one shard manifest, in order."""
    import gzip
    with gzip.open(cuts_path, "rt") as handle:
        return [json.loads(line)["id"] for line in handle if line.strip()]


def make_shards(data_dir: str | Path, output: str | Path, shard_size: int = 1000, audio_format: str = "flac",
                nj: int = 1) -> FailureLog:
    """Write the utterances of a data dir (wav.scp, utt2spk, optional segments) as Shar shards.

    Returns the failure log (per-utterance problems); raises SpkidError for problems with the job itself.
    """
    from spkid.kaldi.datadir import load_data_dir

    if shard_size < 1:
        raise SpkidError(f"--shard-size must be at least 1, got {shard_size}")
    if audio_format not in AUDIO_FORMATS:
        raise SpkidError(f"--audio-format must be one of {', '.join(AUDIO_FORMATS)}, not '{audio_format}'")
    data = load_data_dir(data_dir)
    utt2spk = data.utt2spk
    items, problems = data.audio_items()
    log = FailureLog()
    for utt, reason in problems:
        log.fail(utt, reason)
    missing = [item for item in items if item.utt not in utt2spk]
    for item in missing:
        log.fail(item.utt, f"not in {Path(data_dir) / 'utt2spk'}")
    items = [item for item in items if item.utt in utt2spk]
    if not items:
        raise SpkidError(f"{data_dir}: no utterance to shard")

    out = Path(output)
    (out / SHAR).mkdir(parents=True, exist_ok=True)
    plan = _plan([item.utt for item in items], shard_size, audio_format)
    _check_plan(out, plan)
    by_utt = {item.utt: item for item in items}
    todo = [i for i in range(len(plan["shards"])) if not shard_files(out / SHAR, i)[0].exists()]
    kept = len(plan["shards"]) - len(todo)
    if kept:
        logger.info("%s: keeping %d complete shard(s), writing %d", out, kept, len(todo))
    jobs = [(i, [by_utt[u] for u in plan["shards"][i]], {u: utt2spk[u] for u in plan["shards"][i]}, str(out),
             audio_format) for i in todo]
    results = []
    if nj > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(max_workers=nj) as pool:
            futures = [pool.submit(_write_shard, *job) for job in jobs]
            for done, future in enumerate(futures, 1):
                results.append(future.result())
                logger.info("shard %d/%d written", done, len(jobs))
    else:
        for done, job in enumerate(jobs, 1):
            results.append(_write_shard(*job))
            logger.info("shard %d/%d written", done, len(jobs))
    for _, _, failures, _ in results:
        for utt, reason in failures:
            log.fail(utt, reason)
    short = [u for i in range(len(plan["shards"])) if too_short_file(out, i).exists()
             for u in too_short_file(out, i).read_text().split()]
    if short:
        logger.warning("left out %d utterance(s) shorter than one frame (%g s): %s", len(short), MIN_SECONDS,
                       " ".join(short))
    _summarise(out, plan, utt2spk, log, set(short))
    return log


def _summarise(out: Path, plan: dict, utt2spk: dict[str, str], log: FailureLog, short: set[str]) -> None:
    """Count what the shards hold (validation: planned = written + failed + too short); write shards.json,
    utt2spk, spk2utt."""
    per_shard = [read_shard_ids(shard_files(out / SHAR, i)[0]) for i in range(len(plan["shards"]))]
    written = [u for ids in per_shard for u in ids]
    failed_here = {u for u, _ in log.failures} | short
    planned = plan["num_utterances"]
    missing = [u for ids in plan["shards"] for u in ids if u not in set(written) and u not in failed_here]
    for utt in missing:  # failed in an earlier run whose shard was kept
        log.fail(utt, "not in its shard (it failed when the shard was written)")
    log.done = len(written)
    if len(set(written)) != len(written) or len(written) > planned:
        raise SpkidError(f"{out}: shards hold {len(written)} cuts for {planned} planned utterances")
    speakers = sorted({utt2spk[u] for u in written})
    atomic_write_text(out / "utt2spk", "".join(f"{u} {utt2spk[u]}\n" for u in sorted(written)))
    spk2utt: dict[str, list[str]] = {}
    for u in sorted(written):
        spk2utt.setdefault(utt2spk[u], []).append(u)
    atomic_write_text(out / "spk2utt", "".join(f"{s} {' '.join(us)}\n" for s, us in sorted(spk2utt.items())))
    summary = {"num_shards": len(per_shard), "num_utterances": len(written), "num_speakers": len(speakers),
               "audio_format": plan["audio_format"], "shard_size": plan["shard_size"],
               "utterances_per_shard": [len(ids) for ids in per_shard], "too_short": len(short)}
    atomic_write_text(out / SUMMARY, json.dumps(summary, indent=1) + "\n")
