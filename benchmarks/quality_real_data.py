"""Model quality on the real reference data (Juliet Java + SVEN Python), measured end to end.

    .venv/bin/python benchmarks/quality_real_data.py --data-dir /work/shared/data \\
        --out benchmarks/results/quality [--models gnn,transformer] [--epochs-gnn N] \\
        [--epochs-transformer N] [--max-train-samples-transformer N] [--max-length 256]

Two experiments, each run exactly as a SageMaker training job would run it (the entry script in a
subprocess, hyperparameters as flags, channels and model dir through the `SM_*` variables):

1. in-distribution: `prepare` all three files (group split, seed 13), train each model, read
   validation and test metrics from the model's metrics.json, and break the test predictions down
   by source (Juliet / SVEN) and origin (input / counterfactual);
2. cross-source: `prepare` the Juliet files only, train, then score the raw SVEN Python functions
   with `--mode evaluate` (a model that memorised Juliet's templates fails here).

Each training run records wall time, CPU time and the peak RSS of its process (from the child's own
rusage). Everything goes under `--out`: prepared channels, model dirs and logs per run,
`summary.json` and `summary.md` (the tables). Nothing is asserted; the figures are printed.
"""

from __future__ import annotations

import argparse
import fcntl
import filecmp
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ENTRY_POINT = "train_enhanced_models.py"
ALL_FILES = ("juliet_java_cwe89.jsonl.gz", "juliet_java_taint.jsonl.gz", "sven_python_cwe89_train.jsonl.gz")
JULIET_FILES = ALL_FILES[:2]
SVEN_FILE = ALL_FILES[2]
METRICS = ("accuracy", "f1", "fpr", "roc_auc")


@dataclass
class RunResult:
    """One entry-script process: what ran, how long, how much memory, and its metrics."""

    name: str
    command: list[str]
    returncode: int
    wall_s: float
    cpu_s: float
    peak_rss_mb: float
    log: str
    metrics: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------------- arguments
def build_parser() -> argparse.ArgumentParser:
    """The benchmark's flags; per-model training flags mirror the entry script's."""
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", required=True, help="folder with the three reference *.jsonl.gz files")
    p.add_argument("--out", required=True, help="results folder (git-ignored benchmarks/results/...)")
    p.add_argument("--models", default="gnn,transformer",
                   help="comma-separated: gnn, transformer; 'none' only prepares the channels")
    p.add_argument("--experiments", default="in_dist,cross_source",
                   help="comma-separated: in_dist, cross_source")
    p.add_argument("--seed", type=int, default=13, help="split seed and training seed")
    p.add_argument("--epochs-gnn", type=int, default=15)
    p.add_argument("--epochs-transformer", type=int, default=4)
    p.add_argument("--batch-size-gnn", type=int, default=32)
    p.add_argument("--batch-size-transformer", type=int, default=16)
    p.add_argument("--lr-gnn", type=float, default=1e-3)
    p.add_argument("--lr-transformer", type=float, default=5e-4)
    p.add_argument("--patience", type=int, default=4, help="early stopping patience (both models)")
    p.add_argument("--max-train-samples", type=int, default=None,
                   help="seeded subset of the train split for both models (per-model flags override)")
    p.add_argument("--max-train-samples-gnn", type=int, default=None)
    p.add_argument("--max-train-samples-transformer", type=int, default=None)
    p.add_argument("--max-length", type=int, default=256, help="transformer tokens per input")
    p.add_argument("--extra-gnn-args", default="", help="more entry flags for the GNN, as one shell string")
    p.add_argument("--extra-transformer-args", default="", help="more entry flags for the transformer")
    p.add_argument("--transforms", type=int, default=0,
                   help="program-transformation variants per training record at prepare time (0: none)")
    p.add_argument("--transform-names", default="",
                   help="with --transforms: only these transformations, comma-separated (default: all)")
    p.add_argument("--threads", type=int, default=2, help="OMP / MKL threads of each training process")
    p.add_argument("--nice", type=int, default=10, help="niceness of the training processes")
    p.add_argument("--code-snapshot", default=None,
                   help="run an earlier snapshot (<out>/code/<sha12>) instead of copying the working tree")
    p.add_argument("--render-only", action="store_true",
                   help="only rewrite summary.md from the summary.json under --out")
    p.add_argument("--reuse", action="store_true",
                   help="reuse prepared channels and finished runs found under --out (same settings)")
    return p


def train_flags(args: argparse.Namespace, model: str) -> list[str]:
    """Hyperparameters of one model, as SageMaker passes them (`--name value`)."""
    limit = getattr(args, f"max_train_samples_{model}") or args.max_train_samples
    flags = ["--model-type", model, "--epochs", str(getattr(args, f"epochs_{model}")),
             "--batch-size", str(getattr(args, f"batch_size_{model}")),
             "--learning-rate", str(getattr(args, f"lr_{model}")),
             "--seed", str(args.seed), "--patience", str(args.patience)]
    if model == "transformer":
        flags += ["--max-length", str(args.max_length)]
    if limit:
        flags += ["--max-train-samples", str(limit)]
    return flags + shlex.split(getattr(args, f"extra_{model}_args"))


# ------------------------------------------------------------------------------------- running
def take_snapshot(code_dir: Path, attempts: int = 10, wait_s: float = 30.0) -> dict:
    """Freeze the code under test: the SageMaker source dir and the library, unpacked under ``code_dir``.

    ``src/`` is ``sourcedir.tar.gz`` unpacked (what a training container runs from); ``lib/`` is a
    copy of the whole ``streamguard`` package for preparation. The working tree may be edited while
    a benchmark runs, so both are copied once, checked to hold the same featurizer and to import,
    and retried after ``wait_s`` when a copy catches a half-saved file.

    Returns:
        ``{"src", "lib", "sourcedir_sha256", "featurizer_version", "git_head", "git_dirty"}``.
    """
    from streamguard.core.archive import safe_extract
    from streamguard.sourcedir import build_sourcedir_tarball

    problem = ""
    for attempt in range(1, attempts + 1):
        # Copy into a private folder first; concurrent invocations on the same --out then share
        # one snapshot per source-dir hash instead of overwriting each other's.
        tmp = code_dir / f"tmp-{os.getpid()}"
        if tmp.exists():
            shutil.rmtree(tmp)
        src, lib = tmp / "src", tmp / "lib"
        tarball, sha = build_sourcedir_tarball(tmp / "sourcedir.tar.gz")
        safe_extract(tarball, src)
        shutil.copytree(REPO / "streamguard", lib / "streamguard",
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        same = filecmp.dircmp(src / "streamguard" / "core", lib / "streamguard" / "core",
                              ignore=["__pycache__"])
        check = subprocess.run(
            [sys.executable, "-c", "import streamguard.core.graphs as g, streamguard.data.prepare; "
                                   "print(g.FEATURIZER_VERSION)"],
            cwd=lib, env=dict(os.environ, PYTHONPATH=str(lib)), capture_output=True, text=True)
        if not _differs(same) and check.returncode == 0:
            final = code_dir / sha[:12]
            try:
                tmp.rename(final)
            except OSError:  # another invocation already holds this exact code
                shutil.rmtree(tmp)
            info = {"src": str(final / "src"), "lib": str(final / "lib"), "sourcedir_sha256": sha,
                    "featurizer_version": check.stdout.strip(), **_git_state()}
            (final / "snapshot.json").write_text(json.dumps(info, indent=2), encoding="utf-8")
            return info
        shutil.rmtree(tmp)
        problem = check.stderr.strip().splitlines()[-1:] or ["the featurizer changed while it was copied"]
        print(f"snapshot attempt {attempt}: {problem[0]}; retrying in {wait_s:.0f}s", flush=True)
        time.sleep(wait_s)
    raise SystemExit(f"could not take a consistent, importable snapshot of the code: {problem}")


def load_snapshot(folder: Path) -> dict:
    """An earlier snapshot (``<out>/code/<sha12>``), to measure one fixed version of the code."""
    import hashlib

    src, lib, tarball = folder / "src", folder / "lib", folder / "sourcedir.tar.gz"
    if not (src / ENTRY_POINT).is_file() or not (lib / "streamguard").is_dir() or not tarball.is_file():
        raise SystemExit(f"{folder}: not a snapshot (needs src/{ENTRY_POINT}, lib/streamguard, sourcedir.tar.gz)")
    check = subprocess.run([sys.executable, "-c", "import streamguard.core.graphs as g; print(g.FEATURIZER_VERSION)"],
                           cwd=lib, env=dict(os.environ, PYTHONPATH=str(lib)), capture_output=True, text=True)
    if check.returncode != 0:
        raise SystemExit(f"{folder}: the snapshot's featurizer does not import:\n{check.stderr[-2000:]}")
    info = {"src": str(src), "lib": str(lib), "sourcedir_sha256": hashlib.sha256(tarball.read_bytes()).hexdigest(),
            "featurizer_version": check.stdout.strip(), "pinned_from": str(folder)}
    saved = folder / "snapshot.json"
    if saved.is_file():  # git state recorded when the snapshot was taken
        info.update({k: v for k, v in json.loads(saved.read_text(encoding="utf-8")).items() if k.startswith("git_")})
    return info


def _differs(cmp: filecmp.dircmp) -> bool:
    if cmp.left_only or cmp.right_only or cmp.diff_files or cmp.funny_files:
        return True
    return any(_differs(sub) for sub in cmp.subdirs.values())


def _git_state() -> dict:
    """The commit and the uncommitted source files the snapshot was taken from (read-only git calls)."""
    def git(*cmd: str) -> str:
        done = subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True)
        return done.stdout.strip() if done.returncode == 0 else ""
    dirty = git("status", "--porcelain", "--", "streamguard", "training_entry").splitlines()
    return {"git_head": git("rev-parse", "HEAD"), "git_dirty": [line.strip() for line in dirty]}


_PREPARE_SNIPPET = """
import json, sys, time
from streamguard.data.prepare import prepare
t0 = time.monotonic()
extra = {"transforms": int(sys.argv[4])} if int(sys.argv[4]) else {}
if extra and sys.argv[5]:
    extra["transform_names"] = [n.strip() for n in sys.argv[5].split(",") if n.strip()]
report = prepare(json.loads(sys.argv[1]), sys.argv[2], seed=int(sys.argv[3]),
                 progress=lambda msg: print(msg, flush=True), **extra).to_dict()
report["elapsed_s"] = round(time.monotonic() - t0, 1)
print("REPORT " + json.dumps(report), flush=True)
"""


def same_transforms(report: dict, transforms: int, transform_names: str) -> bool:
    """Whether a preparation report's program transformations are the ones asked for.

    ``transforms`` is the per-record count (0: none) and ``transform_names`` the comma-separated
    names ("" for all). A report from before the settings were recorded never matches one with
    transformations, so its channels are prepared anew rather than reused under other settings.
    """
    block = (report.get("augmented") or {}).get("transformations")
    if not transforms:
        return not block or not block.get("made")
    if not block:
        return False
    names = sorted({n.strip() for n in transform_names.split(",") if n.strip()}) or None
    return block.get("per_record") == transforms and block.get("names", False) == names


def prepare_channels(inputs: list[Path], out: Path, seed: int, snapshot: dict, reuse: bool,
                     transforms: int = 0, transform_names: str = "") -> dict:
    """Run ``streamguard.data.prepare.prepare`` with the snapshot's library, unless a finished one is reused.

    It runs in a child process so that it imports the frozen library, not the working tree.
    Returns the preparation report.
    """
    report_path = out / "report.json"
    if reuse and report_path.is_file() and (out / "test" / "data.jsonl").is_file():
        report = json.loads(report_path.read_text(encoding="utf-8"))
        version = (report.get("graphs") or {}).get("featurizer_version")
        if (report.get("seed") == seed and report.get("inputs") == [str(p) for p in inputs]
                and version == snapshot["featurizer_version"]
                and same_transforms(report, transforms, transform_names)):
            print(f"reusing prepared channels in {out}", flush=True)
            return report
    print(f"preparing {out} from {', '.join(p.name for p in inputs)}", flush=True)
    done = subprocess.run([sys.executable, "-c", _PREPARE_SNIPPET, json.dumps([str(p) for p in inputs]),
                           str(out), str(seed), str(transforms), transform_names], cwd=snapshot["lib"],
                          env=dict(os.environ, PYTHONPATH=snapshot["lib"]), capture_output=True, text=True)
    lines = done.stdout.splitlines()
    for line in lines:
        if not line.startswith("REPORT "):
            print(f"  prepare {out.name}: {line}", flush=True)
    if done.returncode != 0:
        raise SystemExit(f"prepare {out} failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(next(line for line in lines if line.startswith("REPORT "))[len("REPORT "):])


def run_entry(name: str, flags: list[str], env_extra: dict[str, str], run_dir: Path,
              args: argparse.Namespace, snapshot: dict) -> RunResult:
    """Run the entry script with the SageMaker environment; measure time and peak memory.

    The child is reaped with `os.wait4`, whose rusage belongs to that child alone, so each run's
    peak RSS is its own (RUSAGE_CHILDREN would report the maximum over all runs so far).
    """
    run_dir.mkdir(parents=True, exist_ok=True)
    log_path = run_dir / "log.txt"
    # As in a training container: the unpacked source dir is the working directory and on the path.
    # The process inherits the benchmark's niceness (set once in main), like `nice -n N python ...`.
    src = snapshot["src"]
    command = [sys.executable, str(Path(src) / ENTRY_POINT), *flags]
    env = dict(os.environ, **env_extra, PYTHONPATH=src)
    threads = str(args.threads)
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, TOKENIZERS_PARALLELISM="false",
               PYTHONUNBUFFERED="1")
    print(f"[{name}] {' '.join(shlex.quote(c) for c in command)}", flush=True)
    t0 = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=src)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - t0
    # Linux reports ru_maxrss in KiB.
    result = RunResult(name=name, command=command, returncode=proc.returncode, wall_s=round(wall, 1),
                       cpu_s=round(usage.ru_utime + usage.ru_stime, 1), peak_rss_mb=round(usage.ru_maxrss / 1024, 1),
                       log=str(log_path))
    tail = log_path.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
    print(f"[{name}] exit {proc.returncode} in {wall:.0f}s, peak RSS {result.peak_rss_mb:.0f} MB", flush=True)
    for line in tail:
        print(f"[{name}]   {line[:300]}", flush=True)
    return result


def train_run(name: str, model: str, channels: Path, run_dir: Path, args: argparse.Namespace,
              snapshot: dict) -> RunResult:
    """Train one model on prepared channels through the SageMaker environment variables."""
    model_dir = run_dir / "model"
    done = run_dir / "result.json"
    if args.reuse and done.is_file() and (model_dir / "metrics.json").is_file():
        saved = json.loads(done.read_text(encoding="utf-8"))
        same_flags = saved.get("command", [])[-len(train_flags(args, model)):] == train_flags(args, model)
        if same_flags and saved.get("extra", {}).get("sourcedir_sha256") == snapshot["sourcedir_sha256"]:
            print(f"[{name}] reusing finished run in {run_dir}", flush=True)
            return RunResult(**saved)
    env = {"SM_CHANNEL_TRAIN": str(channels / "train"), "SM_CHANNEL_VALIDATION": str(channels / "validation"),
           "SM_CHANNEL_TEST": str(channels / "test"), "SM_MODEL_DIR": str(model_dir),
           "SM_OUTPUT_DATA_DIR": str(run_dir / "output"), "SM_OUTPUT_DIR": str(run_dir / "sm_output")}
    result = run_entry(name, train_flags(args, model), env, run_dir, args, snapshot)
    if result.returncode == 0:
        result.metrics = json.loads((model_dir / "metrics.json").read_text(encoding="utf-8"))
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
        history = json.loads((model_dir / "history.json").read_text(encoding="utf-8"))
        result.extra = {"sourcedir_sha256": snapshot["sourcedir_sha256"], "best_epoch": config.get("best_epoch"), "epochs_run": config.get("epochs_run"),
                        "train_label_counts": config.get("train_label_counts"),
                        "featurizer_version": config.get("featurizer_version"),
                        "mean_epoch_s": round(sum(h["seconds"] for h in history) / max(len(history), 1), 1),
                        "history": history}
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    return result


def evaluate_run(name: str, model_dir: Path, test_input: Path, run_dir: Path, args: argparse.Namespace,
                 snapshot: dict) -> RunResult:
    """Score a test input with a saved model (`--mode evaluate`), as the evaluation job does."""
    out = run_dir / "output"
    flags = ["--mode", "evaluate", "--model", str(model_dir), "--test", str(test_input),
             "--output-data-dir", str(out)]
    result = run_entry(name, flags, {}, run_dir, args, snapshot)
    if result.returncode == 0:
        saved = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        result.metrics = {"test": saved["test"]}
        result.extra = {k: saved[k] for k in ("rows", "scored", "labelled", "errors")}
        result.extra["score_spread"] = score_spread(out / "predictions.jsonl")
    (run_dir / "result.json").write_text(json.dumps(asdict(result), indent=2), encoding="utf-8")
    return result


# ------------------------------------------------------------------------------------ analysis
_RULE_SNIPPET = """
import gzip, json, sys
from streamguard.core.graphs import FEATURIZER_VERSION, build_graph
from streamguard.core.graphs.vocab import FEATURE_INDEX
col = FEATURE_INDEX["on_taint_path"]
opener = gzip.open if sys.argv[1].endswith(".gz") else open
with opener(sys.argv[1], "rt", encoding="utf-8") as fh:
    for line in fh:
        if not line.strip():
            continue
        rec = json.loads(line)
        graph = rec.get("graph")
        if not isinstance(graph, dict) or graph.get("v") != FEATURIZER_VERSION:
            graph = build_graph(rec["code"], rec.get("language") or "python")
        flagged = sum(1 for row in graph["feat"] if row[col] > 0)
        print(json.dumps({"id": rec.get("id"), "label": rec["label"], "flagged": flagged}))
"""


def taint_rule_baseline(data_file: Path, snapshot: dict) -> dict:
    """The featurizer's own verdict, no learning: vulnerable iff some node lies on a source->sink path.

    Shows how much of a model's score the hand-written taint rules already give. Scores are 0/1,
    so ROC-AUC here is the balanced accuracy.

    Returns:
        ``{"all": M, "source=juliet": M, ...}`` (``streamguard.core.metrics`` dicts).
    """
    from streamguard.core.metrics import classification_metrics

    done = subprocess.run([sys.executable, "-c", _RULE_SNIPPET, str(data_file)], cwd=snapshot["lib"],
                          env=dict(os.environ, PYTHONPATH=snapshot["lib"]), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"taint-rule baseline on {data_file} failed:\n{done.stderr[-3000:]}")
    rows = [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[f"source={source_family(row)}"].append(row)
    return {key: classification_metrics([r["label"] for r in g], [float(r["flagged"] > 0) for r in g])
            for key, g in sorted(groups.items())}


def read_jsonl(path: Path) -> list[dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def score_spread(predictions: Path) -> dict:
    """Mean score per label and the share predicted vulnerable: shows a collapsed (constant) model."""
    rows = [r for r in read_jsonl(predictions) if r.get("score") is not None]
    out: dict = {"predicted_vulnerable": round(sum(r["pred"] for r in rows) / max(len(rows), 1), 4)}
    for label in (0, 1):
        scores = [r["score"] for r in rows if r["label"] == label]
        out[f"mean_score_label_{label}"] = round(sum(scores) / len(scores), 4) if scores else None
    return out


def source_family(record: dict) -> str:
    """`juliet` or `sven` from a prepared record's source / id / language."""
    text = f"{record.get('source', '')} {record.get('id', '')}".lower()
    if "juliet" in text:
        return "juliet"
    if "sven" in text:
        return "sven"
    return str(record.get("language") or "unknown")


def breakdown(model_dir: Path, test_channel: Path) -> dict:
    """Test metrics per source family, per origin and per CWE, joining predictions to records by id."""
    from streamguard.core.metrics import classification_metrics

    records = {r["id"]: r for r in read_jsonl(test_channel / "data.jsonl")}
    config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    threshold = config.get("threshold", 0.5)
    groups: dict[str, dict[str, list]] = defaultdict(lambda: {"y": [], "s": []})
    missing = 0
    for row in read_jsonl(model_dir / "test_predictions.jsonl"):
        rec = records.get(row["id"])
        if rec is None or row.get("score") is None:
            missing += 1
            continue
        family = source_family(rec)
        for key in (f"source={family}", f"origin={rec.get('origin')}", f"source={family},origin={rec.get('origin')}",
                    f"cwe={rec.get('cwe')}"):
            groups[key]["y"].append(row["label"])
            groups[key]["s"].append(row["score"])
    out = {key: classification_metrics(g["y"], g["s"], threshold) for key, g in sorted(groups.items())}
    if missing:
        out["_unmatched_rows"] = missing
    return out


# ------------------------------------------------------------------------------------ reporting
def fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}" if isinstance(value, float) else str(value)


def metric_cells(m: dict | None) -> list[str]:
    if not m:
        return ["n/a"] * 5
    return [fmt(m.get(k)) for k in METRICS] + [str(m.get("n"))]


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def train_size(args: argparse.Namespace, model: str, report: dict) -> str:
    limit = getattr(args, f"max_train_samples_{model}") or args.max_train_samples
    total = report.get("splits", {}).get("train", {}).get("total")
    return f"{limit} of {total}" if limit and total and limit < total else str(total)


def render(summary: dict, args: argparse.Namespace) -> str:
    """The markdown tables of a summary."""
    parts = []
    runs = summary["runs"]
    reports = summary["prepare"]
    rows = []
    for model in summary["models"]:
        r = runs.get(f"in_dist_{model}")
        if not r:
            continue
        val, test = r["metrics"].get("validation"), r["metrics"].get("test")
        rows.append([model, "validation", *metric_cells(val)])
        rows.append([model, "test", *metric_cells(test)])
    rule = summary.get("baselines", {}).get("in_dist_test")
    if rows and rule:
        rows.append(["taint rule (no learning)", "test", *metric_cells(rule["all"])])
    if rows:
        parts.append("### In-distribution (Juliet Java + SVEN Python, group split, seed %d)\n" % args.seed)
        parts.append(table(["model", "split", "accuracy", "F1", "FPR", "ROC-AUC", "n"], rows))
    rows = []
    for model in summary["models"]:
        t, e = runs.get(f"juliet_{model}"), runs.get(f"juliet_to_sven_{model}")
        if not t:
            continue
        rows.append([model, "Juliet test (in-source)", *metric_cells(t["metrics"].get("test"))])
        if e:
            rows.append([model, "SVEN Python (cross-source)", *metric_cells(e["metrics"].get("test"))])
    rule = summary.get("baselines", {}).get("sven")
    if rows and rule:
        rows.append(["taint rule (no learning)", "SVEN Python", *metric_cells(rule["all"])])
    if rows:
        parts.append("\n### Cross-source: trained on Juliet Java only, scored on SVEN Python functions\n")
        parts.append(table(["model", "evaluated on", "accuracy", "F1", "FPR", "ROC-AUC", "n"], rows))
    rows = []
    for name, r in runs.items():
        if r["name"].startswith("juliet_to_sven"):
            continue
        model = "gnn" if name.endswith("gnn") else "transformer"
        report = reports.get("all" if name.startswith("in_dist") else "juliet", {})
        ex = r.get("extra", {})
        rows.append([name, train_size(args, model, report), f"{ex.get('epochs_run')} (best {ex.get('best_epoch')})",
                     *(f"{v:.0f}" if isinstance(v, (int, float)) else "n/a"
                       for v in (ex.get("mean_epoch_s"), r["wall_s"], r["cpu_s"], r["peak_rss_mb"]))])
    if rows:
        parts.append(f"\n### Training cost (CPU, {args.threads} thread(s) per run, nice {args.nice}; "
                     "wall time depends on the machine's load, CPU time much less)\n")
        parts.append(table(["run", "train records", "epochs (best)", "s/epoch", "wall s", "CPU s", "peak RSS MB"],
                           rows))
    rows = []
    for model in summary["models"]:
        b = summary.get("breakdown", {}).get(model, {})
        for key, m in b.items():
            if key.startswith("_"):
                continue
            rows.append([model, key, *metric_cells(m)])
    rule = summary.get("baselines", {}).get("in_dist_test", {})
    rows += [["taint rule", key, *metric_cells(m)] for key, m in rule.items() if key != "all"]
    if rows:
        parts.append("\n### In-distribution test set by source, origin and CWE\n")
        parts.append(table(["model", "subset", "accuracy", "F1", "FPR", "ROC-AUC", "n"], rows))
    return "\n".join(parts) + "\n"


# ----------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    models = [m.strip() for m in args.models.split(",") if m.strip() and m.strip() != "none"]
    experiments = [e.strip() for e in args.experiments.split(",") if e.strip()]
    bad = [m for m in models if m not in ("gnn", "transformer")] + \
          [e for e in experiments if e not in ("in_dist", "cross_source")]
    if bad:
        raise SystemExit(f"unknown model or experiment: {', '.join(bad)}")
    data_dir = Path(args.data_dir).resolve()
    missing = [f for f in ALL_FILES if not (data_dir / f).is_file()]
    if missing:
        raise SystemExit(f"{data_dir}: missing {', '.join(missing)}")
    out = Path(args.out).resolve()
    if args.render_only:
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        (out / "summary.md").write_text(render(summary, args), encoding="utf-8")
        print(render(summary, args), flush=True)
        return 0
    out.mkdir(parents=True, exist_ok=True)
    # Lower our own priority once: preparation runs in this process and every training process
    # inherits it (the machine is shared).
    if args.nice:
        os.nice(args.nice)

    if args.code_snapshot:
        snapshot = load_snapshot(Path(args.code_snapshot).resolve())
    else:
        snapshot = take_snapshot(out / "code")
    print(f"code under test: sourcedir sha256 {snapshot['sourcedir_sha256'][:12]}, featurizer "
          f"{snapshot['featurizer_version']}, git {snapshot.get('git_head', '?')[:10]}"
          f"{' + uncommitted changes' if snapshot.get('git_dirty') else ''}", flush=True)
    summary: dict = {"args": vars(args), "code": snapshot, "models": models, "prepare": {}, "runs": {},
                     "breakdown": {}, "baselines": {}}
    summary_path = out / "summary.json"
    if args.reuse and summary_path.is_file():  # keep earlier runs of other models / experiments
        old = json.loads(summary_path.read_text(encoding="utf-8"))
        summary["runs"].update(old.get("runs", {}))
        summary["breakdown"].update(old.get("breakdown", {}))
        summary["prepare"].update(old.get("prepare", {}))
        summary["baselines"].update(old.get("baselines", {}))
        summary["models"] = sorted(set(old.get("models", [])) | set(models))

    def save() -> None:
        # Concurrent invocations (e.g. one per model) share --out: merge under a lock.
        with open(out / ".summary.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if summary_path.is_file():
                disk = json.loads(summary_path.read_text(encoding="utf-8"))
                for key in ("runs", "breakdown", "baselines", "prepare"):
                    summary[key] = {**disk.get(key, {}), **summary[key]}
                summary["models"] = sorted(set(disk.get("models", [])) | set(summary["models"]))
            summary_path.write_text(json.dumps(summary, indent=2), encoding="utf-8")
            (out / "summary.md").write_text(render(summary, args), encoding="utf-8")

    if "in_dist" in experiments:
        channels = out / "prepared" / "all"
        summary["prepare"]["all"] = prepare_channels([data_dir / f for f in ALL_FILES], channels, args.seed,
                                                     snapshot, args.reuse, args.transforms, args.transform_names)
        summary["baselines"]["in_dist_test"] = taint_rule_baseline(channels / "test" / "data.jsonl", snapshot)
        for model in models:
            run_dir = out / "runs" / f"in_dist_{model}"
            result = train_run(f"in_dist_{model}", model, channels, run_dir, args, snapshot)
            summary["runs"][result.name] = asdict(result)
            if result.returncode == 0:
                summary["breakdown"][model] = breakdown(run_dir / "model", channels / "test")
            save()
    if "cross_source" in experiments:
        channels = out / "prepared" / "juliet"
        summary["prepare"]["juliet"] = prepare_channels([data_dir / f for f in JULIET_FILES], channels,
                                                        args.seed, snapshot, args.reuse, args.transforms, args.transform_names)
        summary["baselines"]["sven"] = taint_rule_baseline(data_dir / SVEN_FILE, snapshot)
        for model in models:
            run_dir = out / "runs" / f"juliet_{model}"
            result = train_run(f"juliet_{model}", model, channels, run_dir, args, snapshot)
            summary["runs"][result.name] = asdict(result)
            if result.returncode == 0:
                ev = evaluate_run(f"juliet_to_sven_{model}", run_dir / "model", data_dir / SVEN_FILE,
                                  out / "runs" / f"juliet_to_sven_{model}", args, snapshot)
                summary["runs"][ev.name] = asdict(ev)
            save()
    save()
    print("\n" + render(summary, args), flush=True)
    failed = [r["name"] for r in summary["runs"].values() if r["returncode"] != 0]
    if failed:
        print(f"failed runs (see their log.txt): {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
