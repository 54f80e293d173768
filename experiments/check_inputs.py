"""A sweep of bad command lines: each must end in exit code 2 and one ``error:`` line, never a traceback.

    python -m experiments.check_inputs              # every case, two at a time
    python -m experiments.check_inputs -k seeds     # the cases whose name holds "seeds"

Each case runs as its own ``python -m experiments.*`` process (the tiny-random pair, temporary
files and directories, W&B disabled unless the case is about W&B) and is refused before any
training or recording. The table shows each case's exit code, its ``error:`` line (argparse's
own errors print a usage line first) and whether a traceback appeared; the exit code is 1 when any
case gave a traceback, an exit code other than 2, no ``error:`` line or more than one, or (train)
left a run directory behind. ``tests/experiments/test_bad_input.py`` runs the same cases.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRAIN = ("experiments.train", "--pair", "tiny-random", "--wandb-mode", "disabled", "--no-progress")
ARB = (*TRAIN, "--env", "arbitration", "--runs-dir", "{tmp}/runs")
RECORD = ("experiments.record_traces", "--pair", "tiny-random", "--n-prompts", "2", "--max-new-tokens", "4")
RECORD_ARB = ("experiments.record_traces", "--env", "arbitration", "--pair", "tiny-random", "--n-items", "2")
BENCH_ENV = ("experiments.benchmark", "env", "--traces", "{tmp}/tiny.npz")
NO_RAY = {"PYTHONPATH": "{tmp}/no-ray"}  # its sitecustomize hides an installed ray (PYTHONPATH entries go first)


@dataclass(frozen=True)
class Case:
    """One bad command line: ``python -m ARGV`` (``{tmp}`` is the sweep's temporary directory)."""

    name: str
    argv: tuple[str, ...]
    expect: str  # a fragment of the error line
    env: dict[str, str] = field(default_factory=dict)  # extra environment ("" removes a variable)


CASES = [
    Case("resume-without-checkpoints", ("experiments.train", "--resume", "{tmp}/run"), "no checkpoints for stage"),
    Case("duplicate-seeds", (*ARB, "--seeds", "0", "0"), "--seeds repeats 0"),
    Case("eval-items-negative", (*ARB, "--eval-items", "-1"), "--eval-items must be 0"),
    Case("eval-items-one", (*ARB, "--eval-items", "1"), "a paired interval needs two items"),
    Case("train-threads-zero", (*ARB, "--threads", "0"), "--threads: must be >= 1"),
    Case("record-threads-negative", (*RECORD, "--threads", "-2"), "--threads: must be >= 1"),
    Case("train-device-tpu", (*ARB, "--device", "tpu"), "unknown device 'tpu'"),
    Case(
        "train-cost-family-unknown",
        (*TRAIN, "--env", "draft-verify", "--runs-dir", "{tmp}/runs", "--cost-family", "tpu"),
        "unknown cost family 'tpu'; choose one of calibrated",
    ),
    Case(
        "transfer-family-unknown",
        ("experiments.benchmark", "transfer", "--pair", "tiny-random", "--family", "tpu"),
        "unknown cost family 'tpu'",
    ),
    Case(
        "transfer-test-profile-malformed",
        ("experiments.benchmark", "transfer", "--pair", "tiny-random", "--test-profile", "f32"),
        "--test-profile 'f32': pass NAME=PATH.json",
    ),
    Case("train-cost-family-arbitration", (*ARB, "--cost-family", "gpu"), "--cost-family draws DraftVerify's"),
    Case("record-device-tpu", (*RECORD, "--device", "tpu", "--out", "{tmp}/t.npz"), "unknown device 'tpu'"),
    Case(
        "evaluate-device-tpu",
        (
            "experiments.evaluate",
            "--env",
            "arbitration",
            "--policy",
            "{tmp}/run",
            "--pair",
            "tiny-random",
            "--device",
            "tpu",
        ),
        "unknown device 'tpu'",
    ),
    Case("config-wrong-type", (*ARB, "--config", "{tmp}/type.yaml"), "n_steps must be an integer"),
    Case("config-top-level-list", (*ARB, "--config", "{tmp}/list.yaml"), "top level must be a mapping"),
    Case("config-unknown-env-kwarg", (*ARB, "--config", "{tmp}/kwarg.yaml"), "unknown env_kwargs key(s) ['widht']"),
    Case("prompts-line-is-a-list", (*RECORD, "--prompts", "{tmp}/list.jsonl", "--out", "{tmp}/t.npz"), "list.jsonl:2"),
    Case(
        "prompts-category-not-a-string",
        (*RECORD, "--prompts", "{tmp}/category.jsonl", "--out", "{tmp}/t.npz"),
        "category.jsonl:2: 'category' must be a non-empty string",
    ),
    Case("prompts-unknown-mix", (*RECORD, "--prompts", "mix:nosuch", "--out", "{tmp}/t.npz"), "unknown prompt mix"),
    Case(
        "prompt-past-the-context",
        (*RECORD, "--prompts", "{tmp}/long.jsonl", "--out", "{tmp}/t.npz"),
        "and pair 'tiny-random' takes 512",
    ),
    Case(
        "train-prompts-jsonl",
        (*TRAIN, "--env", "draft-verify", "--prompts", "{tmp}/list.jsonl", "--runs-dir", "{tmp}/runs"),
        "a .jsonl file has no train and held-out splits",
    ),
    Case(
        "train-read-only-data",
        (*TRAIN, "--env", "draft-verify", "--runs-dir", "{tmp}/runs"),
        "set SPECGYM_DATA to a writable directory",
        {"SPECGYM_DATA": "{tmp}/file/data"},
    ),
    Case("record-read-only-data", RECORD, "set SPECGYM_DATA", {"SPECGYM_DATA": "{tmp}/file/data"}),
    Case("read-only-runs-dir", (*TRAIN, "--env", "arbitration", "--runs-dir", "{tmp}/file/runs"), "--runs-dir"),
    Case(
        "wandb-online-without-key",
        ("experiments.train", "--pair", "tiny-random", "--env", "arbitration", "--runs-dir", "{tmp}/runs"),
        "wandb login",
        {"WANDB_MODE": "online", "WANDB_API_KEY": "", "NETRC": "{tmp}/no-netrc"},
    ),
    Case("record-arbitration-max-nodes-zero", (*RECORD_ARB, "--max-nodes", "0"), "--max-nodes: must be >= 1"),
    Case("record-arbitration-out-not-npz", (*RECORD_ARB, "--out", "{tmp}/x.txt"), "x.txt' must end in .npz"),
    Case("record-arbitration-target", (*RECORD_ARB, "--target", "foo"), "pass --pair, not --target"),
    Case("workers-zero", (*RECORD, "--workers", "0", "--out", "{tmp}/t.npz"), "--workers: must be >= 1"),
    Case(
        "workers-without-ray",
        (*RECORD, "--workers", "2", "--out", "{tmp}/t.npz"),
        "install it with pip install -e .[ray]",
        NO_RAY,
    ),
    Case(
        "evaluate-workers-without-ray",
        ("experiments.evaluate", "--policy", "{tmp}/run", "--pair", "tiny-random", "--workers", "2"),
        "install it with pip install -e .[ray]",
        NO_RAY,
    ),
    Case(
        "ray-address-unreachable",
        (*RECORD, "--workers", "2", "--ray-address", "127.0.0.1:1", "--out", "{tmp}/t.npz"),
        "cannot reach a Ray cluster at 127.0.0.1:1",
    ),
    Case(
        "benchmark-ray-address-unreachable",
        ("experiments.benchmark", "pair", "--pair", "tiny-random", "--workers", "2", "--ray-address", "127.0.0.1:1"),
        "cannot reach a Ray cluster at 127.0.0.1:1",
    ),
    Case("train-vec-env-ray-without-workers", (*ARB, "--vec-env", "ray"), "--vec-env ray needs --workers N"),
    Case("train-workers-without-vec-env-ray", (*ARB, "--workers", "2"), "add --vec-env ray"),
    Case(
        "trace-of-another-pair",
        (*TRAIN, "--pair", "gsm", "--env", "draft-verify", "--traces", "{tmp}/tiny.npz", "--runs-dir", "{tmp}/runs"),
        "pass --pair tiny-random",
    ),
    # the engine's keyword advice (pass pair='tiny-random', max_depth <= 8) in the command's flags
    Case("benchmark-env-trace-of-another-pair", (*BENCH_ENV, "--pair", "gsm"), "pass --pair tiny-random"),
    Case(
        "benchmark-env-trace-too-shallow",
        (*BENCH_ENV, "--pair", "tiny-random", "--max-depth", "30"),
        "--max-depth <= 8",
    ),
    Case(
        "record-corrupt-tokenizer",
        (*RECORD[:1], "--target", "{tmp}/bad-tok", "--draft", "{tmp}/bad-tok", *RECORD[3:], "--out", "{tmp}/t.npz"),
        "bad-tok/tokenizer.json' (not a valid JSON object",
    ),
    Case(
        "record-corrupt-shortlist",
        (*RECORD[:1], "--target", "{tmp}/bad-list", "--draft", "{tmp}/bad-list", *RECORD[3:], "--out", "{tmp}/t.npz"),
        "bad-list/shortlist.json' (not valid JSON",
    ),
    Case(
        "build-pair-read-only-data-dir",
        ("experiments.build_pair", "gsm", "--data-dir", "{tmp}/file/data"),
        "--data-dir",
    ),
    Case(
        "build-pair-read-only-data",
        ("experiments.build_pair", "gsm"),
        "set SPECGYM_DATA to a writable directory",
        {"SPECGYM_DATA": "{tmp}/file/data"},
    ),
    Case("gpu-suite-device-tpu", ("experiments.gpu_suite", "--out", "{tmp}/gpu", "--device", "tpu"), "unknown device"),
    Case(
        "gpu-suite-one-prompt-file",
        ("experiments.gpu_suite", "--out", "{tmp}/gpu", "--prompts", "a.jsonl", "--train-prompts", "a.jsonl"),
        "--prompts (held out) and --train-prompts are one file",
    ),
    Case(
        "gpu-suite-unwritable-out",
        ("experiments.gpu_suite", "--out", "{tmp}/file/gpu"),
        "is not writable; pass --out DIR",
    ),
    Case("publish-not-a-run", ("experiments.publish", "{tmp}/run", "--name", "x"), "is not a finished, evaluated run"),
    Case(
        "evaluate-unknown-published-policy",
        ("experiments.evaluate", "--policy", "no-such-policy", "--no-live"),
        "no published policy 'no-such-policy'",
    ),
]


@dataclass
class Outcome:
    case: Case
    returncode: int
    stderr: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if "error:" in line]

    @property
    def error_line(self) -> str:
        lines = self.error_lines or self.stderr.strip().splitlines() or [""]
        return lines[0]

    @property
    def traceback(self) -> bool:
        return "Traceback" in self.stderr

    @property
    def ok(self) -> bool:
        one = len(self.error_lines) == 1
        return self.returncode == 2 and one and not self.traceback and self.case.expect in self.error_line


def prepare(tmp: Path) -> None:
    """The files the cases read: bad configs and prompts, a trace of tiny-random, model directories
    with a corrupt tokenizer.json or shortlist.json, a run whose checkpoints are gone, a
    ``sitecustomize`` that hides Ray, and a regular file to put directories under (unwritable, also
    for root)."""
    import shutil

    import numpy as np

    from envs.pairs.registry import BUNDLED
    from envs.specdec.trace import ARRAYS, TRACE_VERSION, Trace
    from experiments.training.args import TrainArgs
    from experiments.training.config import CONFIG_DIR

    (tmp / "type.yaml").write_text('default: {n_steps: "lots"}\n')
    (tmp / "list.yaml").write_text("- n_steps: 64\n")
    (tmp / "kwarg.yaml").write_text("default: {env_kwargs: {widht: 2}}\n")
    (tmp / "list.jsonl").write_text('{"prompt": "2 + 2 ="}\n["a", "list"]\n')
    (tmp / "category.jsonl").write_text('{"prompt": "a", "category": "qa"}\n{"prompt": "b", "category": 3}\n')
    (tmp / "long.jsonl").write_text(json.dumps({"prompt": "word " * 200}) + "\n")
    (tmp / "file").write_text("a file, not a directory\n")
    # a trace of tiny-random (one prompt, two positions, chain to depth 8) that reads as one
    meta = {"version": TRACE_VERSION, "pair": "tiny-random", "split": "train", "width": 1, "max_depth": 8}
    meta |= {"max_new_tokens": 2, "n_prompts": 1, "prompts": None, "vocab_size": 257, "eos_token_ids": [256]}
    offsets = {"prompt_offsets": [0, 2], "output_offsets": [0, 2], "eos_stop": [False]}
    arrays = {name: np.asarray(offsets[name]) if name in offsets else np.zeros((2, 8, 1), np.int32) for name in ARRAYS}
    Trace(meta=meta, **arrays).save(tmp / "tiny.npz")
    shutil.copytree(BUNDLED / "gsm" / "target", tmp / "bad-tok")
    (tmp / "bad-tok" / "tokenizer.json").write_text((tmp / "bad-tok" / "tokenizer.json").read_text()[:200])
    shutil.copytree(BUNDLED / "gsm" / "draft", tmp / "bad-list")
    (tmp / "bad-list" / "shortlist.json").write_text('{"ids": [1, 2')
    (tmp / "no-ray").mkdir()
    (tmp / "no-ray" / "sitecustomize.py").write_text("import sys\n\nsys.modules['ray'] = None  # as if not installed\n")
    run = tmp / "run"
    (run / "tb" / "arbiter_1").mkdir(parents=True)  # the stage had begun; its checkpoints are gone
    args = replace(
        TrainArgs(),
        env="arbitration",
        pair="tiny-random",
        config=str(CONFIG_DIR / "arbitration.yaml"),
        exp="ppo",
        runs_dir=str(tmp / "runs"),
        wandb_mode="disabled",
        eval_items=0,
        no_progress=True,
    )
    (run / "run.json").write_text(json.dumps({"argv": [], "env": "arbitration", "seed": 0, "args": asdict(args)}))


def run_case(case: Case, tmp: Path, timeout: float = 180) -> Outcome:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env |= {"SPECGYM_DATA": str(tmp / "data"), "WANDB_SILENT": "true", "TQDM_DISABLE": "1"}
    for key, value in case.env.items():
        env[key] = value.format(tmp=tmp)
        if key == "PYTHONPATH":  # in front of the repository, not instead of it
            env[key] += os.pathsep + str(ROOT)
    env = {key: value for key, value in env.items() if value != ""}
    cmd = [sys.executable, "-m", *(arg.format(tmp=tmp) for arg in case.argv)]
    try:
        proc = subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
        return Outcome(case, -1, stderr + f"\ntimed out after {timeout:.0f} s")
    return Outcome(case, proc.returncode, proc.stderr)


def sweep(cases: list[Case], tmp: Path, workers: int = 2, timeout: float = 180) -> list[Outcome]:
    """Run ``cases`` (``prepare(tmp)`` first), ``workers`` at a time; their outcomes in order."""
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(lambda case: run_case(case, tmp, timeout), cases))


def leftover_runs(tmp: Path) -> list[Path]:
    """Run directories the refused trainings left in the sweep's runs directory (there should be none)."""
    runs = tmp / "runs"
    return sorted(runs.iterdir()) if runs.is_dir() else []


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m experiments.check_inputs", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("-k", default="", help="only the cases whose name contains this")
    p.add_argument("--workers", type=int, default=2, help="cases run at once (default: 2)")
    p.add_argument("--timeout", type=float, default=180, help="seconds per case (default: 180)")
    args = p.parse_args(argv)
    cases = [case for case in CASES if args.k in case.name]
    with tempfile.TemporaryDirectory(prefix="specgym-check-inputs-") as name:
        tmp = Path(name)
        prepare(tmp)
        outcomes = sweep(cases, tmp, max(args.workers, 1), args.timeout)
        left = leftover_runs(tmp)
    width = max(len(case.name) for case in cases)
    print(f"{'case':<{width}}  exit  traceback  ok  error line")
    for o in outcomes:
        ok = "yes" if o.ok else "NO"
        print(f"{o.case.name:<{width}}  {o.returncode:>4}  {'YES' if o.traceback else 'no':<9}  {ok:<3} {o.error_line}")
    if left:
        print(f"left behind: {', '.join(p.name for p in left)}")
    bad = [o.case.name for o in outcomes if not o.ok]
    print(f"{len(outcomes) - len(bad)}/{len(outcomes)} cases refused cleanly" + (f"; failing: {bad}" if bad else ""))
    return 1 if bad or left else 0


if __name__ == "__main__":
    sys.exit(main())
