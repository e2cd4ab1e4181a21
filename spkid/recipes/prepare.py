"""Prepare a corpus: lhotse's recipe -> manifests (recordings, supervisions, cuts) and a Kaldi data dir.

For each part, under OUTPUT_DIR: manifests/<corpus>_{recordings,supervisions,cuts}_<part>.jsonl.gz and
the data dir <corpus>_<part> (<corpus> for the part `all`; `-` in part names becomes `_`), both in the
id scheme of spkid.recipes.common. A part whose outputs all exist is skipped (outputs are only ever
renamed into place complete), so re-running is cheap and changes nothing; force=True redoes it.
"""
from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

from spkid.errors import SpkidError
from spkid.recipes import CORPORA, Corpus
from spkid.recipes.common import captured_warnings, normalise_gender, to_kaldi_cuts, write_data_dir, write_manifest

logger = logging.getLogger("spkid.recipes")
KINDS = ("recordings", "supervisions", "cuts")


def data_dir_name(corpus: str, part: str) -> str:
    return corpus if part == "all" else f"{corpus}_{part.replace('-', '_')}"


def manifest_path(output_dir: Path, corpus: str, kind: str, part: str) -> Path:
    return output_dir / "manifests" / f"{corpus}_{kind}_{part}.jsonl.gz"


def outputs(output_dir: Path, corpus: str, part: str) -> list[Path]:
    data = output_dir / data_dir_name(corpus, part)
    return [manifest_path(output_dir, corpus, k, part) for k in KINDS] + [data / "utt2spk", data / "wav.scp"]


def get_corpus(name: str) -> Corpus:
    if name not in CORPORA:
        raise SpkidError(f"unknown corpus '{name}' (known: {', '.join(CORPORA)})")
    return CORPORA[name]


def select_parts(corpus: Corpus, root: Path, parts: list[str] | None) -> list[str]:
    """The parts asked for (checked against the corpus), or its defaults / those present on disk."""
    if parts:
        bad = [p for p in parts if p not in corpus.parts]
        if bad:
            raise SpkidError(f"{corpus.name}: unknown part '{bad[0]}' (parts: {', '.join(corpus.parts)})")
        return list(dict.fromkeys(parts))
    if corpus.default_parts is not None:
        return list(corpus.default_parts)
    found = corpus.present_parts(root) if corpus.present_parts and root.is_dir() else []
    if not found:
        raise SpkidError(f"{corpus.name}: none of its parts ({', '.join(corpus.parts)}) is in {root} "
                         f"(expected {corpus.layout})")
    return found


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def prepare_corpus(name: str, corpus_dir: str | Path, output_dir: str | Path, parts: list[str] | None = None,
                   download: bool = False, mirror: str | None = None, num_jobs: int = 1, force: bool = False,
                   **options) -> list[Path]:
    """Prepare the parts of a corpus; returns their data dirs. Errors are one-line SpkidErrors."""
    from spkid.recipes.noise_sources import NOISE_SOURCES, prepare_noise_source

    if name in NOISE_SOURCES:
        unknown = set(options) - {"use_vocals"} if name == "musan" else set(options)
        if unknown:
            raise SpkidError(f"{name}: option {', '.join(sorted(unknown))} does not apply to this corpus")
        return prepare_noise_source(name, corpus_dir, output_dir, parts, download, mirror, force, **options)
    corpus = get_corpus(name)
    unknown = set(options) - set(corpus.options)
    if unknown:
        raise SpkidError(f"{name}: option {', '.join(sorted(unknown))} does not apply to this corpus")
    corpus_dir, output_dir = Path(corpus_dir).absolute(), Path(output_dir)
    if download:
        if corpus.download is None:
            raise SpkidError(f"{name}: no download available")
        try:
            corpus.download(corpus_dir, list(parts or corpus.default_parts or corpus.parts), mirror)
        except SpkidError:
            raise
        except Exception as err:
            raise SpkidError(f"{name}: download into {corpus_dir} failed: {_first_line(err)}") from None
    root = corpus.resolve(corpus_dir)
    parts = select_parts(corpus, root, parts)
    todo = [p for p in parts if force or not all(f.exists() for f in outputs(output_dir, name, p))]
    for part in parts:
        if part not in todo:
            logger.info("%s %s: already prepared in %s (skipped; --force redoes it)", name, part,
                        output_dir / data_dir_name(name, part))
    if todo:
        _prepare_parts(corpus, root, output_dir, todo, num_jobs, options)
    return [output_dir / data_dir_name(name, p) for p in parts]


def _prepare_parts(corpus: Corpus, root: Path, output_dir: Path, parts: list[str], num_jobs: int,
                   options: dict) -> None:
    from lhotse import RecordingSet, SupervisionSet
    from lhotse.utils import fastcopy

    corpus.check(root, parts, **options)
    logger.info("%s: running lhotse's %s on %s (parts: %s)", corpus.name, corpus.lhotse_function, root,
                " ".join(parts))
    with captured_warnings() as warnings:
        try:
            loaded = corpus.load(root, parts, num_jobs=num_jobs, **options)
        except SpkidError:
            raise
        except Exception as err:
            raise SpkidError(f"{corpus.name}: lhotse's {corpus.lhotse_function} failed on {root}: "
                             f"{_first_line(err)} (expected {corpus.layout})") from None
    if warnings:
        kinds = Counter(w.split(":")[0] for w in warnings)
        logger.warning("%s: lhotse warned %d times (%s); first: %s", corpus.name, len(warnings),
                       ", ".join(f"{k}: {n}" for k, n in kinds.most_common(3)), warnings[0])
    meta_genders = corpus.genders(root) if corpus.genders else {}
    for part in parts:
        recordings, supervisions = loaded[part]
        if len(supervisions) == 0:
            raise SpkidError(f"{corpus.name}: part '{part}' has no utterances in {root} "
                             f"(expected {corpus.layout})")
        cuts = to_kaldi_cuts(corpus.name, recordings, supervisions)
        genders = {f"{corpus.name}_{spk}": g for spk, g in meta_genders.items()}
        for sup in supervisions:
            gender = normalise_gender(sup.gender)
            if gender:
                genders[f"{corpus.name}_{sup.speaker}"] = gender
        recos = {c.recording.id: c.recording for c in cuts}
        sups = [fastcopy(c.supervisions[0], start=c.start) for c in cuts]
        write_manifest(RecordingSet.from_recordings(recos.values()), manifest_path(output_dir, corpus.name,
                                                                                    "recordings", part))
        write_manifest(SupervisionSet.from_segments(sups), manifest_path(output_dir, corpus.name,
                                                                         "supervisions", part))
        write_manifest(cuts, manifest_path(output_dir, corpus.name, "cuts", part))
        data = write_data_dir(cuts, output_dir / data_dir_name(corpus.name, part), genders)
        speakers = len({c.supervisions[0].speaker for c in cuts})
        hours = sum(c.duration for c in cuts) / 3600
        logger.info("%s %s: wrote %s (%d utterances, %d speakers, %.2f h) and %s/%s_*_%s.jsonl.gz",
                    corpus.name, part, data, len(cuts), speakers, hours, output_dir / "manifests",
                    corpus.name, part)
