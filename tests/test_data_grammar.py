"""The synthetic grammar: sampling, exact sentence probabilities, grammaticality."""

from __future__ import annotations

import itertools
import math
from collections import Counter

import numpy as np
import pytest

from attractor.data.grammar import (
    build_grammar,
    default_grammar,
    default_lexicon,
    is_grammatical,
    log_prob,
)
from attractor.data.pcfg import PCFG


def _tiny() -> PCFG:
    """An ambiguous toy grammar: "a b c" has two derivations (S -> X c and S -> a Y)."""
    rules = {
        "S": ((("X", "c"), 0.5), (("a", "Y"), 0.3), (("T", "T"), 0.2)),
        "X": ((("a", "b"), 0.6), (("T",), 0.4)),
        "Y": ((("b", "c"), 0.7), (("T", "c"), 0.3)),
    }
    lexicon = {"T": (("a", 0.5), ("b", 0.25), ("c", 0.25))}
    return PCFG("S", rules, lexicon)


def _derivations(g: PCFG, symbols: tuple[str, ...]):
    """Brute force: every (sentence, probability) leaf of the derivation tree, with repeats."""
    if not symbols:
        yield (), 1.0
        return
    head, rest = symbols[0], symbols[1:]
    if head in g.rules:
        heads = [(s, p * q) for rhs, p in g.rules[head] for s, q in _derivations(g, rhs)]
    elif head in g.lexicon:
        heads = [((w,), p) for w, p in g.lexicon[head]]
    else:
        heads = [((head,), 1.0)]
    for (s1, p1), (s2, p2) in itertools.product(heads, list(_derivations(g, rest))):
        yield s1 + s2, p1 * p2


def test_inside_probability_sums_all_derivations_and_normalises():
    g = _tiny()
    g.validate()
    exact = Counter()
    for sentence, p in _derivations(g, (g.start,)):
        exact[sentence] += p
    assert math.isclose(sum(exact.values()), 1.0, rel_tol=1e-12)
    assert len(exact) < sum(1 for _ in _derivations(g, (g.start,)))  # really ambiguous
    for sentence, p in exact.items():
        assert math.isclose(math.exp(g.log_prob(sentence)), p, rel_tol=1e-12)
    assert g.log_prob(("c", "c", "c", "c")) == -math.inf


def test_sample_frequencies_match_exact_probabilities():
    g = _tiny()
    n = 20000
    counts = Counter(g.sample(n, np.random.default_rng(1)))
    for sentence, c in counts.items():
        p = math.exp(g.log_prob(sentence))
        assert abs(c / n - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-4, sentence


def test_one_word_per_category_grammar_is_exactly_normalised():
    # The real rule set at depth 0 with one word per category: small enough to enumerate every
    # derivation, so the inside probabilities must add up per sentence and to one overall.
    lexicon = {t: ((words[0][0], 1.0),) for t, words in default_lexicon().items()}
    g = build_grammar(max_depth=0, lexicon=lexicon)
    exact = Counter()
    for sentence, p in _derivations(g, (g.start,)):
        exact[sentence] += p
    assert math.isclose(sum(exact.values()), 1.0, rel_tol=1e-9)
    for sentence, p in exact.items():
        assert math.isclose(math.exp(g.log_prob(sentence)), p, rel_tol=1e-9)


def test_default_grammar_log_prob_matches_sample_frequencies():
    # The parser and the sampler are independent code paths. Single sentences are too rare to
    # count, so compare the sampled frequency of a whole sentence family with the sum of its
    # members' exact probabilities: "NAME VERB ." and "NAME VERB ADVERB .".
    g = default_grammar()
    lex = default_lexicon()
    names, verbs = [w for w, _ in lex["NAME"]], [w for w, _ in lex["VI_sg"]]
    adverbs = [w for w, _ in lex["ADV"]]
    families = {
        "name-verb": [(n, v, ".") for n in names for v in verbs],
        "name-verb-adverb": [(n, v, a, ".") for n in names for v in verbs for a in adverbs],
    }
    n = 40000
    counts = Counter(g.sample(n, np.random.default_rng(2)))
    for name, family in families.items():
        p = sum(math.exp(g.log_prob(s)) for s in family)
        observed = sum(counts[s] for s in family) / n
        assert p > 1e-3, name
        assert abs(observed - p) < 5 * math.sqrt(p * (1 - p) / n), (name, observed, p)


def test_sampled_sentences_are_grammatical_and_shuffles_are_not():
    g = default_grammar()
    rng = np.random.default_rng(3)
    sentences = g.sample(300, rng)
    assert all(math.isfinite(g.log_prob(s)) and g.log_prob(s) < 0 for s in sentences)
    shuffled_ok = 0
    for s in sentences:
        if len(s) < 4:
            continue
        words = list(s)
        rng.shuffle(words)
        shuffled_ok += g.is_grammatical(words) and tuple(words) != s
    assert shuffled_ok <= 3
    vocab = sorted(g.vocabulary)
    corrupted_ok = 0
    for s in sentences:
        words = list(s)
        words[rng.integers(len(words))] = vocab[rng.integers(len(vocab))]
        corrupted_ok += g.is_grammatical(words) and tuple(words) != s
    assert corrupted_ok < 0.35 * len(sentences)  # a random word often fits its category


@pytest.mark.parametrize("sentence, ok", [
    ("the dog sleeps .", True),
    ("the dogs sleep .", True),
    ("the dogs sleeps .", False),                          # subject-verb number
    ("these dog sleeps .", False),                         # determiner-noun number
    ("the book sleeps .", False),                          # inanimate subject
    ("the dog near the houses sleeps .", True),            # agreement across a PP
    ("the dog near the houses sleep .", False),
    ("the dog who the cats see sleeps .", True),           # object relative
    ("the dog that the cats see sleeps .", False),         # "that" is for things
    ("alice reads the book .", False),                     # out-of-vocabulary word
    ("alice thinks that the cats sleep .", True),
    ("alice sleeps , but bob runs .", True),
    ("the dog sleeps", False),
    ("", False),
])
def test_agreement_and_animacy(sentence, ok):
    assert is_grammatical(sentence) is ok
    assert (log_prob(sentence) > -math.inf) is ok


def test_default_grammar_shape_and_determinism():
    g = default_grammar()
    assert 300 <= len(g.vocabulary) <= 500
    a = g.sample(5000, np.random.default_rng(4))
    assert a == g.sample(5000, np.random.default_rng(4))
    lengths = np.array([len(s) for s in a])
    assert 8 <= np.median(lengths) <= 14
    assert np.mean(lengths <= 30) > 0.998  # fits L = 32 with BOS and EOS
    assert len(set(a)) > 0.97 * len(a)  # combinatorial freedom: tens of thousands distinct


def test_depth_zero_grammar_has_no_nesting():
    g = build_grammar(max_depth=0)
    assert g.length_range()[1] < default_grammar().length_range()[1]
    assert g.is_grammatical("the dog sleeps .")
    assert not g.is_grammatical("the dog who sleeps runs .")


def test_smaller_lexicon_is_a_sublanguage_of_the_full_grammar():
    import numpy as np

    from attractor.data.grammar import grammar_for, is_grammatical

    small, full = grammar_for(4), grammar_for(0)
    assert small.vocabulary < full.vocabulary and len(small.vocabulary) < 120
    for words in small.sample(200, np.random.default_rng(0)):
        assert is_grammatical(words, 4) and is_grammatical(words)
    # a sentence using a word outside the small lexicon is not in the small language
    outside = next(w for w in full.sample(500, np.random.default_rng(1))
                   if not set(w) <= small.vocabulary)
    assert not is_grammatical(outside, 4) and is_grammatical(outside)
