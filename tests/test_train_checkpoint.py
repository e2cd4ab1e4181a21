"""spkid.train.checkpoint: what a checkpoint write does when it is interrupted or the disk is full."""
from __future__ import annotations

import io

import pytest
import torch

from spkid.train import checkpoint as ckpt_module
from spkid.train.checkpoint import save_checkpoint


class _FailingWrites(io.RawIOBase):
    """A file whose third write raises `error` (Ctrl-C or a full disk half-way through torch.save)."""

    def __init__(self, handle, error: BaseException):
        self.handle, self.error, self.writes = handle, error, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 3:
            raise self.error
        return self.handle.write(data)

    def writable(self):
        return True

    def flush(self):
        self.handle.flush()

    def fileno(self):
        return self.handle.fileno()

    def close(self):
        self.handle.close()
        super().close()


def _failing_open_temp(monkeypatch, error: BaseException):
    real = ckpt_module.open_temp

    def open_temp(path, mode="wb"):
        handle, tmp = real(path, mode)
        return _FailingWrites(handle, error), tmp

    monkeypatch.setattr(ckpt_module, "open_temp", open_temp)


def _save(path):
    save_checkpoint(path, model_name="ge2e", model_config={}, feature_config={},
                    state_dict={"w": torch.zeros(256, 256)}, step=2)


def test_ctrl_c_while_a_checkpoint_is_written_is_a_clean_interrupt(tmp_path, monkeypatch):
    """Issue 22 UX 1: torch's zip writer turned Ctrl-C into `RuntimeError: [enforce fail at inline_container.cc]`."""
    folder = tmp_path / "checkpoints"
    _save(folder / "step-00000001.pt")
    before = (folder / "step-00000001.pt").read_bytes()
    _failing_open_temp(monkeypatch, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        _save(folder / "step-00000002.pt")
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000001.pt"]  # no temporary, the old one intact
    assert (folder / "step-00000001.pt").read_bytes() == before


def test_a_full_disk_names_the_checkpoint(tmp_path, monkeypatch):
    """Issue 22 UX 5: train, average-checkpoints and import-pretrained said `cannot write the output (No space
    left on device)` (or torch's `enforce fail` traceback), naming no file; they all write through here."""
    import errno

    from spkid.errors import SpkidError

    _failing_open_temp(monkeypatch, OSError(errno.ENOSPC, "No space left on device"))
    target = tmp_path / "checkpoints" / "step-00000002.pt"
    with pytest.raises(SpkidError) as info:
        _save(target)
    assert str(info.value) == f"{target}: cannot write the checkpoint (No space left on device)"
    assert list(target.parent.iterdir()) == []
