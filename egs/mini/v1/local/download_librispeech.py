#!/usr/bin/env python3
"""Download Mini LibriSpeech (dev-clean-2, about 126 MB) through lhotse into TARGET_DIR.

Usage: local/download_librispeech.py TARGET_DIR   (prints the folder holding <speaker>/<chapter>/*.flac)
"""
import sys
from pathlib import Path

from lhotse.recipes import download_librispeech

if len(sys.argv) != 2:
    sys.exit(__doc__)
target = Path(sys.argv[1])
download_librispeech(target, dataset_parts=["dev-clean-2"])
print(target / "LibriSpeech" / "dev-clean-2")
