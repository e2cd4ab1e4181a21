"""Every utterance given to extraction ends embedded or failed (reliability bug 16): a network without
parameters embeds (its device is not found with `next(model.parameters())`), and an extraction pipeline that
stops early reports the utterances it never returned as failures instead of "done 0, failed 0", exit 0."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from spkid.errors import FailureLog, SpkidError
from spkid.extract import Utterance, iter_embeddings, write_embeddings
from spkid.inference import Embedder
from spkid.models.windows import embed_frames

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # conftest: one intra-op thread


class NoParameters(torch.nn.Module):
    """Weights as a plain tensor attribute, as in an exported TorchScript module that holds no nn.Parameter."""

    def __init__(self, dim: int = 4, out: int = 3):
        super().__init__()
        self.w = torch.randn(dim, out, generator=torch.Generator().manual_seed(0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(1) @ self.w


@pytest.mark.parametrize("scheme", [{"scheme": "full"}, {"scheme": "overlap", "window_frames": 5, "overlap": 0.5}])
def test_a_network_without_parameters_embeds(scheme):
    feats = [np.random.default_rng(i).standard_normal((12, 4)).astype(np.float32) for i in range(3)]
    emb = embed_frames(NoParameters(), feats, scheme)
    assert emb.shape == (3, 3) and np.allclose(np.linalg.norm(emb, axis=1), 1.0)


class StopsEarly(Embedder):
    """An embedder whose network raises StopIteration (what `next(model.parameters())` did)."""

    def embed_features(self, feats_list, batch_size=256):
        raise StopIteration


def test_an_extraction_that_stops_early_fails_the_rest(shared_data, tmp_path):
    from spkid.features.frontend import build_frontend
    from spkid.kaldi.audio import AudioItem

    files = sorted((shared_data / "vctk_mini").glob("*/*.flac"))[:3]
    utts = [Utterance(f"u{i}", audio=AudioItem(f"u{i}", str(f))) for i, f in enumerate(files)]
    frontend = build_frontend({"type": "kaldi-fbank", "num_mel_bins": 4, "dither": 0.0})
    embedder = StopsEarly(NoParameters(), frontend, {"scheme": "full"}, torch.device("cpu"))
    # CPU workers: the StopIteration escapes a worker and ends the DataLoader as if it were done
    results = list(iter_embeddings(utts, embedder, num_workers=2))
    assert [u.utt for u, _, _ in results] == ["u0", "u1", "u2"]
    assert all(emb is None and "extraction ended before this utterance" in err for _, emb, err in results)
    failures = FailureLog()
    assert write_embeddings(utts, embedder, f"ark,t:{tmp_path}/e.txt", None, failures, num_workers=2) == 0
    assert len(failures.failures) == 3 and failures.done == 0
    with pytest.raises(SpkidError, match="3 of 3 utterances failed"):
        failures.finish()  # the command exits 1
