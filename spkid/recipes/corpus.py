"""A corpus recipe: where lhotse expects the corpus, how to check it, load it and download it."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from spkid.errors import SpkidError

# part name -> (RecordingSet, SupervisionSet) with lhotse's own ids
Loaded = dict[str, tuple]


@dataclass(frozen=True)
class Corpus:
    """One corpus: `load` runs lhotse's recipe, `check` first names anything missing from the layout."""

    name: str  # command argument and speaker-id prefix
    parts: tuple[str, ...]  # the parts `--parts` accepts
    layout: str  # the expected layout, for help and errors
    resolve: Callable[[Path], Path]  # the directory given -> the one lhotse's prepare function reads
    check: Callable[[Path, list[str]], None]  # raise SpkidError naming what is missing or malformed
    load: Callable[..., Loaded]  # (root, parts, num_jobs, **options) -> part -> manifests
    lhotse_function: str  # for error messages
    download: Callable[[Path, list[str], str | None], None] | None = None  # (target, parts, mirror)
    default_parts: tuple[str, ...] | None = None  # None: the parts present on disk
    present_parts: Callable[[Path], list[str]] | None = None
    genders: Callable[[Path], dict[str, str]] | None = None  # corpus speaker -> m/f from metadata
    options: tuple[str, ...] = field(default=())  # extra keyword options load() takes


def require_dir(corpus: str, path: Path, what: str) -> None:
    if not path.is_dir():
        raise SpkidError(f"{corpus}: no directory {path} ({what})")


def require_file(corpus: str, path: Path, what: str) -> None:
    if not path.is_file():
        raise SpkidError(f"{corpus}: no file {path} ({what})")


def first_missing(corpus: str, missing: list[Path], what: str) -> None:
    """Error naming the first of the missing files, if any."""
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise SpkidError(f"{corpus}: no file {missing[0]}{more}: {what}")
