#!/usr/bin/env python3
"""slurm.pl: run a command (or N numbered jobs of it) on a Slurm cluster; the interface of run.pl."""
from __future__ import annotations

import os
import shlex
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import kaldi_jobs  # noqa: E402

USAGE = """Usage: slurm.pl [options] [JOB=1:N] LOGFILE COMMAND ARGS...
 e.g.: slurm.pl --mem 4G --num-threads 2 JOB=1:10 exp/log/foo.JOB.log echo job JOB
Submits ONE job array (sbatch --array=1-N --wait) whose task i runs COMMAND with JOB replaced by i,
waits until every task has ended, and exits 1 naming the failed jobs and their logs if any failed
(a task that left no exit status, e.g. killed for time or memory, counts as failed). The logs are
written as run.pl writes them. The array's job script and Slurm's own output are in LOGDIR/q/.
The jobs run in the current directory, after sourcing ./path.sh when there is one.
Options mapped to sbatch:
  --max-jobs-run N -> --array=1-N%N (at most N tasks at once)   --num-threads N -> --cpus-per-task=N
  --mem SIZE -> --mem-per-cpu=SIZE (as Kaldi's slurm.conf)       --gpu N -> --gres=gpu:N (N > 0)
  --time T -> --time=T   --partition P / -p P -> --partition=P   --account A / -A A -> --account=A
  --qos Q -> --qos=Q.    --config, -V, -l, -sync, -pe (Grid Engine) are ignored; other --opt value
  are passed on as --opt=value. Environment: SLURM_PL_SBATCH_OPTS (more sbatch options, split as
  the shell splits words); SLURM_PL_SYNC_WAIT (seconds to wait for exit statuses to appear on a
  network file system after sbatch returns; default 60)."""

PASS_ON = {"--time": "--time", "--partition": "--partition", "-p": "--partition", "--account": "--account",
           "-A": "--account", "--qos": "--qos"}
IGNORED = ("--config", "-l", "-sync", "-pe", "--max-jobs-run", "--num-threads", "--mem", "--gpu", "-q")


def sbatch_options(req: kaldi_jobs.Request) -> list[str]:
    opts = []
    threads = req.int_option("--num-threads", 1)
    if threads > 1:
        opts.append(f"--cpus-per-task={threads}")
    if req.options.get("--mem"):
        opts.append(f"--mem-per-cpu={req.options['--mem']}")
    gpus = req.int_option("--gpu", 0)
    if gpus > 0:
        opts.append(f"--gres=gpu:{gpus}")
    for name, value in req.options.items():
        if name in PASS_ON:
            opts.append(f"{PASS_ON[name]}={value}")
        elif name not in IGNORED and name.startswith("--"):
            opts.append(f"{name}={value}")
    return opts + shlex.split(os.environ.get("SLURM_PL_SBATCH_OPTS", ""))


def job_script(req: kaldi_jobs.Request, status_dir: str, threads: int) -> str:
    """The bash script of the array: task i writes its log as run.pl does and its exit status."""
    lines = ["#!/usr/bin/env bash", f"cd {shlex.quote(os.getcwd())}", "[ -f ./path.sh ] && . ./path.sh",
             f'job=${{SLURM_ARRAY_TASK_ID:-{req.start}}}', 'case "$job" in']
    for job in req.jobs():
        log, command = req.log_file(job), req.job_command(job)
        lines += [f"  {job}) log={shlex.quote(log)}", f"     cmd={shlex.quote(command)} ;;"]
    lines += ['  *) echo "slurm.pl: no job $job in this array" >&2; exit 1 ;;', "esac",
              f"status={shlex.quote(status_dir)}/status.$job",
              'rm -f "$status"; mkdir -p "$(dirname "$log")"',
              'printf "# %s\\n# Running on %s\\n# Started at %s\\n#\\n" "$cmd" "$(uname -n)" "$(date)" \\',
              '  > "$log"',
              "start=$(date +%s)",
              'bash -c "set -o pipefail"$\'\\n\'"$cmd" < /dev/null >> "$log" 2>&1',
              "code=$?",
              f'echo "# Accounting: time=$(( $(date +%s) - start )) threads={threads}" >> "$log"',
              'echo "# Ended (code $code) at $(date)" >> "$log"',
              'echo $code > "$status.tmp" && mv "$status.tmp" "$status"',
              "exit $code", ""]
    return "\n".join(lines)


def run(req: kaldi_jobs.Request) -> int:
    max_jobs = req.int_option("--max-jobs-run", 0) if "--max-jobs-run" in req.options else 0
    threads = req.int_option("--num-threads", 1)
    first_log = req.log_file(req.start)
    qdir = os.path.join(os.path.dirname(first_log) or ".", "q")
    name = os.path.basename(req.log_glob()).replace("*", "JOB")
    name = name[:-4] if name.endswith(".log") else name
    status_dir = os.path.abspath(os.path.join(qdir, name + ".status"))
    try:
        os.makedirs(status_dir, exist_ok=True)
    except OSError as err:
        raise kaldi_jobs.UsageError(f"{first_log}: cannot create its queue folder {qdir} "
                                    f"({kaldi_jobs.describe(err)})") from None
    for job in req.jobs():
        kaldi_jobs.make_log_dir(req.log_file(job))
        for stale in (req.log_file(job), os.path.join(status_dir, f"status.{job}")):
            if os.path.exists(stale):
                os.unlink(stale)
    script = os.path.join(qdir, name + ".sh")
    with open(script, "w") as handle:
        handle.write(job_script(req, status_dir, threads))
    os.chmod(script, 0o755)
    array = f"{req.start}-{req.end}" + (f"%{max_jobs}" if max_jobs else "")
    sbatch = ["sbatch", "--parsable", "--wait", f"--array={array}", f"--job-name={name}",
              f"--output={os.path.abspath(os.path.join(qdir, name))}.%a.out", *sbatch_options(req), script]
    try:
        proc = subprocess.run(sbatch, stdin=subprocess.DEVNULL, capture_output=True, text=True)
    except OSError as err:
        raise kaldi_jobs.UsageError(f"cannot run sbatch: {err.strerror}") from None
    codes = read_statuses(req, status_dir, float(os.environ.get("SLURM_PL_SYNC_WAIT", "60")))
    if all(code is None for code in codes.values()) and proc.returncode != 0:
        print(f"slurm.pl: sbatch failed (exit code {proc.returncode}): {' '.join(map(shlex.quote, sbatch))}\n"
              f"{proc.stderr.strip()}", file=sys.stderr)
    return kaldi_jobs.report_failures("slurm.pl", req, codes)


def read_statuses(req: kaldi_jobs.Request, status_dir: str, wait: float) -> dict:
    """Each job's exit code, or None when it left none (waiting up to `wait` s for slow file systems)."""
    deadline = time.time() + wait
    while True:
        codes = {}
        for job in req.jobs():
            try:
                with open(os.path.join(status_dir, f"status.{job}")) as handle:
                    codes[job] = int(handle.read().strip())
            except (OSError, ValueError):
                codes[job] = None
        if all(code is not None for code in codes.values()) or time.time() >= deadline:
            return codes
        time.sleep(min(5.0, max(0.1, deadline - time.time())))


if __name__ == "__main__":
    kaldi_jobs.main_wrapper("slurm.pl", USAGE, run)
