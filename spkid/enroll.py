"""SpeakerDB: enrolled speakers as mean embeddings, stored the way Kaldi recipes keep them.

A database folder holds, as `ivector-mean spk2utt scp:xvector.scp ark,scp:spk_xvector.ark,spk_xvector.scp
ark,t:num_utts.ark` writes them:

- spk_xvector.ark / spk_xvector.scp: each speaker's mean embedding (binary float vectors; the scp
  holds the absolute path of the ark, so Kaldi tools read it from any folder);
- num_utts.ark: `<speaker> <number of utterances averaged>` (text);
- model.json: the model used (as given, and the sha256 of its checkpoint), checked on load so that
  embeddings of different models are never compared.

Updates hold DIR/.lock (exclusive; readers take it shared) and replace the four files as one unit
(spkid.atomic.replace_files), so concurrent `spkid enroll` runs each add their speaker and a reader
never sees one file of an update without the others, even when a writer is killed.

Enrolling more utterances of a speaker updates its mean with the stored count. Identification scores
a test embedding against every speaker mean by cosine; below the threshold (given, else the model's
calibrated one) the answer is None (unknown); with no threshold at all the best speaker is named (closed set).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from spkid.api import Audio, Model, check_embedding, cosine, load_model
from spkid.errors import SpkidError

DB_FORMAT = "spkid-speakerdb-1"
MEANS, COUNTS, MODEL_FILE = "spk_xvector", "num_utts.ark", "model.json"


def check_speaker_name(name: str) -> str:
    if not isinstance(name, str) or not name or any(c.isspace() for c in name):
        raise SpkidError(f"speaker name {name!r} must be a non-empty Kaldi key (no whitespace)")
    return name


class SpeakerDB:
    """Enrolled speakers of one model: `enroll`, `identify`, `scores`, `save`, `SpeakerDB.load`."""

    def __init__(self, model: Model):
        self.model = model
        self._means: dict[str, np.ndarray] = {}
        self._counts: dict[str, int] = {}

    @property
    def speakers(self) -> list[str]:
        return sorted(self._means)

    def __len__(self) -> int:
        return len(self._means)

    def num_utts(self, name: str) -> int:
        return self._counts[name]

    def mean(self, name: str) -> np.ndarray:
        if name not in self._means:
            raise SpkidError(f"speaker '{name}' is not enrolled")
        return self._means[name]

    def add_embeddings(self, name: str, embeddings: np.ndarray) -> None:
        """Fold (N, D) utterance embeddings into the speaker's mean (created when new)."""
        check_speaker_name(name)
        try:
            embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        except (TypeError, ValueError) as err:
            raise SpkidError(f"speaker '{name}': embeddings must be an (N, D) array of numbers ({err})") from None
        if embeddings.ndim != 2 or not embeddings.size:
            raise SpkidError(f"speaker '{name}': no utterances to enroll" if not embeddings.size else
                             f"speaker '{name}': embeddings must be (N, D), got shape {embeddings.shape}")
        for i, emb in enumerate(embeddings):
            check_embedding(emb, f"speaker '{name}': embedding {i}")
        dims = {m.shape[0] for m in self._means.values()}
        if dims and embeddings.shape[1] not in dims:
            raise SpkidError(f"speaker '{name}': {embeddings.shape[1]}-dim embeddings, the database holds "
                             f"{dims.pop()}-dim ones")
        count = self._counts.get(name, 0)
        total = self._means[name].astype(np.float64) * count if count else 0.0
        self._counts[name] = count + len(embeddings)
        self._means[name] = ((total + embeddings.sum(axis=0)) / self._counts[name]).astype(np.float32)

    def enroll(self, name: str, items: list[Audio], sample_rate: int | None = None) -> int:
        """Add utterances (paths or samples) to a speaker; returns its number of utterances."""
        check_speaker_name(name)
        if isinstance(items, (str, os.PathLike)) or getattr(items, "ndim", None) == 1:  # one path or 1-D samples
            items = [items]
        self.add_embeddings(name, self.model.embed_batch(list(items), sample_rate))
        return self._counts[name]

    def remove(self, name: str) -> None:
        self.mean(name)
        del self._means[name], self._counts[name]

    def scores(self, item, sample_rate: int | None = None) -> list[tuple[str, float]]:
        """(speaker, cosine score) for every speaker, best first; `item` as Model.similarity takes it."""
        if not self._means:
            raise SpkidError("no speakers enrolled")
        emb = self.model.as_embedding(item, sample_rate)
        return self.scores_of_embedding(emb)

    def scores_of_embedding(self, emb: np.ndarray) -> list[tuple[str, float]]:
        check_embedding(emb, "the test embedding")
        dim = next(iter(self._means.values())).shape[0] if self._means else emb.shape[0]
        if emb.shape != (dim,):
            raise SpkidError(f"the test embedding has shape {emb.shape}, the database's means are {dim}-dim")
        out = [(name, cosine(mean, emb)) for name, mean in self._means.items()]
        return sorted(out, key=lambda pair: (-pair[1], pair[0]))

    def identify(self, item, threshold: float | None = None, sample_rate: int | None = None
                 ) -> tuple[str | None, float]:
        """(best speaker, its score). Open set: the name is None when the score is below `threshold`, else
        below the model's calibrated one; with neither, closed set: the best speaker is always named."""
        limit, _ = self.threshold_in_use(threshold)
        name, score = self.scores(item, sample_rate)[0]
        return (name if limit is None or score >= limit else None), score

    def threshold_in_use(self, threshold: float | None = None) -> tuple[float | None, str]:
        """(threshold, where it comes from): the one given, else the model's calibrated one, else
        (None, "none: closed set")."""
        from spkid.api import check_threshold

        if threshold is not None:
            return check_threshold(threshold), "given"
        if self.model.threshold is not None:
            calib = self.model.calibration
            where = f" of {self.model.calibration_file}" if self.model.calibration_file else ""
            return self.model.threshold, f"calibrated: {calib.operating_point} point{where}"
        return None, "none: closed set, the best enrolled speaker is always named"

    def save(self, folder: str | os.PathLike) -> Path:
        """Write the database folder, replacing what it holds (its files as one unit, under DIR/.lock). To add
        to a database others may update at the same time, use `SpeakerDB.updating`."""
        from spkid.atomic import exclusive_lock

        if not self._means:
            raise SpkidError("no speakers enrolled; nothing to save")
        folder = _writable(folder)
        with exclusive_lock(folder, "speaker database update", wait=True):
            self._write(folder)
        return folder

    @classmethod
    @contextmanager
    def updating(cls, folder: str | os.PathLike, model: Model | None = None, device: str = "auto"
                 ) -> Iterator[SpeakerDB]:
        """The database at `folder` (a new one of `model` when there is none), read under its exclusive lock
        (DIR/.lock) and saved when the block ends without an error: concurrent updates (several `spkid enroll`)
        each add to what the others saved."""
        from spkid.atomic import exclusive_lock

        folder = _writable(folder)
        with exclusive_lock(folder, "speaker database update", wait=True):
            if cls.exists(folder):
                if model is None:
                    model = cls.load_own_model(folder, device)
                db = cls._read(folder, model)
            elif model is None:
                raise SpkidError(f"{folder}: no speaker database there yet; give the model to enroll with")
            else:
                db = cls(model)
            yield db
            if db._means:
                db._write(folder)

    def _write(self, folder: Path) -> None:
        """The database files, replaced as one unit (spkid.atomic.replace_files; hold the lock)."""
        import io

        from kaldiio.matio import write_array

        from spkid.atomic import replace_files

        ark, scp = io.BytesIO(), []
        ark_path = folder / f"{MEANS}.ark"
        names = sorted(self._means, key=str.encode)
        for name in names:  # as ivector-mean's ark,scp: writes them; the scp names the ark by its absolute path
            ark.write(f"{name} ".encode())
            scp.append(f"{name} {ark_path}:{ark.tell()}\n")
            write_array(ark, np.asarray(self._means[name], dtype=np.float32))
        counts = "".join(f"{name} {self._counts[name]}\n" for name in names)
        source = self.model.source  # a pretrained name as it is, a path made absolute
        source = str(Path(source).absolute()) if Path(source).exists() else source
        info = {"format": DB_FORMAT, "model": source, "model_sha256": self.model.fingerprint,
                "speakers": len(self._means), "embedding_dim": int(self._means[names[0]].shape[0])}
        replace_files(folder, {f"{MEANS}.ark": ark.getvalue(), f"{MEANS}.scp": "".join(scp).encode(),
                               COUNTS: counts.encode(), MODEL_FILE: (json.dumps(info, indent=2) + "\n").encode()})

    @staticmethod
    def exists(folder: str | os.PathLike) -> bool:
        from spkid.atomic import committed_path

        return committed_path(folder, MODEL_FILE).is_file()

    @staticmethod
    def read_info(folder: str | os.PathLike) -> dict:
        from spkid.atomic import committed_path

        path = Path(folder) / MODEL_FILE
        try:
            info = json.loads(committed_path(folder, MODEL_FILE).read_text(encoding="utf-8"))
        except OSError as err:
            raise SpkidError(f"{path}: cannot read ({err.strerror}); not a speaker database?") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpkidError(f"{path}: not JSON ({err})") from None
        if not isinstance(info, dict) or info.get("format") != DB_FORMAT:
            raise SpkidError(f"{path}: not a spkid speaker database (format {DB_FORMAT})")
        return info

    @classmethod
    def load_own_model(cls, folder: str | os.PathLike, device: str = "auto") -> Model:
        """The model the database names (checked before it is loaded; never a TorchScript file: a database
        runs no code)."""
        from spkid.inference import database_source

        return load_model(database_source(cls.read_info(folder), Path(folder) / MODEL_FILE), device)

    @classmethod
    def load(cls, folder: str | os.PathLike, model: Model | None = None, device: str = "auto") -> SpeakerDB:
        """Read a database folder (under a shared lock: never half an update); `model` defaults to the one it
        was enrolled with, and must be that model."""
        from spkid.atomic import shared_lock

        folder = Path(folder)
        cls.read_info(folder)
        if model is None:
            model = cls.load_own_model(folder, device)
        with shared_lock(folder):
            return cls._read(folder, model)

    @classmethod
    def _read(cls, folder: Path, model: Model) -> SpeakerDB:
        from spkid.atomic import committed_path
        from spkid.kaldi.io import read_dict
        from spkid.scoring.embeddings import read_int_table

        info = cls.read_info(folder)
        check_model(info, model, folder)
        try:
            means = read_dict(f"ark:{committed_path(folder, MEANS + '.ark')}")
            counts = read_int_table(f"ark:{committed_path(folder, COUNTS)}")
        except SpkidError:
            raise
        except Exception as err:  # a truncated or corrupt ark
            raise SpkidError(f"{folder}: cannot read the speaker database ({type(err).__name__}: {err})") from None
        if set(means) != set(counts):
            raise SpkidError(f"{folder}: {MEANS}.ark and {COUNTS} list different speakers")
        db = cls(model)
        dim = info.get("embedding_dim")
        for name, mean in means.items():
            where = f"{folder}: speaker '{name}'"
            mean = np.asarray(mean, dtype=np.float32)
            if mean.ndim != 1:
                raise SpkidError(f"{where}: its mean in {MEANS}.ark is a {'x'.join(map(str, mean.shape))} matrix, "
                                 "not a vector")
            if isinstance(dim, int) and mean.shape[0] != dim:
                raise SpkidError(f"{where}: its mean has {mean.shape[0]} values, the database's embeddings {dim} "
                                 f"(model.json embedding_dim)")
            if dim is None or not isinstance(dim, int):
                dim = mean.shape[0]
            check_embedding(mean, f"{where}: its mean in {MEANS}.ark")
            if counts[name] <= 0:
                raise SpkidError(f"{where}: {COUNTS} gives {counts[name]} utterances (must be at least 1)")
            db._means[name], db._counts[name] = mean, int(counts[name])
        return db


def check_model(info: dict, model: Model, folder: Path) -> None:
    """SpkidError unless `model` is the one the database (its model.json `info`) was enrolled with."""
    want = info.get("model_sha256")
    if model.fingerprint == want:
        return
    same = isinstance(info.get("model"), str) and _same_model(info["model"], model.source)
    what = (f"the checkpoint of its model {model.source} has changed since enrollment (sha256 now "
            f"{model.fingerprint[:12]}..., enrolled with {str(want)[:12]}...; trained further?)" if same else
            f"enrolled with model {info.get('model')}, not {model.source}")
    raise SpkidError(f"{folder}: {what}; embeddings of different models cannot be compared: enroll again")


def _same_model(a: str, b: str) -> bool:
    if a == b:
        return True
    try:
        return Path(a).resolve() == Path(b).resolve()
    except OSError:
        return False


def _writable(folder: str | os.PathLike) -> Path:
    """`folder` as an absolute path, after a one-line SpkidError if a database cannot be written there."""
    from spkid.atomic import check_writable

    folder = Path(folder).absolute()
    if folder.exists() and not folder.is_dir():
        raise SpkidError(f"{folder}: is a file, not a speaker database folder")
    if folder.is_dir() and not os.access(folder, os.W_OK | os.X_OK):
        raise SpkidError(f"{folder}: cannot write the speaker database (no write permission)")
    check_writable(folder / MODEL_FILE, "speaker database")
    return folder
