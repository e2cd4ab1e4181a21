"""Shared code of utils/run.pl and utils/slurm.pl (Kaldi's job runners): arguments, command, logs.

Standard library only: these run under any python3 >= 3.7, also on cluster nodes without the venv.

    run.pl [options] [JOB=1:N] LOGFILE COMMAND ARGS...

JOB (any name matching [A-Za-z_][A-Za-z0-9_]*) is replaced by the job index in LOGFILE and in the
command, as plain text (as Kaldi does). The command's arguments are joined as Kaldi joins them: an
argument without whitespace is used as is (so `\\|` on the caller's command line makes a pipe), one
with whitespace is quoted; the line runs under `bash -c` with pipefail. Each log holds the command,
start time, the job's output, then `# Accounting: time=S threads=T` and `# Ended (code C) at DATE`.
"""
from __future__ import annotations

import errno
import os
import re
import sys
import time

FLAG_OPTIONS = ("-V",)  # the only switch without a value (Grid Engine's); all others take one
_JOB_RANGE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+):(\d+)$")
_JOB_ONE = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=(\d+)$")


class UsageError(Exception):
    pass


class Request:
    """A parsed command line: options, job variable and range, log file pattern and command line."""

    def __init__(self) -> None:
        self.options: dict[str, str] = {}
        self.job_var: str | None = None
        self.start = self.end = 1
        self.log_pattern = ""
        self.command = ""

    def jobs(self) -> list[int]:
        return list(range(self.start, self.end + 1))

    def substitute(self, text: str, job: int) -> str:
        return text.replace(self.job_var, str(job)) if self.job_var else text

    def log_file(self, job: int) -> str:
        return self.substitute(self.log_pattern, job)

    def job_command(self, job: int) -> str:
        return self.substitute(self.command, job)

    def log_glob(self) -> str:
        return self.log_pattern.replace(self.job_var, "*") if self.job_var else self.log_pattern

    def int_option(self, name: str, default: int) -> int:
        value = self.options.get(name)
        if value is None:
            return default
        if not value.isdigit() or int(value) < (1 if name == "--max-jobs-run" else 0):
            raise UsageError(f"invalid value '{value}' for {name}")
        return int(value)


def join_command(args: list[str]) -> str:
    """Join arguments into one bash line as Kaldi's run.pl does."""
    words = []
    for arg in args:
        if re.fullmatch(r"\S+", arg):
            words.append(arg)
        elif '"' in arg:
            words.append(f"'{arg}'")
        else:
            words.append(f'"{arg}"')
    return " ".join(words)


def parse(argv: list[str]) -> Request:
    """Parse `[options] [JOB=a:b] [options] LOGFILE COMMAND...`; raise UsageError when malformed."""
    req = Request()
    args = list(argv)
    while len(args) >= 2:
        arg = args[0]
        if _JOB_RANGE.match(arg) or _JOB_ONE.match(arg):
            if req.job_var is not None:
                raise UsageError(f"a second job range '{arg}'")
            m = _JOB_RANGE.match(arg) or _JOB_ONE.match(arg)
            req.job_var, req.start = m.group(1), int(m.group(2))
            req.end = int(m.group(3)) if m.lastindex == 3 else req.start
            if req.end < req.start:
                raise UsageError(f"invalid job range {arg}")
            args.pop(0)
        elif re.match(r"^[A-Za-z_][A-Za-z0-9_]*=.*:", arg):
            raise UsageError(f"invalid job range {arg} (expected e.g. JOB=1:10)")
        elif arg in FLAG_OPTIONS:
            args.pop(0)
        elif arg.startswith("-"):  # as Kaldi: every other switch takes a value
            name, eq, value = arg.partition("=")
            if not eq:
                if len(args) < 2:
                    raise UsageError(f"option {name} needs a value")
                value = args.pop(1)
            req.options["--max-jobs-run" if name == "-tc" else name] = value
            args.pop(0)
        else:
            break
    if len(args) < 2:
        raise UsageError("need a log file and a command")
    req.log_pattern = args[0]
    req.command = join_command(args[1:])
    if req.job_var is not None and req.end > req.start and req.job_var not in req.log_pattern:
        raise UsageError(f"you are trying to run a parallel job but you are putting the output into just "
                         f"one log file ({req.log_pattern})")
    return req


def now() -> str:
    return time.strftime("%a %b %d %H:%M:%S %Z %Y")


def report_failures(prog: str, req: Request, codes: dict[int, int | None]) -> int:
    """Print which jobs failed (None: no exit status came back) and return the exit status."""
    failed = [job for job, code in codes.items() if code != 0]
    if not failed:
        return 0
    for job in failed:
        why = "no exit status (killed?)" if codes[job] is None else f"exit code {codes[job]}"
        print(f"{prog}: job {job} failed ({why}), log is in {req.log_file(job)}", file=sys.stderr)
    if req.job_var is None:
        print(f"{prog}: job failed, log is in {req.log_pattern}", file=sys.stderr)
    else:
        print(f"{prog}: {len(failed)} / {len(codes)} failed, log is in {req.log_glob()}", file=sys.stderr)
    return 1


def make_log_dir(log_file: str) -> None:
    folder = os.path.dirname(log_file)
    if folder:
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as err:
            raise UsageError(f"{log_file}: cannot create its folder {folder} ({describe(err)})") from None


def describe(err: OSError) -> str:
    """An OSError in words, naming what it names: `not a directory: a/b`, or a full disk."""
    text = (err.strerror or type(err).__name__).lower()
    if err.errno in (errno.EEXIST, errno.ENOTDIR):  # a part of the path is a file
        text = "a part of the path is a regular file, not a folder"
    return f"{text}: {err.filename}" if err.filename else text


def main_wrapper(prog: str, usage: str, run) -> None:
    """Parse sys.argv, print usage on --help (exit 0) or bad arguments (exit 1), run, exit."""
    argv = sys.argv[1:]
    if not argv or argv[0] in ("-h", "--help"):
        print(usage, file=sys.stderr)
        sys.exit(0 if argv else 1)
    try:
        req = parse(argv)
    except UsageError as err:
        print(f"{prog}: {err}\n{usage}", file=sys.stderr)
        sys.exit(1)
    try:
        sys.exit(run(req))
    except UsageError as err:
        print(f"{prog}: {err}", file=sys.stderr)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except OSError as err:  # a log or queue folder that cannot be written: one line, no traceback
        print(f"{prog}: {describe(err)}", file=sys.stderr)
        sys.exit(1)
