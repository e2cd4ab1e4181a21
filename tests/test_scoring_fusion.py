"""spkid.scoring.fusion: the scores of each system aligned on the trials (spkid score --fuse)."""
from __future__ import annotations

import numpy as np
import pytest

from spkid.errors import SpkidError
from spkid.scoring.fusion import aligned_scores
from spkid.scoring.metrics import read_scores


def test_a_trial_scored_twice_is_one_line_naming_file_and_line(tmp_path, run):
    """Bug 15 (issue 22): fusion took the last of two scores for a trial, silently."""
    (tmp_path / "trials").write_text("a b target\nc d nontarget\ne f target\n")
    (tmp_path / "A").write_text("a b 0.9\nc d 0.1\ne f 0.8\n")
    (tmp_path / "B").write_text("a b 0.7\nc d 0.2\ne f 0.6\na b -5\n")
    proc = run(["spkid", "score", "--trials", str(tmp_path / "trials"), "--fuse", str(tmp_path / "A"), "--fuse",
                str(tmp_path / "B"), "--output", str(tmp_path / "fused")], check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err and not (tmp_path / "fused").exists()
    assert f"{tmp_path / 'B'}:4: trial 'a b' is scored again (first at line 1)" in err


def test_trials_listed_twice_take_their_scores_in_order(tmp_path):
    (tmp_path / "s").write_text("a b 0.1\nc d 0.2\na b 0.3\n")
    table = read_scores(str(tmp_path / "s"))
    got = aligned_scores(["c", "a", "a"], ["d", "b", "b"], table)
    assert np.array_equal(got, [0.2, 0.1, 0.3])
    assert np.array_equal(aligned_scores(["a", "a"], ["b", "b"], read_scores(str(tmp_path / "s"))), [0.1, 0.3])
    with pytest.raises(SpkidError, match=r"s:3: trial 'a b' is scored again .* lists it once"):
        aligned_scores(["a", "c"], ["b", "d"], table, str(tmp_path / "s"))
