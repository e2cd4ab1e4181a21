"""SpeakerDB: enrolled speakers as mean embeddings, stored the way Kaldi recipes keep them.

A database folder holds, as `ivector-mean spk2utt scp:xvector.scp ark,scp:spk_xvector.ark,spk_xvector.scp
ark,t:num_utts.ark` writes them:

- spk_xvector.ark / spk_xvector.scp: each speaker's mean embedding (binary float vectors; the scp
  holds the absolute path of the ark, so Kaldi tools read it from any folder);
- num_utts.ark: `<speaker> <number of utterances averaged>` (text);
- model.json: the model used (as given, and the sha256 of its checkpoint), checked on load so that
  embeddings of different models are never compared.

Enrolling more utterances of a speaker updates its mean with the stored count. Identification scores
a test embedding against every speaker mean by cosine; below the threshold (given, else the model's
calibrated one) the answer is None (unknown); with no threshold at all the best speaker is named (closed set).
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from spkid.api import Audio, Model, cosine, load_model
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
        embeddings = np.atleast_2d(np.asarray(embeddings, dtype=np.float64))
        if not len(embeddings):
            raise SpkidError(f"speaker '{name}': no utterances to enroll")
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
        if isinstance(items, (str, os.PathLike)):
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
        """Write the database folder (each file atomically)."""
        from spkid.atomic import atomic_write_text
        from spkid.kaldi.io import TableWriter
        from spkid.scoring.embeddings import write_int_table

        if not self._means:
            raise SpkidError("no speakers enrolled; nothing to save")
        folder = Path(folder).absolute()
        folder.mkdir(parents=True, exist_ok=True)
        with TableWriter(f"ark,scp:{folder / MEANS}.ark,{folder / MEANS}.scp") as writer:
            for name in sorted(self._means, key=str.encode):
                writer.write(name, self._means[name])
        write_int_table(f"ark,t:{folder / COUNTS}", {n: self._counts[n] for n in sorted(self._counts, key=str.encode)})
        source = self.model.source  # a pretrained name as it is, a path made absolute
        source = str(Path(source).absolute()) if Path(source).exists() else source
        info = {"format": DB_FORMAT, "model": source, "model_sha256": self.model.fingerprint,
                "speakers": len(self._means), "embedding_dim": int(next(iter(self._means.values())).shape[0])}
        atomic_write_text(folder / MODEL_FILE, json.dumps(info, indent=2) + "\n")
        return folder

    @staticmethod
    def read_info(folder: str | os.PathLike) -> dict:
        path = Path(folder) / MODEL_FILE
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise SpkidError(f"{path}: cannot read ({err.strerror}); not a speaker database?") from None
        except json.JSONDecodeError as err:
            raise SpkidError(f"{path}: not JSON ({err})") from None
        if not isinstance(info, dict) or info.get("format") != DB_FORMAT:
            raise SpkidError(f"{path}: not a spkid speaker database (format {DB_FORMAT})")
        return info

    @classmethod
    def load(cls, folder: str | os.PathLike, model: Model | None = None, device: str = "auto") -> SpeakerDB:
        """Read a database folder; `model` defaults to the one it was enrolled with, and must be that model."""
        from spkid.kaldi.io import read_dict
        from spkid.scoring.embeddings import read_int_table

        folder = Path(folder)
        info = cls.read_info(folder)
        if model is None:  # checked before it is loaded; never a TorchScript file (a database runs no code)
            from spkid.inference import database_source

            model = load_model(database_source(info, folder / MODEL_FILE), device)
        elif model.fingerprint != info.get("model_sha256"):
            raise SpkidError(f"{folder}: enrolled with model {info.get('model')}, not {model.source} "
                             "(embeddings of different models cannot be compared; enroll again)")
        try:
            means = read_dict(f"ark:{folder / MEANS}.ark")
            counts = read_int_table(f"ark:{folder / COUNTS}")
        except SpkidError:
            raise
        except Exception as err:  # a truncated or corrupt ark
            raise SpkidError(f"{folder}: cannot read the speaker database ({type(err).__name__}: {err})") from None
        if set(means) != set(counts):
            raise SpkidError(f"{folder}: {MEANS}.ark and {COUNTS} list different speakers")
        db = cls(model)
        for name, mean in means.items():
            db._means[name] = np.asarray(mean, dtype=np.float32).reshape(-1)
            db._counts[name] = int(counts[name])
        return db
