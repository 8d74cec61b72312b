"""Tiny generated records and channels for the training entry (`training_entry/`), shared by its tests.

Importing this module puts `training_entry/` on ``sys.path`` (the entry's modules are imported by
their own names there, ``import data``, ``import artifacts``, as SageMaker's container does).
"""

from __future__ import annotations

import importlib
import json
import random
import re
import sys
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ENTRY_DIR = REPO / "training_entry"
if str(ENTRY_DIR) not in sys.path:
    sys.path.insert(0, str(ENTRY_DIR))

# Model sizes small enough for a CPU test, passed to the entry as flags.
TINY_GNN = ["--hidden-size", "16", "--num-layers", "1"]
TINY_TRANSFORMER = ["--hidden-size", "32", "--num-layers", "1", "--num-heads", "2", "--max-length", "64",
                    "--vocab-size", "400"]


def real_graphs_available() -> bool:
    try:
        g = importlib.import_module("streamguard.core.graphs")
    except ImportError:
        return False
    return hasattr(g, "build_graph")


def fake_graphs_module() -> types.ModuleType:
    """A token-chain stand-in with the featurizer's interface, used only while the real one is absent."""
    mod = types.ModuleType("streamguard.core.graphs")
    kinds = ("ident", "string", "plus", "percent", "call", "punct", "number", "other")
    mod.NODE_KINDS, mod.NUM_NODE_KINDS = kinds, len(kinds)
    mod.NODE_FEATURES, mod.NODE_FEAT_DIM = ("concat", "quote", "placeholder"), 3
    mod.EDGE_TYPES, mod.NUM_EDGE_TYPES = ("next", "skip"), 2
    mod.FEATURIZER_VERSION = mod.GRAPH_FORMAT_VERSION = "fake-1"
    mod.SUBTOKENS = {"vocab": "fake", "buckets": 64, "per_node": 2}

    def build_graph(code: str, language: str) -> dict:
        toks = re.findall(r"\w+|'[^']*'|\"[^\"]*\"|\S", code)[:96] or ["<empty>"]
        kind, feat = [], []
        for t in toks:
            k = (1 if t[0] in "'\"" else 2 if t == "+" else 3 if t == "%" else 4 if t in ("execute", "executeQuery")
                 else 6 if t.isdigit() else 0 if t[0].isalpha() or t[0] == "_" else 5)
            kind.append(k)
            feat.append([float(t == "+" or t.startswith("f\"")), float(t[0] in "'\"" and "'" in t[1:-1]),
                         float(t in ("?", "%s") or "?" in t or "%s" in t)])
        n = len(toks)
        src = list(range(n - 1)) + list(range(n - 2))
        dst = list(range(1, n)) + list(range(2, n))
        etype = [0] * (n - 1) + [1] * max(n - 2, 0)
        subtok = [[i, 1 + sum(map(ord, t)) % 64] for i, t in enumerate(toks) if t[0].isalpha()]
        return {"v": mod.FEATURIZER_VERSION, "language": language, "parse_ok": True, "num_nodes": n,
                "kind": kind, "feat": feat, "subtok": subtok, "edge_index": [src, dst], "edge_type": etype}

    mod.build_graph = build_graph
    return mod


_FUNCS = ("get_user", "find_order", "load_item", "lookup", "fetch_row", "search", "by_name", "read_account")
_TABLES = ("users", "orders", "items", "accounts", "products")
_COLS = ("name", "email", "sku", "owner", "title")
_VARS = ("name", "value", "term", "key", "q")


def isolate_entry(monkeypatch, tmp_path: Path) -> None:
    """What an entry test runs under: the real featurizer when present (else `fake_graphs_module`), no
    SageMaker env leaking in, the failure file and a fresh checkpoint dir in ``tmp_path`` (never a
    shared /opt/ml/checkpoints that would resume across tests)."""
    import os

    if not real_graphs_available():
        monkeypatch.setitem(sys.modules, "streamguard.core.graphs", fake_graphs_module())
    for var in list(os.environ):
        if var.startswith("SM_"):
            monkeypatch.delenv(var)
    monkeypatch.setenv("SM_OUTPUT_DIR", str(tmp_path / "sm_output"))
    monkeypatch.setenv("SM_CHECKPOINT_DIR", str(tmp_path / "checkpoints"))


def make_records(n: int, seed: int = 0, *, java_every: int = 4) -> list[dict]:
    """Tiny labelled records: SQL built by string concatenation (1) vs parameterised queries (0)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        f, t, c, v = rng.choice(_FUNCS), rng.choice(_TABLES), rng.choice(_COLS), rng.choice(_VARS)
        if java_every and i % java_every in (2, 3):
            if label:
                code = (f"public ResultSet {f}(Connection conn, String {v}) throws SQLException {{\n"
                        f"    Statement st = conn.createStatement();\n"
                        f"    return st.executeQuery(\"SELECT * FROM {t} WHERE {c} = '\" + {v} + \"'\");\n}}\n")
            else:
                code = (f"public ResultSet {f}(Connection conn, String {v}) throws SQLException {{\n"
                        f"    PreparedStatement ps = conn.prepareStatement(\"SELECT * FROM {t} WHERE {c} = ?\");\n"
                        f"    ps.setString(1, {v});\n    return ps.executeQuery();\n}}\n")
            lang, cwe = "java", "CWE-89"
        else:
            if label:
                code = (f"def {f}(cur, {v}):\n"
                        f"    cur.execute(\"SELECT * FROM {t} WHERE {c} = '\" + {v} + \"'\")\n"
                        f"    return cur.fetchall()\n")
            else:
                code = (f"def {f}(cur, {v}):\n"
                        f"    cur.execute(\"SELECT * FROM {t} WHERE {c} = %s\", ({v},))\n"
                        f"    return cur.fetchall()\n")
            lang, cwe = "python", "CWE-89"
        out.append({"id": f"r{seed}-{i}", "code": code, "label": label, "language": lang, "cwe": cwe})
    return out


def write_jsonl(path: Path, records: list[dict], *, gz: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in records)
    if gz:
        import gzip

        with gzip.open(path, "wt", encoding="utf-8") as fh:
            fh.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def prepared(records: list[dict]) -> list[dict]:
    """Records as `streamguard prepare` writes them (with the featurizer's graph)."""
    g = importlib.import_module("streamguard.core.graphs")

    return [dict(r, group=r["id"], source="test", origin="input", graph=g.build_graph(r["code"], r["language"]))
            for r in records]


def make_channels(root: Path, *, n_train: int = 32, n_val: int = 12, n_test: int = 12,
                  with_graphs: bool = False) -> dict[str, Path]:
    recs = {"train": make_records(n_train, seed=10), "validation": make_records(n_val, seed=11),
            "test": make_records(n_test, seed=12)}
    out = {}
    for name, rows in recs.items():
        rows = prepared(rows) if with_graphs else rows
        # train as a gzipped file in a channel dir, the others as plain files in their dirs
        out[name] = write_jsonl(root / name / ("data.jsonl.gz" if name == "train" else "data.jsonl"), rows,
                                gz=name == "train").parent
    return out
