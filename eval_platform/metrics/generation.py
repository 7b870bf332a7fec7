"""Text-generation metrics over a ``prediction`` and a ``reference`` column of strings.

Conventions shared by every function here:

* ``prediction`` is a one-dimensional sequence (list, numpy array of ``str`` or ``object``, pandas
  Series) of strings, one per example. Functions take ``(prediction, reference)`` in that order, like
  sacrebleu's ``(hypotheses, references)``.
* ``reference`` has one entry per example: a string, or a non-empty list/tuple/array of strings when the
  example has several valid references (a 2-D ``(n, k)`` array means ``k`` references per example). How
  several references combine is part of each metric's definition and said in its docstring: the *best*
  reference counts for exact match, token F1, ROUGE and semantic similarity, sacrebleu's own multi-reference
  rules for BLEU and chrF, the mean reference length for the length ratio.
* Validation happens at the boundary and raises :class:`~eval_platform.core.errors.InvalidInput`: empty input,
  different lengths, ``None``/NaN (missing) or non-string values, and an example with an empty list of
  references are all rejected. An empty *string* is a valid prediction or reference.
* A metric that is undefined for the data returns ``nan`` instead of raising (distinct-n without any
  n-gram, self-BLEU with fewer than two predictions, the length ratio when every reference is empty). The
  gate treats ``nan`` as a missing metric.
* Library-backed scores are reported on a [0, 1] scale: sacrebleu's BLEU and chrF are divided by 100.
* "Tokens" for exact match, token F1, distinct-n and the length statistics are whitespace tokens
  (``str.split()``); BLEU, chrF and ROUGE use their library's own tokenisation, described per function.

sacrebleu and rouge-score are imported lazily, so the catalog imports without them; a metric that needs a
missing package raises :class:`MissingDependency` (an ``InvalidInput``) naming what to install. The
embedding similarity is in :mod:`eval_platform.metrics.semantic_similarity` (optional extra
``eval-platform[embeddings]``). The catalog entries of these metrics are in
:mod:`eval_platform.metrics.generation_defs`.
"""

from __future__ import annotations

import functools
import math
import re
import string
from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np

from eval_platform.core.errors import InvalidInput

__all__ = [
    "BLEU_TOKENIZERS",
    "EMBEDDINGS_EXTRA",
    "NORMALIZATIONS",
    "REFUSAL_PATTERNS",
    "REFUSAL_PATTERNS_V1",
    "ROUGE_TYPES",
    "MissingDependency",
    "bleu",
    "bleu_signature",
    "chrf",
    "chrf_signature",
    "distinct_n",
    "exact_match",
    "exact_match_per_example",
    "length_mean",
    "length_per_example",
    "length_ratio",
    "normalize_answer",
    "refusal_per_example",
    "refusal_rate",
    "rouge",
    "rouge_per_example",
    "self_bleu",
    "token_f1",
    "token_f1_per_example",
]

EMBEDDINGS_EXTRA = "eval-platform[embeddings]"

#: Answer normalisations of :func:`normalize_answer`.
NORMALIZATIONS = ("squad", "lower", "none")

#: sacrebleu tokenizers that work offline with no extra package (``ja-mecab``, ``ko-mecab`` and the
#: sentencepiece ones need extra packages or download models, so they are refused).
BLEU_TOKENIZERS = ("13a", "intl", "zh", "char", "none")

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


class MissingDependency(InvalidInput):
    """A metric needs an optional package that is not installed; the message says what to install."""


# --------------------------------------------------------------------------------------------------------
# input validation


def _text_rows(values: Any, field: str) -> list[Any]:
    if isinstance(values, str | bytes):
        raise InvalidInput(field, "must be a sequence of strings, one per example, not a single string")
    if isinstance(values, np.ndarray):
        if values.ndim == 0:
            raise InvalidInput(field, "must be a sequence of strings, one per example")
        return list(values)
    try:
        return list(values)
    except TypeError:
        raise InvalidInput(field, f"must be a sequence of strings, got {type(values).__name__}") from None


def _check_text(value: Any, field: str, where: str) -> str:
    if isinstance(value, str):
        return str(value)  # numpy.str_ -> str
    if value is None:
        raise InvalidInput(field, f"{where} is None (missing); drop or fill the example before evaluating")
    if isinstance(value, float) and math.isnan(value):
        raise InvalidInput(field, f"{where} is NaN (missing); drop or fill the example before evaluating")
    raise InvalidInput(field, f"{where} must be a string, got {type(value).__name__} {value!r}")


def _check_predictions(prediction: Any) -> list[str]:
    rows = _text_rows(prediction, "prediction")
    if isinstance(prediction, np.ndarray) and prediction.ndim != 1:
        raise InvalidInput("prediction", f"must be one-dimensional, got shape {prediction.shape}")
    if not rows:
        raise InvalidInput("prediction", "is empty: no examples to evaluate")
    return [_check_text(v, "prediction", f"row {i}") for i, v in enumerate(rows)]


def _check_references(reference: Any) -> list[list[str]]:
    if isinstance(reference, np.ndarray) and reference.ndim > 2:
        raise InvalidInput("reference", f"must be one- or two-dimensional, got shape {reference.shape}")
    rows = _text_rows(reference, "reference")
    out: list[list[str]] = []
    for i, row in enumerate(rows):
        if isinstance(row, str) or row is None or (isinstance(row, float) and math.isnan(row)):
            out.append([_check_text(row, "reference", f"row {i}")])
            continue
        if isinstance(row, np.ndarray):
            row = row.tolist() if row.ndim else [row.item()]
        if not isinstance(row, list | tuple):
            _check_text(row, "reference", f"row {i}")  # raises with the type
        if not row:
            raise InvalidInput("reference", f"row {i} has no reference (empty list); every example needs one")
        out.append([_check_text(v, "reference", f"row {i}, reference {j}") for j, v in enumerate(row)])
    return out


def check_pair(prediction: Any, reference: Any) -> tuple[list[str], list[list[str]]]:
    preds = _check_predictions(prediction)
    refs = _check_references(reference)
    if len(preds) != len(refs):
        raise InvalidInput("prediction/reference", f"have different lengths ({len(preds)} and {len(refs)})")
    return preds, refs


def _check_choice(field: str, value: Any, allowed: Sequence[str]) -> str:
    if value not in allowed:
        raise InvalidInput(field, f"must be one of {list(allowed)}, got {value!r}")
    return value


# --------------------------------------------------------------------------------------------------------
# exact match and token F1 (SQuAD)

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCTUATION = frozenset(string.punctuation)


def normalize_answer(text: str, normalization: str = "squad") -> str:
    """Normalise an answer before exact match / token F1.

    * ``"squad"`` — the official SQuAD evaluation script: lowercase, delete ASCII punctuation
      (``string.punctuation``; other Unicode punctuation such as ``’`` or ``¿`` is kept), delete the
      English articles *a*, *an*, *the* as whole words, and collapse whitespace to single spaces (stripped).
    * ``"lower"`` — lowercase and collapse whitespace only.
    * ``"none"`` — the string unchanged (exact match compares raw strings, including surrounding spaces).
    """
    _check_choice("normalization", normalization, NORMALIZATIONS)
    if normalization == "none":
        return text
    text = text.lower()
    if normalization == "squad":
        text = "".join(ch for ch in text if ch not in _PUNCTUATION)
        text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def exact_match_per_example(prediction, reference, normalization: str = "squad") -> np.ndarray:
    """1.0 where ``normalize(prediction) == normalize(r)`` for some reference ``r``, else 0.0.

    With several references the best one counts (SQuAD's ``max`` over gold answers). Two empty strings
    match; so do a prediction and a reference that both normalise to ``""`` (``"The"`` vs ``"a."``).
    """
    preds, refs = check_pair(prediction, reference)
    _check_choice("normalization", normalization, NORMALIZATIONS)
    return np.array(
        [
            float(any(normalize_answer(p, normalization) == normalize_answer(r, normalization) for r in rs))
            for p, rs in zip(preds, refs, strict=True)
        ],
        dtype=np.float64,
    )


def exact_match(prediction, reference, normalization: str = "squad") -> float:
    """Fraction of examples whose normalised prediction equals a normalised reference (see above)."""
    return float(np.mean(exact_match_per_example(prediction, reference, normalization)))


def _token_f1(pred_tokens: list[str], ref_tokens: list[str]) -> float:
    if not pred_tokens or not ref_tokens:
        return float(pred_tokens == ref_tokens)
    common = sum((Counter(pred_tokens) & Counter(ref_tokens)).values())
    if common == 0:
        return 0.0
    precision = common / len(pred_tokens)
    recall = common / len(ref_tokens)
    return 2 * precision * recall / (precision + recall)


def token_f1_per_example(prediction, reference, normalization: str = "squad") -> np.ndarray:
    """SQuAD token F1 per example: ``F1 = 2 P R / (P + R)`` over the bag of normalised whitespace tokens.

    ``common = |multiset(pred) ∩ multiset(ref)|``, ``P = common / |pred|``, ``R = common / |ref|``.
    When the prediction or the reference has no token after normalisation the F1 is 1.0 if both are
    empty and 0.0 otherwise (SQuAD 2.0's no-answer rule). With several references the best F1 counts.
    """
    preds, refs = check_pair(prediction, reference)
    _check_choice("normalization", normalization, NORMALIZATIONS)
    values = []
    for p, rs in zip(preds, refs, strict=True):
        p_tokens = normalize_answer(p, normalization).split()
        values.append(max(_token_f1(p_tokens, normalize_answer(r, normalization).split()) for r in rs))
    return np.array(values, dtype=np.float64)


def token_f1(prediction, reference, normalization: str = "squad") -> float:
    """Mean SQuAD token F1 over examples (see :func:`token_f1_per_example`)."""
    return float(np.mean(token_f1_per_example(prediction, reference, normalization)))


# --------------------------------------------------------------------------------------------------------
# sacrebleu: BLEU, chrF, self-BLEU


def _sacrebleu_metrics():
    try:
        from sacrebleu.metrics import BLEU, CHRF
    except ImportError as exc:
        raise MissingDependency(
            "metric", "BLEU, chrF and self-BLEU need sacrebleu: pip install 'sacrebleu>=2.4,<3'"
        ) from exc
    return BLEU, CHRF


def _unit_interval(score: float) -> float:
    """sacrebleu's 0-100 score on [0, 1]; clipped, because identical texts can give ``100.00000000000004``."""
    return min(max(float(score) / 100.0, 0.0), 1.0)


def _reference_streams(refs: list[list[str]]) -> list[list[str | None]]:
    """sacrebleu's layout: one stream per reference slot, ``None`` where an example has fewer references."""
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


def _bleu_metric(tokenize: str, lowercase: bool, effective_order: bool = False):
    _check_choice("tokenize", tokenize, BLEU_TOKENIZERS)
    BLEU, _ = _sacrebleu_metrics()
    return BLEU(tokenize=tokenize, lowercase=bool(lowercase), effective_order=effective_order)


def _chrf_metric(word_order: int, lowercase: bool):
    if word_order not in (0, 1, 2):
        raise InvalidInput("word_order", f"must be 0 (chrF), 1 or 2 (chrF++), got {word_order!r}")
    _, CHRF = _sacrebleu_metrics()
    return CHRF(word_order=int(word_order), lowercase=bool(lowercase))


def bleu(prediction, reference, tokenize: str = "13a", lowercase: bool = False) -> float:
    """Corpus BLEU from sacrebleu, divided by 100: ``BP * exp(mean_n log p_n)`` for n = 1..4.

    ``p_n`` are corpus-level clipped n-gram precisions (a prediction n-gram counts at most as often as
    in the reference that has it most often), ``BP = exp(1 - r/c)`` when the total prediction length ``c``
    is below the total closest-reference length ``r``. sacrebleu defaults otherwise: ``exp`` smoothing,
    no effective order, tokenizer ``13a`` unless ``tokenize`` says otherwise (one of
    :data:`BLEU_TOKENIZERS`), case-sensitive unless ``lowercase``.

    Several references per example are sacrebleu's multi-reference BLEU (a variable number is allowed).
    The value is clipped to [0, 1]: sacrebleu returns ``100.00000000000004`` for some identical texts.
    Edge behaviour is sacrebleu's: BLEU is 0 when no prediction has any 4-gram (a corpus of three-word
    sentences scores 0 even when identical to the references), and 0 when nothing matches.
    The exact configuration is :func:`bleu_signature`.
    """
    preds, refs = check_pair(prediction, reference)
    metric = _bleu_metric(tokenize, lowercase)
    return _unit_interval(metric.corpus_score(preds, _reference_streams(refs)).score)


def chrf(prediction, reference, word_order: int = 0, lowercase: bool = False) -> float:
    """Corpus chrF from sacrebleu, divided by 100: character n-gram F-beta (n = 1..6, beta = 2).

    Precision and recall are averaged over n-gram orders from statistics summed over the corpus, then
    combined as ``(1 + b^2) P R / (b^2 P + R)``. Whitespace is ignored. ``word_order=2`` adds word
    uni- and bigrams (chrF++). With several references, sacrebleu keeps, per example, the statistics of
    the reference with the best sentence-level score. An empty prediction or reference contributes no
    n-grams; a corpus of only empty strings scores 0.
    """
    preds, refs = check_pair(prediction, reference)
    metric = _chrf_metric(word_order, lowercase)
    return _unit_interval(metric.corpus_score(preds, _reference_streams(refs)).score)


def _signature(metric, reference) -> str:
    if reference is None:
        metric.corpus_score([""], [[""]])
    else:
        refs = _check_references(reference)
        if not refs:
            raise InvalidInput("reference", "is empty: no examples to evaluate")
        metric.corpus_score([""] * len(refs), _reference_streams(refs))
    return str(metric.get_signature())


def bleu_signature(reference=None, tokenize: str = "13a", lowercase: bool = False) -> str:
    """sacrebleu's reproducibility signature of :func:`bleu` with these parameters.

    For example ``nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:2.6.0``. ``nrefs`` is 1 unless
    ``reference`` is given, in which case it is counted from it (``var`` when it varies per example).
    """
    return _signature(_bleu_metric(tokenize, lowercase), reference)


def chrf_signature(reference=None, word_order: int = 0, lowercase: bool = False) -> str:
    """sacrebleu's reproducibility signature of :func:`chrf` (``nrefs`` as in :func:`bleu_signature`)."""
    return _signature(_chrf_metric(word_order, lowercase), reference)


def _closest_other_length(length: int, lengths: np.ndarray, counts: np.ndarray) -> int:
    """sacrebleu's closest reference length among all sentences but one copy of ``length``.

    Ties between a shorter and a longer length go to the shorter one, as in ``BLEU._get_closest_ref_len``.
    """
    pos = int(np.searchsorted(lengths, length))
    if counts[pos] > 1:
        return length
    below = int(lengths[pos - 1]) if pos > 0 else None
    above = int(lengths[pos + 1]) if pos + 1 < lengths.size else None
    if below is not None and (above is None or length - below <= above - length):
        return below
    assert above is not None, "self-BLEU compares two or more sentences"
    return above


def self_bleu(prediction, max_examples: int = 1000, seed: int = 0, tokenize: str = "13a") -> float:
    """Diversity of the predictions: ``mean_i sentence_bleu(p_i, [p_j for j != i]) / 100``. Lower is more diverse.

    Each prediction is scored against all the *other* predictions as its references, with sacrebleu's
    sentence-level BLEU (``sacrebleu.sentence_bleu`` defaults: ``exp`` smoothing, effective order).
    References are not involved.

    Cost and sample size: the definition compares every pair of predictions, O(n^2) in the number of
    predictions. The n-gram statistics are computed here once per prediction (the best count of each
    n-gram among the others is read from the top two counts over all predictions, the closest reference
    length from the sorted lengths), which gives exactly sacrebleu's values in time linear in the total
    number of n-grams. Because self-BLEU grows with the number of references, values are only comparable
    at the same sample size: when there are more than ``max_examples`` predictions, the metric is computed
    on ``sorted(numpy.random.default_rng(seed).choice(n, max_examples, replace=False))``, a seeded sample
    without replacement, so the result is reproducible. ``nan`` with fewer than two predictions.
    """
    preds = _check_predictions(prediction)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise InvalidInput("seed", f"must be an integer >= 0, got {seed!r}")
    if isinstance(max_examples, bool) or not isinstance(max_examples, int) or max_examples < 2:
        raise InvalidInput("max_examples", f"must be an integer >= 2, got {max_examples!r}")
    metric = _bleu_metric(tokenize, False, effective_order=True)
    if len(preds) < 2:
        return float("nan")
    if len(preds) > max_examples:
        sample = np.sort(np.random.default_rng(seed).choice(len(preds), size=max_examples, replace=False))
        preds = [preds[i] for i in sample]

    from sacrebleu.metrics.helpers import extract_all_word_ngrams

    order = metric.max_ngram_order
    ngram_counts: list[Counter] = []
    lengths: list[int] = []
    for text in preds:
        counts, length = extract_all_word_ngrams(metric._preprocess_segment(text), 1, order)
        ngram_counts.append(counts)
        lengths.append(length)
    top = _top_two_counts(ngram_counts)
    unique_lengths, length_counts = np.unique(np.asarray(lengths), return_counts=True)
    scores = []
    for i, counts in enumerate(ngram_counts):
        correct, total = _matches_against_others(i, counts, top, order)
        ref_len = _closest_other_length(lengths[i], unique_lengths, length_counts)
        score = metric.compute_bleu(
            correct,
            total,
            lengths[i],
            ref_len,
            smooth_method=metric.smooth_method,
            smooth_value=metric.smooth_value,
            effective_order=True,
            max_ngram_order=order,
        ).score
        scores.append(_unit_interval(score))
    return float(np.mean(scores))


def _top_two_counts(ngram_counts: list[Counter]) -> dict[tuple[str, ...], list[int]]:
    """Per n-gram: ``[highest count, index of the prediction holding it, second-highest count]``, so the best
    count among all predictions but one is read in O(1)."""
    top: dict[tuple[str, ...], list[int]] = {}
    for i, counts in enumerate(ngram_counts):
        for gram, count in counts.items():
            best = top.get(gram)
            if best is None:
                top[gram] = [count, i, 0]
            elif count > best[0]:
                best[2], best[0], best[1] = best[0], count, i
            elif count > best[2]:
                best[2] = count
    return top


def _matches_against_others(i: int, counts: Counter, top: dict[tuple[str, ...], list[int]], order: int) -> tuple[list[int], list[int]]:
    """BLEU's clipped matches and totals per n-gram order of prediction ``i`` against all the others."""
    correct = [0] * order
    total = [0] * order
    for gram, count in counts.items():
        n = len(gram) - 1
        total[n] += count
        best = top[gram]
        other = best[2] if best[1] == i else best[0]
        correct[n] += min(count, other)
    return correct, total


# --------------------------------------------------------------------------------------------------------
# ROUGE (rouge-score)


@functools.lru_cache(maxsize=8)
def _rouge_scorer(rouge_type: str, use_stemmer: bool):
    try:
        from rouge_score.rouge_scorer import RougeScorer
    except ImportError as exc:
        raise MissingDependency("metric", "ROUGE needs rouge-score: pip install 'rouge-score>=0.1.2,<0.2'") from exc
    return RougeScorer([rouge_type], use_stemmer=use_stemmer)


def rouge_per_example(prediction, reference, rouge_type: str = "rouge1", use_stemmer: bool = False) -> np.ndarray:
    """ROUGE F-measure per example from rouge-score: ``F = 2 P R / (P + R)``.

    ``rouge1``/``rouge2``: overlap of unigram/bigram multisets, ``P = overlap / |pred n-grams|``,
    ``R = overlap / |ref n-grams|``. ``rougeL``: ``P = LCS / |pred|``, ``R = LCS / |ref|`` with LCS the
    longest common token subsequence. With several references the one with the best F-measure counts
    (rouge-score's ``score_multi``).

    rouge-score's tokenizer lowercases and keeps only ASCII letters and digits (``[a-z0-9]+``): accents
    split words (``"héllo"`` -> ``h``, ``llo``) and text in non-Latin scripts has *no* tokens, so it
    scores 0 even against an identical reference. ``use_stemmer`` applies the Porter stemmer to tokens
    longer than three characters. A text without tokens, an empty string, or (for ``rouge2``) a one-token
    text scores 0, including against itself.
    """
    preds, refs = check_pair(prediction, reference)
    _check_choice("rouge_type", rouge_type, ROUGE_TYPES)
    scorer = _rouge_scorer(rouge_type, bool(use_stemmer))
    values = []
    for p, rs in zip(preds, refs, strict=True):
        if len(rs) == 1:
            score = scorer.score(rs[0], p)[rouge_type]
        else:
            score = scorer.score_multi(rs, p)[rouge_type]
        values.append(float(score.fmeasure))
    return np.array(values, dtype=np.float64)


def rouge(prediction, reference, rouge_type: str = "rouge1", use_stemmer: bool = False) -> float:
    """Mean over examples of the ROUGE F-measure (see :func:`rouge_per_example`)."""
    return float(np.mean(rouge_per_example(prediction, reference, rouge_type, use_stemmer)))


# --------------------------------------------------------------------------------------------------------
# diversity and length


def distinct_n(prediction, n: int = 1) -> float:
    """``distinct-n = |unique n-grams| / |n-grams|`` over all predictions together.

    n-grams are taken within each prediction (never across two), over case-sensitive whitespace tokens.
    ``nan`` when no prediction has ``n`` tokens (no n-gram at all).
    """
    preds = _check_predictions(prediction)
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InvalidInput("n", f"must be an integer >= 1, got {n!r}")
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in preds:
        tokens = text.split()
        grams = [tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)]
        total += len(grams)
        seen.update(grams)
    return len(seen) / total if total else float("nan")


def length_per_example(prediction) -> np.ndarray:
    """Number of whitespace tokens of each prediction."""
    preds = _check_predictions(prediction)
    return np.array([len(p.split()) for p in preds], dtype=np.float64)


def length_mean(prediction) -> float:
    """Mean number of whitespace tokens per prediction (informational: longer is not better)."""
    return float(np.mean(length_per_example(prediction)))


def length_ratio(prediction, reference) -> float:
    """``sum_i |pred_i| / sum_i |ref_i|`` in whitespace tokens, a corpus-level verbosity ratio (1 = same length).

    With several references ``|ref_i|`` is the mean length of the example's references. ``nan`` when all
    references are empty.
    """
    preds, refs = check_pair(prediction, reference)
    pred_total = sum(len(p.split()) for p in preds)
    ref_total = sum(sum(len(r.split()) for r in rs) / len(rs) for rs in refs)
    return pred_total / ref_total if ref_total else float("nan")


# --------------------------------------------------------------------------------------------------------
# refusals

_APOS = "['\u2019]"  # straight or typographic apostrophe
#: "I" then a refusal verb phrase: "I can't", "I cannot", "I won't", "I'm unable to", "I am not able to"
_I_CANT = (
    rf"\bI(?:\s+|(?={_APOS}))(?:can{_APOS}?t|cannot|can\s+not|won{_APOS}?t|will\s+not"
    rf"|(?:am\s+|{_APOS}m\s+)(?:unable|not\s+able)\s+to)"
)

#: Version 1 of the refusal patterns, matched case-insensitively anywhere in a prediction. Never edit:
#: a changed list is ``REFUSAL_PATTERNS_V2`` and a new version of the ``refusal_rate`` metric.
REFUSAL_PATTERNS_V1: tuple[re.Pattern[str], ...] = tuple(
    re.compile(p, re.IGNORECASE)
    for p in (
        # "I can't help with that", "I cannot help you", "I'm unable to help." (not "I can't help but ...")
        rf"{_I_CANT}\s+help(?:\s+you)?(?:\s+with\b|\s+(?:that|this)\b|\s*[.!]|\s*$)",
        # "I cannot assist", "I can't assist with", "I am unable to assist"
        rf"{_I_CANT}\s+assist\b",
        # "I can't comply", "I won't provide that", "I cannot fulfill this request"
        rf"{_I_CANT}\s+(?:comply|fulfil|fulfill|provide\s+(?:that|this|help|assistance|information\s+on))\b",
        # "As an AI", "as an AI language model"
        r"\bas\s+an\s+AI\b",
        # "I'm sorry, but", "I am sorry but", "Sorry, but I can't"
        rf"\bI(?:{_APOS}?m|\s+am)\s+(?:very\s+|really\s+|truly\s+)?sorry,?\s+but\b",
        r"\bsorry,?\s+but\s+I\b",
        # "I apologize, but", "I apologise but"
        r"\bI\s+apologi[sz]e,?\s+but\b",
        # "I must decline", "I have to respectfully decline"
        rf"\bI(?:\s+(?:must|have\s+to|need\s+to|will)|{_APOS}ll)\s+(?:respectfully\s+|politely\s+)?decline\b",
    )
)

#: Refusal pattern lists by version, the ``patterns_version`` parameter of ``refusal_rate``.
REFUSAL_PATTERNS: dict[int, tuple[re.Pattern[str], ...]] = {1: REFUSAL_PATTERNS_V1}


def refusal_per_example(prediction, patterns: Sequence[re.Pattern[str]] = REFUSAL_PATTERNS_V1) -> np.ndarray:
    """1.0 for each prediction where any pattern matches (``re.search``, anywhere in the text), else 0.0."""
    preds = _check_predictions(prediction)
    return np.array([float(any(p.search(text) for p in patterns)) for text in preds], dtype=np.float64)


def refusal_rate(prediction, patterns: Sequence[re.Pattern[str]] = REFUSAL_PATTERNS_V1) -> float:
    """Fraction of predictions matching a refusal pattern (:data:`REFUSAL_PATTERNS_V1` by default)."""
    return float(np.mean(refusal_per_example(prediction, patterns)))
