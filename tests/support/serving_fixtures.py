"""Tiny trained models for the serving, scan and A/B tests (the session fixture ``trained_models``).

Both models are trained by the real entry script (in process, a few seconds on 2 cores), packed as
model.tar.gz the way the local backend does, and registered in a local registry as versions 1
(champion) and 2 of each model, so tests can serve `<model>@champion`, A/B two versions, and
tamper with an artifact without touching another test's copy.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import textwrap
from contextlib import redirect_stdout
from pathlib import Path

GNN_NAME, TRANSFORMER_NAME = "taint_flow_gnn", "sql_intent_transformer"

# Code the serving tests send: a Python and a Java SQL injection, and a parameterised query.
VULN_PY = textwrap.dedent('''\
    from flask import request

    def lookup(cur):
        name = request.args.get("name")
        query = "SELECT * FROM users WHERE name = '" + name + "'"
        cur.execute(query)
        return cur.fetchall()
''')
SAFE_PY = textwrap.dedent('''\
    def lookup(cur, name):
        cur.execute("SELECT * FROM users WHERE name = %s", (name,))
        return cur.fetchall()
''')
VULN_JAVA = textwrap.dedent('''\
    public ResultSet find(Connection conn, String user) throws SQLException {
        Statement st = conn.createStatement();
        String q = "SELECT * FROM t WHERE c = '" + user + "'";
        return st.executeQuery(q);
    }
''')


# Safe functions with no query at all. Most of a scanned project looks like this, and the SQL records
# alone never show the models a function without a sink (the scan tests check one is not reported).
_SINK_FREE = (
    ("python", "def {f}(values):\n    return sum(values) / max(len(values), 1)\n"),
    ("python", "def {f}(first, last):\n    return (first + ' ' + last).strip()\n"),
    ("python", "def {f}(items, key):\n    return sorted(items, key=lambda r: r[key])\n"),
    ("java", "public int {f}(List<String> items) {{\n    return items.size();\n}}\n"),
    ("java", "public String {f}(String a, String b) {{\n    return a.trim() + \"-\" + b.trim();\n}}\n"),
)
_SINK_FREE_NAMES = ("mean", "join_names", "order_by", "count_items", "label_of", "size_of")


def _add_sink_free_functions(train_dir: Path) -> int:
    """Append the sink-free functions to the train channel; returns its number of records."""
    import gzip
    import json

    from tests.support.entry_data import prepared

    path = train_dir / "data.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh]
    extra = [{"id": f"sink-free-{i}", "code": code.format(f=name), "language": lang, "label": 0, "cwe": "CWE-89"}
             for i, (name, (lang, code)) in enumerate(
                 (n, t) for n in _SINK_FREE_NAMES for t in _SINK_FREE)]
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for row in rows + prepared(extra):
            fh.write(json.dumps(row) + "\n")
    return len(rows) + len(extra)


def _train(model_type: str, channels: dict, model_dir: Path, seed: int) -> None:
    from tests.support.entry_data import TINY_GNN, TINY_TRANSFORMER  # puts training_entry on sys.path

    import train_enhanced_models as entry

    tiny = TINY_GNN if model_type == "gnn" else TINY_TRANSFORMER
    argv = ["--model-type", model_type, "--epochs", "3" if model_type == "gnn" else "1", "--batch-size", "8",
            "--learning-rate", "0.005", "--seed", str(seed), *tiny, "--checkpoint-dir", "none",
            "--progress-interval-s", "0", "--train", channels["train"], "--validation", channels["validation"],
            "--model-dir", model_dir]
    buf = io.StringIO()
    with redirect_stdout(buf):
        rc = entry.main([str(a) for a in argv])
    assert rc == 0, buf.getvalue()[-3000:]


def register(client, name: str, model_type: str, archive: Path, job: str, *, status: str = "registered"):
    sha = hashlib.sha256(archive.read_bytes()).hexdigest()
    gate = {"passed": status == "registered", "reasons": [] if status == "registered" else ["test: rejected"]}
    return client.register(name, model_type=model_type, artifact_uri=archive.as_uri(), artifact_sha256=sha,
                           metrics={"test": {"accuracy": 0.9}}, training_job_name=job, backend="local",
                           data_hash="d" * 16, code_version="test", hyperparameters={}, gate=gate, status=status)


def train_and_register(root: Path) -> dict:
    """``{"root", "registry", "gnn": {"dir", "archive"}, "transformer": {...}, "versions": {...}}``."""
    from streamguard.registry import RegistryClient
    from streamguard.sourcedir import tar_directory
    from tests.support.entry_data import make_channels

    channels = make_channels(root / "data", n_train=48, n_val=12, n_test=4, with_graphs=True)
    n_train = _add_sink_free_functions(channels["train"])
    client = RegistryClient((root / "registry").as_uri())
    out = {"root": root, "registry": client.uri, "channels": channels, "n_train": n_train}
    for model_type, name in (("gnn", GNN_NAME), ("transformer", TRANSFORMER_NAME)):
        model_dir = root / model_type / "model"
        _train(model_type, channels, model_dir, seed=3)
        versions = []
        for v in (1, 2):
            # Two registered versions with distinct archives (and sha256s) of the same weights.
            archive = root / model_type / f"v{v}" / "model.tar.gz"
            copy = root / model_type / f"v{v}" / "dir"
            shutil.copytree(model_dir, copy)
            (copy / "release.txt").write_text(f"version {v}\n")
            tar_directory(copy, archive)
            record = register(client, name, model_type, archive, f"job-{model_type}-{v}")
            versions.append(record)
        client.promote(name, versions[0].version)
        out[model_type] = {"dir": model_dir, "archive": root / model_type / "v1" / "model.tar.gz",
                           "name": name, "versions": versions}
    return out
