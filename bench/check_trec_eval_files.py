"""Compare the trec_eval measures with trec_eval itself on trec_eval's own test files (not vendored here).

    .venv/bin/python bench/check_trec_eval_files.py PATH/TO/trec_eval/test

For `qrels.test` with `results.test` and with `results.trunc` (run lines with trailing text), every new measure is
compared per query with pytrec_eval (trec_eval's C code) and the `results.test` means with the 4 decimals trec_eval
publishes in `out.test.a`. Prints the largest difference per measure and exits 1 on any mismatch. The test suite
checks the same measures against pytrec_eval on seeded random runs (tests/metrics/test_trec_measures.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytrec_eval

from eval_platform.metrics import trec

CUTS = (1, 5, 10, 1000)
MEASURES = {"bpref": "bpref", "ndcg": "ndcg", "set_P": "set_P", "set_recall": "set_recall", "set_F": "set_F",
            "num_rel": "num_rel", "num_ret": "num_ret", "num_rel_ret": "num_rel_ret",
            **{f"map_cut_{k}": f"map_cut_{k}" for k in CUTS}, **{f"ndcg_cut_{k}": f"ndcg_cut_{k}" for k in CUTS}}
PYTREC_MEASURES = {"bpref", "ndcg", "set_P", "set_recall", "set_F", "num_rel", "num_ret", "num_rel_ret",
                   "map_cut." + ",".join(map(str, CUTS)), "ndcg_cut." + ",".join(map(str, CUTS))}
TOLERANCE = 1e-12


def compare(directory: Path, run_file: str) -> bool:
    qrels, run = trec.read_qrels(directory / "qrels.test"), trec.read_run(directory / run_file)
    expected = pytrec_eval.RelevanceEvaluator(
        {str(q): {str(d): int(r) for _, d, r in group.itertuples(index=False, name=None)} for q, group in qrels.groupby("query_id")},
        PYTREC_MEASURES).evaluate(
        {str(q): {str(d): float(s) for _, d, s in group[["query_id", "doc_id", "score"]].itertuples(index=False, name=None)}
         for q, group in run.groupby("query_id")})
    result = trec.score_ranking(qrels, run, list(MEASURES), per_query=True)
    ok = True
    for measure, key in MEASURES.items():
        worst = max(abs(result["per_query"][measure][q] - expected[q][key]) for q in expected)
        ok &= worst <= TOLERANCE
        print(f"{run_file:14} {measure:14} largest per-query difference {worst:.1e}")
    if run_file == "results.test":
        published = dict(line.split()[::2] for line in (directory / "out.test.a").read_text().splitlines())
        for name, value in result["mean"].items():
            shown = f"{int(value)}" if name.startswith("num_") else f"{value:.4f}"
            if name in published:
                ok &= shown == published[name]
                print(f"{run_file:14} {name:14} {shown} (trec_eval printed {published[name]})")
    return ok


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    sys.exit(0 if all([compare(folder, "results.test"), compare(folder, "results.trunc")]) else 1)
