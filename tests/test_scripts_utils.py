"""utils/*: the Kaldi-named scripts, run as a Kaldi recipe runs them (subprocesses, LC_ALL=C)."""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from conftest import ROOT, make_real_dir

from spkid.kaldi.tables import read_text_table

UTILS = ROOT / "utils"
SCRIPTS = ["run.pl", "slurm.pl", "split_data.sh", "split_scp.pl", "fix_data_dir.sh", "validate_data_dir.sh",
           "subset_data_dir.sh", "combine_data.sh", "utt2spk_to_spk2utt.pl", "spk2utt_to_utt2spk.pl",
           "filter_scp.pl", "data/get_utt2dur.sh", "copy_data_dir.sh"]


@pytest.mark.parametrize("script", SCRIPTS)
def test_help_and_bad_arguments(run, script, tmp_path):
    path = UTILS / script
    assert os.access(path, os.X_OK)
    helped = run([str(path), "--help"], cwd=tmp_path, check=False)
    assert helped.returncode == 0
    assert b"sage" in helped.stdout + helped.stderr
    if script in ("utt2spk_to_spk2utt.pl", "spk2utt_to_utt2spk.pl"):
        bad = run([str(path), str(tmp_path / "missing")], cwd=tmp_path, check=False)
    else:
        bad = run([str(path)] + (["a", "b", "c", "d"] if script.endswith(".sh") else []), cwd=tmp_path,
                  check=False, input=b"")
    assert bad.returncode != 0


def test_validate_and_fix_scripts(run, tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data, per_spk=2)
    ok = run(["validate_data_dir.sh", "--no-text", "--no-feats", str(data)])
    assert b"Successfully validated" in ok.stdout
    lines = (data / "wav.scp").read_text().splitlines()
    (data / "wav.scp").write_text("\n".join(lines[:3] + lines[4:] + [lines[0]]) + "\n")
    bad = run(["validate_data_dir.sh", "--no-text", "--no-feats", str(data)], check=False)
    assert bad.returncode == 1
    assert re.search(rb"wav\.scp:\d+", bad.stderr) and b"utt2spk:4" in bad.stderr
    fixed = run(["fix_data_dir.sh", str(data)])
    assert b"kept 27 utterances out of 28" in fixed.stdout
    assert (data / ".backup" / "wav.scp").exists()
    run(["validate_data_dir.sh", "--no-text", "--no-feats", str(data)])
    # the same through the spkid command line
    assert b"successfully validated" in run(["spkid", "validate-data-dir", "--no-text", "--no-feats",
                                             str(data)]).stdout
    (data / "utt2spk").write_text((data / "utt2spk").read_text() + "zz-x zz\n")
    bad = run(["spkid", "validate-data-dir", "--no-text", "--no-feats", str(data)], check=False)
    assert bad.returncode == 1 and re.search(rb"utt2spk:28: utterance 'zz-x'", bad.stderr)
    assert b"kept 27 utterances out of 28" in run(["spkid", "fix-data-dir", str(data)]).stdout


def test_split_data_and_split_scp(run, tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data)
    run(["split_data.sh", str(data), "4"])
    run(["utils/split_data.sh", "--per-utt", str(data), "6"], cwd=ROOT)
    utt2spk = read_text_table(data / "utt2spk")
    for name, n in (("split4", 4), ("split6utt", 6)):
        got = [u for i in range(1, n + 1) for u in read_text_table(data / name / str(i) / "utt2spk")]
        assert sorted(got) == sorted(utt2spk)
    speakers = [set(read_text_table(data / "split4" / str(i) / "utt2spk").values()) for i in range(1, 5)]
    assert sum(map(len, speakers)) == len(set().union(*speakers)) == 14
    outs = [str(tmp_path / f"wav.{i}") for i in range(3)]
    run(["split_scp.pl", f"--utt2spk={data / 'utt2spk'}", str(data / "wav.scp"), *outs])
    parts = [Path(o).read_text() for o in outs]
    assert "".join(parts) == (data / "wav.scp").read_text()
    assert all(len({utt2spk[line.split()[0]] for line in p.splitlines()}) >= 4 for p in parts)
    one = run(["split_scp.pl", "-j", "3", "1", f"--utt2spk={data / 'utt2spk'}", str(data / "wav.scp")])
    assert one.stdout.decode() == parts[1]
    one = run(["split_scp.pl", "-j", "3", "3", "--one-based", str(data / "wav.scp")])
    assert len(one.stdout.splitlines()) == 46
    refused = run(["split_data.sh", str(data), "15"], check=False)
    assert refused.returncode == 1 and b"only 14 speakers" in refused.stderr


def test_filter_scp_and_spk2utt_round_trip(run, tmp_path):
    scp = tmp_path / "in.scp"
    scp.write_text("a 1 x\nb 2 y\nc 3 x\nd 4 z\n")
    ids = tmp_path / "ids"
    ids.write_text("c\na extra\n\nq\n")
    assert run(["filter_scp.pl", str(ids), str(scp)]).stdout == b"a 1 x\nc 3 x\n"
    assert run(["filter_scp.pl", "--exclude", str(ids), str(scp)]).stdout == b"b 2 y\nd 4 z\n"
    assert run(["filter_scp.pl", "-f", "3", "-", str(scp)], input=b"x\n").stdout == b"a 1 x\nc 3 x\n"
    assert run(f"cat {scp} | filter_scp.pl --exclude -f 2 <(echo 4)").stdout == b"a 1 x\nb 2 y\nc 3 x\n"
    assert run(["filter_scp.pl", "-f", "5", str(ids), str(scp)], check=False).returncode == 1

    utt2spk = b"s1-a s1\ns1-b s1\ns2-a s2\ns3-a s3\ns3-b s3\n"
    spk2utt = run(["utt2spk_to_spk2utt.pl"], input=utt2spk).stdout
    assert spk2utt == b"s1 s1-a s1-b\ns2 s2-a\ns3 s3-a s3-b\n"
    (tmp_path / "spk2utt").write_bytes(spk2utt)
    assert run(["spk2utt_to_utt2spk.pl", str(tmp_path / "spk2utt")]).stdout == utt2spk
    assert run("utt2spk_to_spk2utt.pl | spk2utt_to_utt2spk.pl", input=utt2spk).stdout == utt2spk
    assert run(["utt2spk_to_spk2utt.pl"], input=b"a b c\n", check=False).returncode == 1


def test_subset_and_combine_scripts(run, tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data)
    out = run(["subset_data_dir.sh", "--first", str(data), "12", str(tmp_path / "first")])
    assert b"reducing #utt from 140 to 12" in out.stdout
    run(["subset_data_dir.sh", "--per-spk", str(data), "3", str(tmp_path / "per")])
    assert len(read_text_table(tmp_path / "per" / "utt2spk")) == 42
    (tmp_path / "spk").write_text("p226\n")
    run(["subset_data_dir.sh", "--spk-list", str(tmp_path / "spk"), str(data), str(tmp_path / "p226")])
    assert set(read_text_table(tmp_path / "p226" / "utt2spk").values()) == {"p226"}
    run(["subset_data_dir.sh", "--last", str(data), "5", str(tmp_path / "last")])
    out = run(["combine_data.sh", str(tmp_path / "comb"), str(tmp_path / "p226"), str(tmp_path / "last")])
    assert b"combined utt2spk" in out.stdout
    assert len(read_text_table(tmp_path / "comb" / "utt2spk")) == 15
    run(["validate_data_dir.sh", "--no-text", "--no-feats", str(tmp_path / "comb")])
    dup = run(["combine_data.sh", str(tmp_path / "dup"), str(tmp_path / "first"), str(data)], check=False)
    assert dup.returncode == 1 and b"duplicate utterance" in dup.stderr
    bad = run(["subset_data_dir.sh", "--first", "--last", str(data), "3", str(tmp_path / "x")], check=False)
    assert bad.returncode == 1


def test_copy_data_dir(run, tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data, datasets=("vctk_mini",), per_spk=2)
    (data / "trials").write_text("a b target\n")
    run(["copy_data_dir.sh", str(data), str(tmp_path / "copy")])
    for name in ("wav.scp", "utt2spk", "spk2utt", "trials"):
        assert (tmp_path / "copy" / name).read_bytes() == (data / name).read_bytes()
    run(["validate_data_dir.sh", "--no-text", "--no-feats", str(tmp_path / "copy")])
    same = run(["copy_data_dir.sh", str(data), str(data)], check=False)
    assert same.returncode == 1 and b"same directory" in same.stderr


def test_get_utt2dur(run, tmp_path, shared_data):
    data = make_real_dir(tmp_path / "d", shared_data, datasets=("vctk_mini",), per_spk=2)
    out = run(["utils/data/get_utt2dur.sh", str(data)], cwd=ROOT)
    assert b"computed" in out.stdout
    durs = read_text_table(data / "utt2dur")
    assert list(durs) == list(read_text_table(data / "utt2spk")) and all(0.5 < float(d) < 20 for d in durs.values())
    again = run(["utils/data/get_utt2dur.sh", str(data)], cwd=ROOT)
    assert b"already exists" in again.stdout


# ---------------------------------------------------------------- parse_options.sh

OPTS_SCRIPT = """\
#!/usr/bin/env bash
nj=4
cmd=run.pl
use_gpu=false
fbank_config=conf/fbank.conf
help_message="Usage: opts.sh [options] <a> <b>"
. parse_options.sh || exit 1
echo "nj=$nj cmd=$cmd use_gpu=$use_gpu fbank_config=$fbank_config args=$*"
"""


@pytest.fixture
def opts_script(tmp_path):
    path = tmp_path / "opts.sh"
    path.write_text(OPTS_SCRIPT)
    path.chmod(0o755)
    return str(path)


def test_parse_options(run, tmp_path, opts_script):
    out = run([opts_script, "--nj", "8", "--cmd", "slurm.pl --mem 4G", "--use-gpu=true",
               "--fbank_config", "x.conf", "pos1", "--not-an-option"]).stdout.decode()
    assert out.strip() == "nj=8 cmd=slurm.pl --mem 4G use_gpu=true fbank_config=x.conf args=pos1 --not-an-option"
    assert run([opts_script, "a"]).stdout.decode().strip() == \
        "nj=4 cmd=run.pl use_gpu=false fbank_config=conf/fbank.conf args=a"
    conf = tmp_path / "my.conf"
    conf.write_text("nj=16\nuse_gpu=true\n")
    out = run([opts_script, "--config", str(conf), "--nj", "2", "a"]).stdout.decode()
    assert "nj=2 " in out and "use_gpu=true" in out  # command line overrides the config file
    helped = run([opts_script, "--help"])
    assert b"Usage: opts.sh [options] <a> <b>" in helped.stderr
    bad = run([opts_script, "--unknown", "1", "a"], check=False)
    assert bad.returncode == 1 and b"invalid option --unknown" in bad.stderr
    bad = run([opts_script, "--use-gpu", "yes", "a"], check=False)
    assert bad.returncode == 1 and b'expected "true" or "false"' in bad.stderr
    bad = run([opts_script, "--cmd", "", "a"], check=False)
    assert bad.returncode == 1 and b"empty argument to --cmd" in bad.stderr
    bad = run([opts_script, "--config", str(tmp_path / "missing.conf"), "a"], check=False)
    assert bad.returncode == 1
    assert run([opts_script, "--nj"], check=False).returncode == 1


def test_path_sh_from_recipe_dir(run):
    recipe = ROOT / "egs" / "mini" / "v1"
    out = run(["bash", "-c", 'env -i HOME="$HOME" PATH=/usr/bin:/bin bash -c '
               '". ./path.sh; command -v run.pl split_data.sh make_fbank.sh python3; echo $LC_ALL '
               '$PYTHONUNBUFFERED"'], cwd=recipe).stdout.decode().split()
    assert out[:3] == [str(ROOT / "utils" / "run.pl"), str(ROOT / "utils" / "split_data.sh"),
                       str(ROOT / "steps" / "make_fbank.sh")]
    assert out[3] == str(ROOT / ".venv" / "bin" / "python3") and out[4:] == ["C", "1"]
    for link in ("utils", "steps", "path.sh"):
        assert (recipe / link).is_symlink() and (recipe / link).resolve() == (ROOT / link).resolve()


# ---------------------------------------------------------------- run.pl / slurm.pl


def test_run_pl_jobs_logs_and_failure(run, tmp_path):
    out = run(["run.pl", "--mem", "4G", "--gpu", "1", "--num-threads", "2", "JOB=1:4", "log/t.JOB.log",
               "bash", "-c", "echo job JOB of t.JOB; [ JOB -ne 3 ]"], cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert b"job 3 failed (exit code 1), log is in log/t.3.log" in out.stderr
    assert b"1 / 4 failed, log is in log/t.*.log" in out.stderr
    for job in (1, 2, 4):
        assert f"job {job} failed".encode() not in out.stderr
    log = (tmp_path / "log" / "t.2.log").read_text().splitlines()
    assert log[0] == '# bash -c "echo job 2 of t.2; [ 2 -ne 3 ]"'
    assert log[1].startswith("# Started at ") and log[2] == "#" and log[3] == "job 2 of t.2"
    assert log[4] == "# Accounting: time=0 threads=2" and log[5].startswith("# Ended (code 0) at ")
    assert (tmp_path / "log" / "t.3.log").read_text().splitlines()[-1].startswith("# Ended (code 1) at")
    single = run(["run.pl", "one.log", "echo", "a", "b", "|", "tr", "a", "x"], cwd=tmp_path)  # shell: \|
    assert single.returncode == 0 and "x b\n" in (tmp_path / "one.log").read_text()
    failed = run(["run.pl", "two.log", "false"], cwd=tmp_path, check=False)
    assert failed.returncode == 1 and b"job failed, log is in two.log" in failed.stderr
    # a failure inside a pipeline is a failure (pipefail)
    assert run(["run.pl", "p.log", "false", "|", "cat"], cwd=tmp_path, check=False).returncode == 1
    assert run(["run.pl", "JOB=3:1", "x.JOB.log", "true"], cwd=tmp_path, check=False).returncode == 1
    one_log = run(["run.pl", "JOB=1:2", "x.log", "true"], cwd=tmp_path, check=False)
    assert one_log.returncode == 1 and b"just one log file" in one_log.stderr


def _max_overlap(stamps: Path) -> int:
    events = []
    for line in stamps.read_text().split():
        job, start, end = line.split(",")
        events += [(float(start), 1), (float(end), -1)]
    level = peak = 0
    for _, step in sorted(events, key=lambda e: (e[0], e[1])):
        level += step
        peak = max(peak, level)
    return peak


@pytest.mark.parametrize("max_jobs", [1, 2])
def test_run_pl_max_jobs_run(run, tmp_path, max_jobs):
    stamps = tmp_path / "stamps"
    job = f's=$(date +%s.%N); sleep 0.4; echo "JOB,$s,$(date +%s.%N)" >> {stamps}'
    run(["run.pl", "--max-jobs-run", str(max_jobs), "JOB=1:4", "log/m.JOB.log", "bash", "-c", job], cwd=tmp_path)
    assert len(stamps.read_text().split()) == 4
    assert _max_overlap(stamps) == max_jobs


FAKE_SBATCH = """\
#!/usr/bin/env python3
# A fake sbatch: records its arguments, runs each array task of the job script here, in order.
import os, re, subprocess, sys
args = sys.argv[1:]
with open(os.environ["FAKE_SBATCH_LOG"], "a") as log:
    log.write(" ".join(args) + "\\n")
if os.environ.get("FAKE_SBATCH_BROKEN"):
    sys.exit("sbatch: error: invalid partition specified")
array = [a for a in args if a.startswith("--array=")][0][8:]
first, last = map(int, re.fullmatch(r"(\\d+)-(\\d+)(%\\d+)?", array).group(1, 2))
output = [a for a in args if a.startswith("--output=")][0][9:]
worst = 0
for task in range(first, last + 1):
    env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task), SLURM_ARRAY_JOB_ID="77")
    with open(output.replace("%a", str(task)), "w") as out:
        worst = max(worst, subprocess.run(["bash", args[-1]], env=env, stdout=out, stderr=out).returncode)
print("77")
sys.exit(worst)
"""


@pytest.fixture
def fake_slurm(tmp_path, monkeypatch):
    bindir = tmp_path / "fakebin"
    bindir.mkdir()
    (bindir / "sbatch").write_text(FAKE_SBATCH)
    (bindir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_SBATCH_LOG", str(tmp_path / "sbatch.args"))
    monkeypatch.setenv("SLURM_PL_SYNC_WAIT", "0")
    return tmp_path / "sbatch.args"


def test_slurm_pl(run, tmp_path, fake_slurm):
    work = tmp_path / "work"
    work.mkdir()
    out = run(["slurm.pl", "--mem", "3G", "--num-threads", "2", "--gpu", "1", "--max-jobs-run", "2",
               "--time", "1:00:00", "JOB=1:3", "exp/log/s.JOB.log", "bash", "-c",
               "echo task JOB; pwd; [ JOB -ne 2 ]"], cwd=work, check=False)
    assert out.returncode == 1
    assert b"job 2 failed (exit code 1), log is in exp/log/s.2.log" in out.stderr
    assert b"1 / 3 failed, log is in exp/log/s.*.log" in out.stderr
    args = fake_slurm.read_text().split()
    for expected in ("--wait", "--array=1-3%2", "--mem-per-cpu=3G", "--cpus-per-task=2", "--gres=gpu:1",
                     "--time=1:00:00"):
        assert expected in args
    log = (work / "exp" / "log" / "s.3.log").read_text().splitlines()
    assert log[0] == '# bash -c "echo task 3; pwd; [ 3 -ne 2 ]"'
    assert "task 3" in log and str(work) in log and log[-1].startswith("# Ended (code 0)")
    ok = run(["slurm.pl", "exp/log/one.log", "echo", "hello"], cwd=work)
    assert ok.returncode == 0 and "hello" in (work / "exp" / "log" / "one.log").read_text()


def test_slurm_pl_sbatch_failure(run, tmp_path, fake_slurm, monkeypatch):
    monkeypatch.setenv("FAKE_SBATCH_BROKEN", "1")
    out = run(["slurm.pl", "JOB=1:2", "log/b.JOB.log", "true"], cwd=tmp_path, check=False)
    assert out.returncode == 1
    assert b"sbatch failed" in out.stderr and b"invalid partition" in out.stderr
    assert b"job 1 failed (no exit status" in out.stderr


@pytest.mark.parametrize("script", ["run.pl", "slurm.pl"])
@pytest.mark.parametrize("log", ["afile/x/j.log", "afile/j.JOB.log"])
def test_log_path_below_a_regular_file_is_one_line(run, tmp_path, fake_slurm, script, log):
    """Issue 22 UX 1: FileExistsError / NotADirectoryError tracebacks."""
    (tmp_path / "afile").write_text("a file\n")
    out = run([script, *(["JOB=1:2"] if "JOB" in log else []), log, "true"], cwd=tmp_path, check=False)
    err = out.stderr.decode()
    assert out.returncode == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"{script}: afile/") and "is a regular file, not a folder" in err
