"""winoeval.results: results and samples files are claimed under fresh names atomically."""

from __future__ import annotations

import json
import threading

from winoeval.results import write_outputs


def test_result_names_are_claimed_atomically(tmp_path):
    paths: dict[int, tuple] = {}

    def write(i):
        paths[i] = write_outputs({"n": i}, {"colors": [{"id": str(i)}]}, tmp_path, log_samples=True)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(30)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    results = sorted(tmp_path.glob("results_*.json"))
    assert len(results) == 30 and len({p[0] for p in paths.values()}) == 30
    for i, (results_path, samples) in paths.items():  # each results file is its own run's, with its own samples
        assert json.loads(results_path.read_text())["n"] == i == int(json.loads(samples["colors"].read_text())["id"])
    assert not list(tmp_path.glob(".*.tmp"))
