"""Catalog entries of the generation metrics (:mod:`eval_platform.metrics.generation`): names, parameters,
directions and per-example decompositions, registered by :mod:`eval_platform.metrics.catalog`."""

from __future__ import annotations

import numpy as np

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics.base import MetricDefinition, Param
from eval_platform.metrics.generation import (
    EMBEDDINGS_EXTRA,
    REFUSAL_PATTERNS,
    ROUGE_TYPES,
    bleu,
    chrf,
    distinct_n,
    exact_match,
    exact_match_per_example,
    length_mean,
    length_per_example,
    length_ratio,
    refusal_per_example,
    rouge,
    rouge_per_example,
    self_bleu,
    token_f1,
    token_f1_per_example,
)
from eval_platform.metrics.semantic_similarity import semantic_similarity, semantic_similarity_per_example

METRICS: list[MetricDefinition] = []

GENERATION = frozenset({"generation"})
_PAIR = ("prediction", "reference")
_PRED = ("prediction",)
_NORMALIZATION = {"normalization": Param(str, default="squad")}
_BLEU_PARAMS = {"tokenize": Param(str, default="13a"), "lowercase": Param(bool, default=False)}
_CHRF_PARAMS = {"word_order": Param(int, default=0, minimum=0, maximum=2), "lowercase": Param(bool, default=False)}
_STEMMER = {"use_stemmer": Param(bool, default=False)}


def _first_line(fn) -> str:
    return (fn.__doc__ or "").strip().splitlines()[0]


def _args(columns, required):
    return [columns[name] for name in required]


def _define(name, fn, required, direction="higher", params=None, per_example=None, description="", fixed=None):
    fixed = fixed or {}

    def compute(columns, **kwargs):
        return fn(*_args(columns, required), **fixed, **kwargs)

    per_unit = None
    if per_example is not None:

        def per_unit(columns, **kwargs):
            values = per_example(*_args(columns, required), **fixed, **kwargs)
            return np.arange(values.shape[0]), values

    METRICS.append(
        MetricDefinition(
            name=name,
            version=1,
            direction=direction,
            task_types=GENERATION,
            required_columns=required,
            compute=compute,
            params=params or {},
            unit="example",
            per_unit=per_unit,
            description=description or _first_line(fn),
        )
    )


def _refusals(per_example):
    def run(prediction, patterns_version=1):
        if patterns_version not in REFUSAL_PATTERNS:
            known = sorted(REFUSAL_PATTERNS)
            raise InvalidInput("patterns_version", f"must be one of {known}, got {patterns_version!r}")
        return per_example(prediction, REFUSAL_PATTERNS[patterns_version])

    return run


_define(
    "exact_match",
    exact_match,
    _PAIR,
    params=_NORMALIZATION,
    per_example=exact_match_per_example,
    description="Fraction of predictions equal to a reference after normalisation (SQuAD-style by default).",
)
_define("token_f1", token_f1, _PAIR, params=_NORMALIZATION, per_example=token_f1_per_example)
_define(
    "bleu",
    bleu,
    _PAIR,
    params=_BLEU_PARAMS,
    description="Corpus BLEU from sacrebleu / 100 (signature: bleu_signature(), e.g. "
    "nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp).",
)
_define(
    "chrf",
    chrf,
    _PAIR,
    params=_CHRF_PARAMS,
    description="Corpus chrF from sacrebleu / 100; word_order=2 is chrF++ (signature: chrf_signature()).",
)
for _rouge_type in ROUGE_TYPES:
    _define(
        _rouge_type,
        rouge,
        _PAIR,
        params=_STEMMER,
        per_example=rouge_per_example,
        fixed={"rouge_type": _rouge_type},
        description=f"Mean {_rouge_type} F-measure from rouge-score (ASCII-only tokenizer: non-Latin text scores 0).",
    )
for _n in (1, 2):
    _define(
        f"distinct_{_n}",
        distinct_n,
        _PRED,
        fixed={"n": _n},
        description=f"Unique {_n}-grams / all {_n}-grams over the predictions (diversity).",
    )
_define(
    "self_bleu",
    self_bleu,
    _PRED,
    direction="lower",
    params={
        "max_examples": Param(int, default=1000, minimum=2),
        "seed": Param(int, default=0, minimum=0),
        "tokenize": Param(str, default="13a"),
    },
    description="Mean sentence BLEU / 100 of each prediction against the other predictions (lower = more diverse).",
)
_define(
    "length_mean",
    length_mean,
    _PRED,
    per_example=length_per_example,
    description="Mean whitespace tokens per prediction. Informational: its direction 'higher' is nominal, "
    "not a quality claim.",
)
_define(
    "length_ratio",
    length_ratio,
    _PAIR,
    description="Total prediction tokens / total reference tokens. Informational: 1 means as long as the references.",
)
_define(
    "refusal_rate",
    _refusals(lambda p, patterns: float(np.mean(refusal_per_example(p, patterns)))),
    _PRED,
    direction="lower",
    params={"patterns_version": Param(int, default=1, minimum=1, maximum=max(REFUSAL_PATTERNS))},
    per_example=_refusals(refusal_per_example),
    description="Fraction of predictions matching the refusal patterns REFUSAL_PATTERNS_V1 (patterns_version=1).",
)
_define(
    "semantic_similarity",
    semantic_similarity,
    _PAIR,
    per_example=semantic_similarity_per_example,
    description=f"Mean cosine similarity of all-MiniLM-L6-v2 embeddings (needs {EMBEDDINGS_EXTRA}).",
)
