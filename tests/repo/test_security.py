"""No credentials or AWS account ids in the repository or in what a run prints and logs; model
weights only through safetensors (no pickle, no unguarded ``torch.load``).

The scanner (``scan_text``, tests/support/secret_scan.py) is checked on planted values first; it then runs
over every tracked file and over the output of a tiny ``airflow dags test streamguard_training``.
Findings are reported redacted (first characters only), so a failure never re-leaks a secret.
"""

from __future__ import annotations

import ast
import subprocess
import tarfile
from pathlib import Path

import pytest

from tests.support.e2e import succeeded, tail
from tests.support.secret_scan import PICKLE_SUFFIXES, Finding, read_text, scan_text, scan_tree

REPO = Path(__file__).resolve().parents[2]

# What a model directory or model.tar.gz may hold: safetensors weights, JSON, tokenizer text files.
ALLOWED_MODEL_SUFFIXES = frozenset({".safetensors", ".json", ".jsonl", ".txt"})
ALLOWED_CODE_SUFFIXES = {".py", ".txt", ".md", ".json"}  # .json: the featurizer's API catalog (data)


def unsafe_loads(source: str, where: str) -> list[Finding]:
    """Pickle-format deserialisation: pickle/dill/joblib, any ``torch.load`` (even
    ``weights_only=True`` unpickles, if restrictedly), ``numpy.load(allow_pickle=True)``."""
    findings: list[Finding] = []
    for node in ast.walk(ast.parse(source, filename=where)):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for module in modules:
                if module.split(".")[0] in ("joblib", "dill", "cloudpickle"):
                    findings.append(Finding(where, node.lineno, "imports a pickle-based loader", module))
            if isinstance(node, ast.ImportFrom) and node.module in ("pickle", "_pickle", "cPickle"):
                names = {a.name for a in node.names} & {"load", "loads", "Unpickler"}
                if names:
                    findings.append(Finding(where, node.lineno, "imports pickle loading", ", ".join(sorted(names))))
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        owner = node.func.value.id if isinstance(node.func.value, ast.Name) else None
        call = f"{owner}.{node.func.attr}"
        keywords = {k.arg: k.value for k in node.keywords}
        if owner in ("pickle", "_pickle", "cPickle", "dill") and node.func.attr in ("load", "loads", "Unpickler"):
            findings.append(Finding(where, node.lineno, "pickle load", call))
        elif owner == "torch" and node.func.attr == "load":
            findings.append(Finding(where, node.lineno, "torch.load (pickle format)", call))
        elif owner in ("np", "numpy") and node.func.attr == "load":
            flag = keywords.get("allow_pickle")
            if not (flag is None or (isinstance(flag, ast.Constant) and flag.value is False)):
                findings.append(Finding(where, node.lineno, "numpy.load with allow_pickle", call))
    return findings


def tracked_files() -> list[Path]:
    """The repository's tracked files (``git ls-files``); a walk of the tree when git is unavailable."""
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True, timeout=60).stdout
        return [REPO / name for name in out.decode().split("\0") if name]
    except (OSError, subprocess.CalledProcessError):
        skip = {".git", ".venv", "__pycache__", ".pytest_cache", ".streamguard", "benchmarks/results"}
        return [p for p in REPO.rglob("*") if p.is_file()
                and not any(part in skip for part in p.relative_to(REPO).parts)]


# --- the scanner itself ----------------------------------------------------------------------------
def test_scanner_finds_planted_credentials():
    key_id = "AKIA" + "IOSFODNN7ZQXWBCD"
    secret = "wJalrXUtnFEMI/K7MDENG/" + "bPxRfiCYzzzzzzzzzz"
    text = "\n".join([
        f"aws_access_key_id = {key_id}",
        f'aws_secret_access_key = "{secret}"',
        "-----BEGIN " + "RSA PRIVATE KEY-----",
        "role: arn:aws:iam::" + "4" * 12 + ":role/trainer",
        "image: " + "5" * 12 + ".dkr.ecr.eu-west-1.amazonaws.com/x:1",
    ])
    findings = scan_text(text, "planted")
    assert [(f.line, f.kind) for f in findings] == [
        (1, "AWS access key id"), (2, "secret-key-shaped value"), (3, "private key block"),
        (4, "account id in an ARN"), (5, "account id in an ECR host")]
    assert all(secret not in str(f) and key_id not in str(f) for f in findings)  # reported redacted


def test_scanner_allows_public_registry_placeholders_and_digests():
    text = "\n".join([
        "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:2.5.1-cpu-py311",
        "arn:aws:sagemaker:local:000000000000:training-job/sg-gnn",
        "arn:aws:iam::000000000000:role/streamguard-local",
        "secret sha: " + "ab12" * 10,  # a hex digest is not a secret key
        "ASIAN markets",
    ])
    assert scan_text(text, "ok") == []
    placeholder = "arn:aws:iam::123456789012:role/test"
    assert scan_text(placeholder, "t", in_tests=True) == []
    assert [f.kind for f in scan_text(placeholder, "src")] == ["account id in an ARN"]
    # The all-zero account outside tests only for local stand-ins.
    assert [f.kind for f in scan_text("arn:aws:iam::000000000000:role/prod", "src")] == ["account id in an ARN"]


def test_unsafe_load_detector():
    source = "\n".join([
        "import pickle, torch, numpy as np",
        "from joblib import load",
        "a = pickle.loads(b'')",
        "b = torch.load('m.pt')",
        "c = torch.load('o.pt', weights_only=True)",
        "d = torch.load('o.pt', weights_only=False)",
        "e = np.load('x.npy', allow_pickle=True)",
        "f = np.load('x.npy')",
    ])
    assert [(f.line, f.kind) for f in unsafe_loads(source, "planted.py")] == [
        (2, "imports a pickle-based loader"), (3, "pickle load"), (4, "torch.load (pickle format)"),
        (5, "torch.load (pickle format)"), (6, "torch.load (pickle format)"), (7, "numpy.load with allow_pickle")]


# --- the repository --------------------------------------------------------------------------------
def test_tracked_files_hold_no_credentials_or_account_ids():
    files = tracked_files()
    assert len(files) > 50, f"only {len(files)} tracked files found under {REPO}"
    findings, scanned = [], 0
    for path in files:
        if not path.is_file():  # deleted in the work tree, not yet committed
            continue
        text = read_text(path)
        if text is None:
            continue
        scanned += 1
        rel = path.relative_to(REPO)
        findings += scan_text(text, str(rel), in_tests=rel.parts[0] == "tests")
    assert scanned > 50
    assert not findings, "credentials or account ids in tracked files:\n" + "\n".join(map(str, findings))


def test_code_loads_weights_only_through_safe_formats():
    findings = []
    for path in tracked_files():
        if path.suffix == ".py" and path.is_file():
            findings += unsafe_loads(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))
    assert not findings, "unsafe deserialisation:\n" + "\n".join(map(str, findings))


def test_no_pickle_format_files_are_tracked():
    pickled = [str(p.relative_to(REPO)) for p in tracked_files() if p.suffix.lower() in PICKLE_SUFFIXES]
    assert not pickled, f"pickle-format files in the repository: {pickled}"


# --- a real run ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_run(training_run_shared):
    """The tiny ``airflow dags test streamguard_training`` with its own StreamGuard home and task-log folder.

    ``dags test`` runs the tasks in its own process, so their logs are mostly in its captured output;
    anything written to the task-log folder is scanned too. It is the session's run of both models
    (`training_run_shared`, tests/conftest.py), which tests/e2e/test_e2e_training_local.py reads too.
    """
    home, logs, proc = training_run_shared
    assert succeeded(proc), tail(proc)
    return proc, home, logs


@pytest.mark.slow
def test_run_output_and_logs_hold_no_credentials(tiny_run):
    proc, home, logs = tiny_run
    findings = scan_text(proc.stdout, "stdout") + scan_text(proc.stderr, "stderr")
    log_findings, log_files = scan_tree(logs, "task-logs")
    home_findings, home_files = scan_tree(home, "streamguard-home")  # job logs, status, requests, registry
    assert len(proc.stdout + proc.stderr) > 1000, "the run printed almost nothing: nothing was scanned"
    assert home_files > 10, f"only {home_files} text files under {home}"
    job_logs = [p for p in (home / "jobs").rglob("*") if p.is_file() and ("log" in p.name or "logs" in p.parts)]
    assert job_logs, f"no training-job logs under {home / 'jobs'}"
    findings += log_findings + home_findings
    assert not findings, (f"credentials or account ids in the run's output ({log_files} task-log files, "
                          f"{home_files} files under the StreamGuard home):\n" + "\n".join(map(str, findings)))


@pytest.mark.slow
def test_run_writes_weights_only_as_safetensors(tiny_run):
    from safetensors import safe_open

    _proc, home, _logs = tiny_run
    model_dirs = [d for d in (home / "jobs").glob("*/model") if any(d.iterdir())]
    assert len(model_dirs) == 2, f"expected the GNN's and the transformer's model dirs, got {model_dirs}"
    for model_dir in model_dirs:
        files = [p for p in model_dir.rglob("*") if p.is_file()]
        # code/: the serving handler and featurizer sources that travel with the model (no binaries).
        bad = [str(p.relative_to(model_dir)) for p in files
               if p.suffix.lower() not in (ALLOWED_CODE_SUFFIXES if p.relative_to(model_dir).parts[0] == "code"
                                           else ALLOWED_MODEL_SUFFIXES)]
        assert not bad, f"{model_dir}: files other than safetensors/json/tokenizer files: {bad}"
        weights = [p for p in files if p.suffix == ".safetensors"]
        assert weights, f"{model_dir}: no safetensors weights"
        for path in weights:
            with safe_open(str(path), framework="pt") as tensors:
                assert list(tensors.keys()), f"{path}: no tensors"

    archives = sorted((home / "artifacts").rglob("model.tar.gz"))
    assert archives, f"no model.tar.gz under {home / 'artifacts'}"
    with_weights = 0
    for archive in archives:
        with tarfile.open(archive) as tar:
            members = [m for m in tar.getmembers() if m.isfile()]
        bad = [m.name for m in members if Path(m.name).suffix.lower() not in
               (ALLOWED_CODE_SUFFIXES if m.name.startswith("code/") else ALLOWED_MODEL_SUFFIXES)]
        assert not bad, f"{archive}: members other than safetensors/json/tokenizer files: {bad}"
        with_weights += any(m.name.endswith(".safetensors") for m in members)
    assert with_weights >= 2, f"only {with_weights} model.tar.gz hold safetensors weights: {archives}"

    # Checkpoints, optimizer state included: safetensors and JSON only.
    checkpoint_dirs = [*(home / "jobs").glob("*/checkpoints"), *(home / "artifacts").rglob("checkpoints")]
    checkpoint_files = [p for d in checkpoint_dirs for p in d.rglob("*") if p.is_file()]
    assert any(p.name.startswith("optimizer-e") and p.suffix == ".safetensors" for p in checkpoint_files), \
        checkpoint_dirs
    bad = [str(p) for p in checkpoint_files if p.suffix.lower() not in ALLOWED_MODEL_SUFFIXES]
    assert not bad, f"unexpected checkpoint files: {bad}"

    stray = [str(p) for p in home.rglob("*") if p.is_file() and p.suffix.lower() in PICKLE_SUFFIXES]
    assert not stray, f"pickle-format files written by the run: {stray}"

