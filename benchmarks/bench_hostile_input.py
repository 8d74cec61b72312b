"""Peak memory and time of `prepare` on hostile inputs (a benchmark: it prints, it asserts nothing).

Probes, each run by a fresh process under an address-space limit and a timeout:

- ``gzip-zeros``: a ~3 MB gzip of zeros (3 GiB inflated, no newline: one "line");
- ``gzip-empty-objects``: a ~3 MB gzip of ``{}`` lines (3 GiB, a billion records without code);
- ``long-line``: one 200 MB JSON line;
- ``many-rejects``: 1 million ``{}`` lines, plain (what a quarantine held in memory costs);
- ``fifo``: a named pipe as the input (nobody writes to it).

Usage::

    .venv/bin/python benchmarks/bench_hostile_input.py                 # this checkout
    .venv/bin/python benchmarks/bench_hostile_input.py --source /tmp/old-checkout   # another tree

``--source`` runs the probes against another source tree (e.g. an older commit extracted with
``git archive <commit> | tar -x -C /tmp/old``) to compare before and after.
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GIB = 1 << 30

CHILD = """
import sys
from streamguard.data.prepare import prepare, PrepareError
try:
    r = prepare([sys.argv[1]], sys.argv[2], with_graphs=False, auto_counterfactuals=False)
    print(f"ok: kept {r.kept}, quarantined {r.quarantined_total}")
except PrepareError as exc:
    print(f"refused: {exc}"[:160])
except MemoryError:
    print("MemoryError")
"""


def gzip_of(path: Path, chunk: bytes, total: int) -> None:
    comp = zlib.compressobj(6, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        written = 0
        while written < total:
            fh.write(comp.compress(chunk))
            written += len(chunk)
        fh.write(comp.flush())


def make_probes(root: Path) -> dict[str, Path]:
    probes = {}
    p = root / "zeros.jsonl.gz"
    gzip_of(p, bytes(16 << 20), 3 * GIB)
    probes["gzip-zeros"] = p
    p = root / "empty-objects.jsonl.gz"
    gzip_of(p, b"{}\n" * ((16 << 20) // 3), 3 * GIB)
    probes["gzip-empty-objects"] = p
    p = root / "long-line.jsonl"
    with open(p, "wb") as fh:
        fh.write(b'{"code": "')
        for _ in range(200):
            fh.write(b"x" * (1 << 20))
        fh.write(b'", "label": 1}\n')
    probes["long-line"] = p
    p = root / "many-rejects.jsonl"
    p.write_bytes(b"{}\n" * 1_000_000)
    probes["many-rejects"] = p
    p = root / "pipe.jsonl"
    os.mkfifo(p)
    probes["fifo"] = p
    return probes


def run_probe(source: Path, path: Path, out: Path, limit_bytes: int, timeout: float) -> tuple[str, float, float]:
    """(outcome, peak RSS in MB, seconds) of one probe in a fresh process."""
    env = dict(os.environ, PYTHONPATH=str(source))

    def limits():
        resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    started = time.monotonic()
    log = out.with_suffix(".log")
    with open(log, "wb") as fh:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(out)], env=env, cwd=str(source),
                                stdout=fh, stderr=subprocess.STDOUT, preexec_fn=limits, start_new_session=True)
    timed_out = False
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() - started > timeout:
            os.killpg(proc.pid, signal.SIGKILL)
            _, status, usage = os.wait4(proc.pid, 0)
            timed_out = True
            break
        time.sleep(0.05)
    seconds = time.monotonic() - started
    text = log.read_text(errors="replace").strip()
    if timed_out:
        outcome = f"still running after {timeout:.0f} s: killed"
    elif "MemoryError" in text:
        outcome = f"MemoryError at the {limit_bytes / GIB:.0f} GiB address-space limit"
    else:
        outcome = text.splitlines()[-1] if text else f"exit status {status}"
    return outcome, usage.ru_maxrss / 1024, seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=REPO, help="source tree whose streamguard is run")
    parser.add_argument("--limit-gib", type=float, default=6.0, help="address-space limit per probe")
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds per probe")
    parser.add_argument("--only", nargs="*", help="run only these probes")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sg-hostile-") as tmp:
        root = Path(tmp)
        probes = make_probes(root)
        print(f"source: {args.source}")
        print(f"{'probe':<20} {'input MB':>9} {'peak RSS MB':>12} {'seconds':>8}  outcome")
        for name, path in probes.items():
            if args.only and name not in args.only:
                continue
            size = 0 if name == "fifo" else path.stat().st_size / 1e6
            outcome, rss, seconds = run_probe(args.source, path, root / f"out-{name}",
                                              int(args.limit_gib * GIB), args.timeout)
            print(f"{name:<20} {size:>9.1f} {rss:>12.0f} {seconds:>8.1f}  {outcome}", flush=True)


if __name__ == "__main__":
    main()
