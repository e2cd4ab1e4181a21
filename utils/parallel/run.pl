#!/usr/bin/env python3
"""run.pl: run a command (or N numbered jobs of it) on this machine, as Kaldi's utils/run.pl."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import kaldi_jobs  # noqa: E402

USAGE = """Usage: run.pl [options] [JOB=1:N] LOGFILE COMMAND ARGS...
 e.g.: run.pl --max-jobs-run 4 JOB=1:10 exp/log/foo.JOB.log echo job JOB
Runs COMMAND once, or once for each JOB index with JOB replaced by the index in LOGFILE and COMMAND,
on this machine, at most --max-jobs-run at a time (default: the number of CPUs). Each job's output
goes to its log, with the command line, start and end times and the exit code. Exits 1, naming the
failed jobs and their logs, when any job fails. Quote pipes as \\| to run them inside the job.
Options: --max-jobs-run N (or -tc N); --mem, --gpu, --num-threads, --config and any other
'--opt value' are accepted for compatibility with queue.pl/slurm.pl and ignored."""


def run_job(req: kaldi_jobs.Request, job: int, threads: int) -> int:
    log_file, command = req.log_file(job), req.job_command(job)
    kaldi_jobs.make_log_dir(log_file)
    with open(log_file, "w") as log:
        log.write(f"# {command}\n# Started at {kaldi_jobs.now()}\n#\n")
        log.flush()
        start = time.time()
        proc = subprocess.run(["bash", "-c", "set -o pipefail\n" + command], stdin=subprocess.DEVNULL,
                              stdout=log, stderr=subprocess.STDOUT)
        code = proc.returncode if proc.returncode >= 0 else 128 - proc.returncode
        log.write(f"# Accounting: time={int(time.time() - start)} threads={threads}\n"
                  f"# Ended (code {code}) at {kaldi_jobs.now()}\n")
    return code


def run(req: kaldi_jobs.Request) -> int:
    max_jobs = req.int_option("--max-jobs-run", os.cpu_count() or 1)
    threads = req.int_option("--num-threads", 1)
    jobs = req.jobs()
    with ThreadPoolExecutor(max_workers=min(max_jobs, len(jobs))) as pool:
        codes = dict(zip(jobs, pool.map(lambda job: run_job(req, job, threads), jobs)))
    return kaldi_jobs.report_failures("run.pl", req, codes)


if __name__ == "__main__":
    kaldi_jobs.main_wrapper("run.pl", USAGE, run)
