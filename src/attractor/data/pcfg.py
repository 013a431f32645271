"""A probabilistic context-free grammar: sampling, exact sentence probability, membership.

Notation:
    G = (start, rules, lexicon)  a PCFG with three kinds of symbols:
        nonterminal A            rules[A] = ((rhs, p), ...), sum_r p_r = 1
        preterminal T            lexicon[T] = ((word, p), ...), sum_w p_w = 1
        literal w                any other symbol in a right-hand side: emits the word w itself
    P(x) = sum over derivations of x of the product of the rule and word probabilities used
           (the inside probability of the start symbol over the whole sentence)

The grammar must be acyclic (no symbol derives itself), so the language is finite and every
symbol has a finite minimum and maximum yield length; recursion depth is bounded by indexing
nonterminals with their depth instead (see :mod:`attractor.data.grammar`). Sampling draws a
skeleton of preterminals in Python and then fills all the words of one preterminal in one
vectorised draw. :meth:`PCFG.log_prob` is the inside algorithm, top-down with memoisation and
pruned by the length range and the first/last word sets of each symbol, so it is exact even if
a sentence had several derivations.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

Rules = Mapping[str, tuple[tuple[tuple[str, ...], float], ...]]
Lexicon = Mapping[str, tuple[tuple[str, float], ...]]


@dataclass(frozen=True)
class _Compiled:
    """Tables derived once from a grammar for the parser and the length queries."""

    order: tuple[str, ...]  # nonterminals, children before parents
    word_prob: dict[str, dict[str, float]]  # preterminal -> word -> probability
    min_len: dict[str, int]
    max_len: dict[str, int]
    first: dict[str, frozenset[str]]  # words that can start a yield of the symbol
    last: dict[str, frozenset[str]]  # words that can end a yield of the symbol
    vocabulary: frozenset[str]


@dataclass(frozen=True)
class PCFG:
    """A probabilistic context-free grammar (see the module docstring for the notation)."""

    start: str
    rules: Rules
    lexicon: Lexicon = field(repr=False)

    # ------------------------------------------------------------------ structure
    def validate(self) -> None:
        """Check that every distribution sums to one and that the grammar is acyclic."""
        for lhs, options in {**self.rules, **self.lexicon}.items():
            total = sum(p for _, p in options)
            assert options and abs(total - 1.0) < 1e-9, f"{lhs}: probabilities sum to {total}"
            assert all(p > 0 for _, p in options), f"{lhs}: zero-probability option"
        assert self.start in self.rules, f"start symbol {self.start} has no rules"
        _ = self._compiled  # raises on a cycle

    @cached_property
    def _compiled(self) -> _Compiled:
        order = _topological_order(self.rules)
        words = {t: dict(opts) for t, opts in self.lexicon.items()}
        min_len, max_len, first, last = {}, {}, {}, {}
        for t, table in words.items():
            min_len[t] = max_len[t] = 1
            first[t] = last[t] = frozenset(table)
        for literal in _literals(self.rules, self.lexicon):
            min_len[literal] = max_len[literal] = 1
            first[literal] = last[literal] = frozenset([literal])
        for a in order:
            rhss = [rhs for rhs, _ in self.rules[a]]
            min_len[a] = min(sum(min_len[s] for s in rhs) for rhs in rhss)
            max_len[a] = max(sum(max_len[s] for s in rhs) for rhs in rhss)
            first[a] = frozenset().union(*(first[rhs[0]] for rhs in rhss))
            last[a] = frozenset().union(*(last[rhs[-1]] for rhs in rhss))
        vocabulary = frozenset().union(*first.values())
        return _Compiled(order, words, min_len, max_len, first, last, vocabulary)

    @property
    def vocabulary(self) -> frozenset[str]:
        """Every word the grammar can emit."""
        return self._compiled.vocabulary

    def length_range(self) -> tuple[int, int]:
        """Minimum and maximum sentence length in words."""
        c = self._compiled
        return c.min_len[self.start], c.max_len[self.start]

    # ------------------------------------------------------------------ sampling
    @cached_property
    def _tables(self) -> _SamplerTables:
        return _SamplerTables.build(self)

    def sample(self, n: int, rng: np.random.Generator) -> list[tuple[str, ...]]:
        """Draw ``n`` independent sentences x ~ P (as word tuples), deterministic given ``rng``.

        1. derive every sentence down to preterminals and literals (Python, one uniform per
           rule choice);
        2. fill all slots of one preterminal with one vectorised draw from its lexicon.
        """
        tab = self._tables
        symbols, lengths = _sample_skeletons(tab, n, rng)
        codes = np.asarray(symbols, dtype=np.int64)
        word_ids = tab.literal_word[codes]  # -1 where a preterminal still needs a word
        for t in range(len(tab.lex_cdf)):  # fixed order keeps the draws deterministic
            slots = np.flatnonzero(codes == tab.preterminal_code[t])
            if slots.size:
                k = np.searchsorted(tab.lex_cdf[t], rng.random(slots.size), side="right")
                word_ids[slots] = tab.lex_words[t][np.minimum(k, len(tab.lex_words[t]) - 1)]
        words = tab.words[word_ids].tolist()
        ends = np.cumsum(lengths).tolist()
        return [tuple(words[e - m:e]) for e, m in zip(ends, lengths)]

    # ------------------------------------------------------------------ parsing
    def log_prob(self, words: Sequence[str] | str) -> float:
        """log P(x) under the grammar, -inf when x is not in the language.

        ``words`` is a sequence of words or a string split on whitespace.
        """
        words = tuple(words.split()) if isinstance(words, str) else tuple(words)
        c = self._compiled
        if not words or not c.min_len[self.start] <= len(words) <= c.max_len[self.start]:
            return -math.inf
        if any(w not in c.vocabulary for w in words):
            return -math.inf
        p = _Inside(self, words).span(self.start, 0, len(words))
        return math.log(p) if p > 0 else -math.inf

    def is_grammatical(self, words: Sequence[str] | str) -> bool:
        """Whether x is a sentence of the grammar (P(x) > 0)."""
        return self.log_prob(words) > -math.inf


@dataclass(frozen=True)
class _SamplerTables:
    """The grammar as integer codes: symbols 0..S-1, words 0..V-1."""

    start: int
    expand: list  # code -> None (terminal) or (cumulative probs, [reversed rhs codes])
    literal_word: np.ndarray  # (S,) word id of a literal symbol, -1 otherwise
    preterminal_code: list[int]  # t -> symbol code of the t-th preterminal
    lex_cdf: list[np.ndarray]  # t -> cumulative word probabilities
    lex_words: list[np.ndarray]  # t -> word ids
    words: np.ndarray  # (V,) object array of word strings

    @staticmethod
    def build(g: PCFG) -> _SamplerTables:
        literals = sorted(_literals(g.rules, g.lexicon))
        symbols = sorted(g.rules) + sorted(g.lexicon) + literals
        code = {s: i for i, s in enumerate(symbols)}
        vocab = sorted(g.vocabulary)
        word_id = {w: i for i, w in enumerate(vocab)}
        expand: list = [None] * len(symbols)
        for a, options in g.rules.items():
            cum = np.cumsum([p for _, p in options]).tolist()
            cum[-1] = 2.0  # rounding can never push a uniform past the last option
            expand[code[a]] = (cum, [[code[x] for x in reversed(rhs)] for rhs, _ in options])
        literal_word = np.full(len(symbols), -1, dtype=np.int64)
        for w in literals:
            literal_word[code[w]] = word_id[w]
        pts = sorted(g.lexicon)
        return _SamplerTables(
            start=code[g.start], expand=expand, literal_word=literal_word,
            preterminal_code=[code[t] for t in pts],
            lex_cdf=[np.cumsum([p for _, p in g.lexicon[t]]) / sum(p for _, p in g.lexicon[t])
                     for t in pts],
            lex_words=[np.array([word_id[w] for w, _ in g.lexicon[t]]) for t in pts],
            words=np.array(vocab, dtype=object))


def _sample_skeletons(tab: _SamplerTables, n: int, rng: np.random.Generator
                      ) -> tuple[list[int], list[int]]:
    """Leftmost derivations of ``n`` sentences: concatenated terminal codes and their counts."""
    expand, out, lengths = tab.expand, [], []
    uniforms = iter(())
    for _ in range(n):
        before = len(out)
        stack = [tab.start]
        while stack:
            sym = stack.pop()
            rule = expand[sym]
            if rule is None:
                out.append(sym)
                continue
            u = next(uniforms, None)
            if u is None:  # refill in blocks: one numpy call per 65536 choices
                uniforms = iter(rng.random(65536).tolist())
                u = next(uniforms)
            stack.extend(rule[1][bisect.bisect_right(rule[0], u)])
        lengths.append(len(out) - before)
    return out, lengths


class _Inside:
    """Inside probabilities beta(A, i, j) = P(A =>* x[i:j]) for one sentence x, memoised."""

    def __init__(self, grammar: PCFG, words: tuple[str, ...]):
        self.g, self.c, self.x = grammar, grammar._compiled, words
        self.memo: dict[tuple, float] = {}

    def span(self, sym: str, i: int, j: int) -> float:
        key = (sym, i, j)
        if key not in self.memo:
            self.memo[key] = self._span(sym, i, j)
        return self.memo[key]

    def _span(self, sym: str, i: int, j: int) -> float:
        c, x = self.c, self.x
        if not c.min_len[sym] <= j - i <= c.max_len[sym]:
            return 0.0
        if x[i] not in c.first[sym] or x[j - 1] not in c.last[sym]:
            return 0.0
        if sym in c.word_prob:  # preterminal: a single word
            return c.word_prob[sym][x[i]]
        if sym not in self.g.rules:  # literal, already matched by the first-word test
            return 1.0
        return sum(p * self.sequence(rhs, 0, i, j) for rhs, p in self.g.rules[sym])

    def sequence(self, rhs: tuple[str, ...], k: int, i: int, j: int) -> float:
        """P(rhs[k:] =>* x[i:j]): sum over the split point of the first symbol's yield."""
        if k == len(rhs) - 1:
            return self.span(rhs[k], i, j)
        key = (rhs, k, i, j)
        if key in self.memo:
            return self.memo[key]
        c, head = self.c, rhs[k]
        rest_min = sum(c.min_len[s] for s in rhs[k + 1:])
        rest_max = sum(c.max_len[s] for s in rhs[k + 1:])
        lo = max(i + c.min_len[head], j - rest_max)
        hi = min(i + c.max_len[head], j - rest_min)
        total = 0.0
        for m in range(lo, hi + 1):
            a = self.span(head, i, m)
            if a > 0:
                total += a * self.sequence(rhs, k + 1, m, j)
        self.memo[key] = total
        return total


def _literals(rules: Rules, lexicon: Lexicon) -> set[str]:
    """Right-hand-side symbols that are neither nonterminals nor preterminals."""
    return {s for opts in rules.values() for rhs, _ in opts for s in rhs
            if s not in rules and s not in lexicon}


def _topological_order(rules: Rules) -> tuple[str, ...]:
    """Nonterminals ordered so that every symbol comes after all symbols it rewrites to."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(a: str) -> None:
        if state.get(a) == 2:
            return
        assert state.get(a) != 1, f"the grammar is cyclic at {a}"
        state[a] = 1
        for rhs, _ in rules[a]:
            for s in rhs:
                if s in rules:
                    visit(s)
        state[a] = 2
        order.append(a)

    for a in sorted(rules):
        visit(a)
    return tuple(order)
