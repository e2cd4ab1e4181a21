"""How the calibrations shipped with pretrained models are fitted (spkid.pretrained's *_CALIBRATION numbers):
`python -m spkid.scoring.dev_calibration MODEL CORPUS` prints the calibration as JSON."""
from __future__ import annotations

import os
import sys
from pathlib import Path


def fit_dev_calibration(model: str | os.PathLike, corpus: str | os.PathLike, operating_point: str = "eer"):
    """How a shipped calibration is fitted: every utterance of every speaker of `corpus`
    (<speaker>/<utt>.flac|wav), all pairs scored by cosine, `fit_calibration` at `operating_point`."""
    import itertools

    import numpy as np

    from spkid.api import load_model
    from spkid.scoring.calibration import fit_calibration

    files = [(spk.name, f) for spk in sorted(p for p in Path(corpus).iterdir() if p.is_dir())
             for f in sorted(spk.iterdir()) if f.suffix in (".flac", ".wav")]
    emb = load_model(model, device="cpu").embed_batch([f for _, f in files])
    pairs = list(itertools.combinations(range(len(files)), 2))
    scores = np.array([float(emb[i] @ emb[j]) for i, j in pairs])
    labels = np.array([files[i][0] == files[j][0] for i, j in pairs])
    return fit_calibration(scores, labels, operating_point)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m spkid.scoring.dev_calibration MODEL CORPUS", file=sys.stderr)
        return 2
    import json
    from dataclasses import asdict

    print(json.dumps(asdict(fit_dev_calibration(argv[0], argv[1])), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
