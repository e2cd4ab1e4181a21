"""Corpus recipes: lhotse manifests and Kaldi data dirs for the corpora spkid's egs/ recipes use.

`prepare_corpus` (spkid/recipes/prepare.py) runs lhotse's own recipe for a corpus and writes its
manifests and a Kaldi data dir per part; `spkid.recipes.trials` converts VoxCeleb1 trial lists.
"""
from __future__ import annotations

from spkid.recipes.corpus import Corpus
from spkid.recipes.librispeech import CORPUS as LIBRISPEECH
from spkid.recipes.mandarin import AIDATATANG, MAGICDATA
from spkid.recipes.vctk import CORPUS as VCTK
from spkid.recipes.voxceleb import VOXCELEB1, VOXCELEB2

CORPORA: dict[str, Corpus] = {c.name: c for c in (LIBRISPEECH, VOXCELEB1, VOXCELEB2, AIDATATANG, MAGICDATA, VCTK)}

__all__ = ["CORPORA", "Corpus"]
