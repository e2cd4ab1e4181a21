# Source me:  . ./path.sh   (from the repo root, or from egs/<corpus>/v1 through its path.sh symlink)
# Puts the repo's utils/, steps/ and .venv/bin first on PATH, and sets what Kaldi recipes expect.
SPKID_ROOT="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")" && pwd)"
export SPKID_ROOT
export PATH="$SPKID_ROOT/utils:$SPKID_ROOT/steps:$SPKID_ROOT/.venv/bin:$PATH"
export LC_ALL=C
export PYTHONUNBUFFERED=1
