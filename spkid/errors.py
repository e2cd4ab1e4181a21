"""Errors that reach the user as one line: what went wrong, and where (file, line, utterance)."""
from __future__ import annotations

import logging
from dataclasses import dataclass, field

logger = logging.getLogger("spkid")
# an utterance whose embedding is NaN or infinite (non-finite weights, or input the model cannot handle) failed
NON_FINITE = "the model gave a non-finite (NaN or infinite) embedding"


class SpkidError(Exception):
    """A user-facing error; the command line prints its message on one line and exits non-zero."""


def where(path: str, lineno: int | None = None) -> str:
    """Format a location as `path:line` (Kaldi and compilers style)."""
    return f"{path}:{lineno}" if lineno is not None else str(path)


@dataclass
class FailureLog:
    """Collects per-utterance failures: each is logged when it happens and summarised at the end."""

    what: str = "utterances"
    failures: list[tuple[str, str]] = field(default_factory=list)
    done: int = 0

    def fail(self, utt: str, reason: str) -> None:
        self.failures.append((utt, reason))
        logger.warning("utterance %s: %s", utt, reason)

    def ok(self) -> None:
        self.done += 1

    def __bool__(self) -> bool:  # true when something failed
        return bool(self.failures)

    def summary(self) -> str:
        text = f"done {self.done} {self.what}, failed {len(self.failures)}"
        if self.failures:
            shown = ", ".join(u for u, _ in self.failures[:5])
            more = " ..." if len(self.failures) > 5 else ""
            text += f" ({shown}{more})"
        return text

    def finish(self) -> None:
        """Log the summary; raise SpkidError when any item failed."""
        logger.info(self.summary())
        if self.failures:
            raise SpkidError(f"{len(self.failures)} of {self.done + len(self.failures)} {self.what} failed; "
                             f"first: {self.failures[0][0]}: {self.failures[0][1]}")
