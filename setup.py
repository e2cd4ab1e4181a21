"""spkid: Kaldi-format compatible speaker-embedding toolset."""
from setuptools import find_packages, setup

setup(
    name="spkid",
    version="0.1.0",
    description="Kaldi-format compatible speaker embeddings: fbank, VAD, GE2E/Deep Speaker training, "
    "extraction and scoring",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["spkid", "spkid.*"]),
    install_requires=[
        "torch>=2.1,<3",
        "numpy>=1.23",
        "scipy>=1.9",
        "click>=8.1",
        "kaldiio>=2.18",
        "kaldi-native-fbank>=1.18",
        "lhotse>=1.20",
        "lilcom",  # lhotse needs it and does not declare it
        "urllib3",  # idem
        "soundfile>=0.12",
        "tqdm>=4.60",
        "pyyaml>=6.0",
        "tensorboard>=2.10",
    ],
    extras_require={
        "resemblyzer": ["resemblyzer>=0.1.3", "setuptools<81", "librosa>=0.9"],
        "plot": ["matplotlib>=3.5", "scikit-learn>=1.1"],
        "onnx": ["onnx>=1.15", "onnxruntime>=1.17"],  # spkid export --format onnx; running .onnx models
        "dev": ["pytest>=7", "pytest-xdist>=3", "ruff>=0.5", "imageio-ffmpeg>=0.4",  # ffmpeg for VoxCeleb2 m4a tests
                "onnx>=1.15", "onnxruntime>=1.17"],
    },
    entry_points={"console_scripts": ["spkid=spkid.cli:main"]},
)
