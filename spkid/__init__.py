"""spkid: a Kaldi-format compatible speaker-embedding toolset.

The Python API (torch is imported only when it is first used)::

    import spkid
    model = spkid.load_model("exp/ge2e")      # checkpoint, exp dir, .onnx, or a pretrained name
    score = model.similarity("a.wav", "b.wav")
"""

__version__ = "0.1.0"
__all__ = ["load_model", "Model", "Verification", "SpeakerDB", "SpkidError"]

# public name -> module defining it, imported on first access
_LAZY = {"load_model": "spkid.api", "Model": "spkid.api", "Verification": "spkid.api",
         "SpeakerDB": "spkid.enroll", "SpkidError": "spkid.errors"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spkid' has no attribute '{name}'")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
