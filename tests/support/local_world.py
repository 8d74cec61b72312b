"""A local-backend test world: a stand-in entry script (no torch), its source dir, two channels, a backend.

The entry prints the metric line format, dumps its argv and environment, writes a model file, and
can fail, sleep or ignore SIGTERM on request (``behaviour``/``sleep`` hyperparameters). The
``world`` fixture (tests/unit/conftest.py) is `make_world` on the test's ``tmp_path``.
"""

from __future__ import annotations

from pathlib import Path

from streamguard.backends.local import LocalTrainingBackend
from streamguard.jobs.request import LOCAL_REGION, build_training_request
from streamguard.sourcedir import build_sourcedir_tarball

FAKE_ENTRY = r'''
import argparse, json, os, sys, time
import streamguard

p = argparse.ArgumentParser()
p.add_argument("--model-type", required=True)
p.add_argument("--epochs", type=int, default=2)
p.add_argument("--behaviour", default="ok")
p.add_argument("--sleep", type=float, default=0.0)
args = p.parse_args()

channels = json.loads(os.environ["SM_CHANNELS"])
dump = {
    "argv": sys.argv[1:],
    "cwd": os.getcwd(),
    "env": {k: v for k, v in os.environ.items() if k.startswith("SM_") or k == "PYTHONPATH"},
    "streamguard_file": streamguard.__file__,
    "channel_files": {c: sorted(str(q.relative_to(os.environ["SM_CHANNEL_" + c.upper()]))
                               for q in __import__("pathlib").Path(os.environ["SM_CHANNEL_" + c.upper()]).rglob("*")
                               if q.is_file()) for c in channels},
}
os.makedirs(os.environ["SM_OUTPUT_DATA_DIR"], exist_ok=True)
with open(os.path.join(os.environ["SM_OUTPUT_DATA_DIR"], "env.json"), "w") as fh:
    json.dump(dump, fh)

for e in range(args.epochs):
    loss, acc = 1.0 / (e + 1), 0.5 + 0.1 * e
    print(f"Epoch {e + 1}/{args.epochs}: Train Loss={loss:.4f}; Train Acc={acc:.4f}; "
          f"Val Acc={acc - 0.05:.4f}; Val F1={acc - 0.1:.4f}; Val FPR={0.2 / (e + 1):.4f};", flush=True)

if args.behaviour == "ignore_term":
    import signal
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
if args.sleep:
    print("sleeping", flush=True)
    time.sleep(args.sleep)
if args.behaviour == "fail":
    with open(os.path.join(os.environ["SM_OUTPUT_DIR"], "failure"), "w") as fh:
        fh.write("ValueError: the train channel has no positive examples")
    sys.exit(1)
if args.behaviour == "crash":
    print("about to crash", flush=True)
    sys.exit(3)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "model.txt"), "w") as fh:
    fh.write("weights for " + args.model_type)
os.makedirs(os.path.join(os.environ["SM_MODEL_DIR"], "tokenizer"), exist_ok=True)
with open(os.path.join(os.environ["SM_MODEL_DIR"], "tokenizer", ".hidden.json"), "w") as fh:
    fh.write("{}")
'''


def make_world(tmp_path: Path) -> dict:
    """A source dir tarball, two file:// channels, an output root and a backend."""
    entry = tmp_path / "entry"
    entry.mkdir()
    (entry / "train_enhanced_models.py").write_text(FAKE_ENTRY)
    (entry / "requirements.txt").write_text("")
    tarball, sha = build_sourcedir_tarball(tmp_path / "src" / "sourcedir.tar.gz", entry_dir=entry)
    data = tmp_path / "data"
    for channel in ("train", "validation"):
        (data / channel / "part").mkdir(parents=True)
        (data / channel / "data.jsonl").write_text('{"code": "x", "label": 1}\n')
        (data / channel / "part" / "more.jsonl").write_text('{"code": "y", "label": 0}\n')
    return {
        "tmp": tmp_path,
        "source": tarball.as_uri(),
        "channels": {c: (data / c).as_uri() for c in ("train", "validation")},
        "output": (tmp_path / "out").as_uri(),
        "backend": LocalTrainingBackend(tmp_path / "jobs"),
    }


def make_request(world, name, *, max_runtime_s=60, **hps):
    return build_training_request(
        job_name=name, model_type="gnn", channels=world["channels"], output_uri=world["output"],
        source_dir_uri=world["source"], hyperparameters={"model-type": "gnn", "epochs": 2, **hps},
        role_arn="arn:aws:iam::000000000000:role/local", region=LOCAL_REGION, max_runtime_s=max_runtime_s,
    )
