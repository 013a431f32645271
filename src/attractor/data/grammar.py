"""The built-in synthetic corpus: an English-like probabilistic grammar.

About 370 words; sentences with nested phrases (prepositional phrases, relative clauses,
sentential complements, coordination) and three agreements that a model can only get right by
learning the structure rather than word statistics:

* subject-verb number: "the dog near the houses sleeps" / "the dogs near the house sleep";
* determiner-noun number: "this dog", "these dogs" ("the", "my", ... go with both);
* animacy: subjects are animate; relative clauses on people and animals open with "who",
  those on things with "that" and are object relatives ("the book that the child reads").

Recursion is bounded by indexing phrases with their depth d (a modifier of a depth-d phrase is
at depth d + 1, nothing beyond :data:`MAX_DEPTH`), which keeps the grammar a finite, proper PCFG
whose sentence probabilities sum to exactly one. Word probabilities inside each category follow
a mild Zipf law (weight 1/sqrt(rank + 1)).

Probes use :func:`default_grammar` and :func:`is_grammatical` (a decoded sentence, cut at EOS,
as a string or a word list) to tell novel valid generations from garbage.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

from attractor.data.pcfg import PCFG

MAX_DEPTH = 2

# (singular, plural) pairs, most frequent first.
ANIMATE = (
    "dog dogs|cat cats|child children|teacher teachers|farmer farmers|bird birds|"
    "doctor doctors|student students|man men|woman women|king kings|queen queens|"
    "baker bakers|sailor sailors|soldier soldiers|painter painters|singer singers|"
    "lawyer lawyers|nurse nurses|pilot pilots|driver drivers|writer writers|poet poets|"
    "girl girls|boy boys|friend friends|neighbour neighbours|mouse mice|fox foxes|"
    "wolf wolves|rabbit rabbits|lion lions|tiger tigers|monkey monkeys|goose geese|horse horses"
)
INANIMATE = (
    "book books|house houses|table tables|car cars|tree trees|river rivers|garden gardens|"
    "city cities|village villages|box boxes|window windows|door doors|letter letters|"
    "song songs|picture pictures|bridge bridges|road roads|stone stones|flower flowers|"
    "apple apples|ship ships|bottle bottles|chair chairs|key keys|hat hats|cake cakes|"
    "lamp lamps|coin coins|map maps|bell bells"
)
# (third person singular, plural) verb forms.
TRANSITIVE = (
    "sees see|likes like|finds find|follows follow|helps help|watches watch|chases chase|"
    "loves love|hates hate|remembers remember|visits visit|paints paint|carries carry|"
    "buys buy|sells sell|meets meet|admires admire|pushes push|pulls pull|draws draw|"
    "keeps keep|wants want|needs need|takes take|brings bring|holds hold|breaks break|"
    "fixes fix|opens open|cleans clean"
)
INTRANSITIVE = (
    "sleeps sleep|runs run|sings sing|laughs laugh|cries cry|waits wait|dances dance|"
    "smiles smile|works work|falls fall|jumps jump|swims swim|walks walk|talks talk|"
    "arrives arrive|leaves leave|rests rest|shouts shout|travels travel|listens listen"
)
SENTENTIAL = "thinks think|says say|knows know|believes believe|hopes hope|fears fear"
DITRANSITIVE = "gives give|sends send|shows show|offers offer|lends lend|throws throw"
NAMES = "alice bob carol david emma frank grace henry iris jack kate leo maria nora oscar"
ADJECTIVES = (
    "big small old young happy sad red green blue tall short quiet loud brave clever lazy "
    "busy strange famous gentle angry hungry tired kind proud friendly bright dark heavy "
    "light warm cold new ancient tiny huge wild calm rich poor"
)
ADVERBS = (
    "quickly slowly quietly often rarely happily sadly loudly carefully again early late "
    "today yesterday always"
)
PREPOSITIONS = "near behind under beside above with without inside outside across from by"
DET_SG = "the this every each one my your our his her their"
DET_PL = "the these some many several two three four my your our his her their"
CONJUNCTIONS = "and but so while"

NUMBERS = ("sg", "pl")
ANIMACY = ("anim", "inan")


def _pairs(table: str) -> tuple[list[str], list[str]]:
    pairs = [p.split() for p in table.split("|")]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _zipf(words: Sequence[str]) -> tuple[tuple[str, float], ...]:
    weights = [(rank + 1) ** -0.5 for rank in range(len(words))]
    total = sum(weights)
    return tuple((w, x / total) for w, x in zip(words, weights))


def default_lexicon(words_per_category: int = 0) -> dict[str, tuple[tuple[str, float], ...]]:
    """Word lists of every preterminal. ``words_per_category`` > 0 keeps only that many of the
    most frequent words of each open class (nouns, verbs, names, adjectives, adverbs): the same
    syntax over a smaller vocabulary, i.e. a corpus with lower entropy per token."""
    k = words_per_category or None
    lex = {}
    for name, table in (("N_{}_anim", ANIMATE), ("N_{}_inan", INANIMATE), ("VT_{}", TRANSITIVE),
                        ("VI_{}", INTRANSITIVE), ("VS_{}", SENTENTIAL), ("VD_{}", DITRANSITIVE)):
        sg, pl = _pairs(table)
        lex[name.format("sg")], lex[name.format("pl")] = _zipf(sg[:k]), _zipf(pl[:k])
    for name, words in (("NAME", NAMES), ("ADJ", ADJECTIVES), ("ADV", ADVERBS)):
        lex[name] = _zipf(words.split()[:k])
    for name, words in (("P", PREPOSITIONS), ("DET_sg", DET_SG), ("DET_pl", DET_PL),
                        ("CONJ", CONJUNCTIONS)):
        lex[name] = _zipf(words.split())
    return lex


def _options(*weighted: tuple[float, tuple[str, ...]] | None) -> tuple:
    """Normalise (weight, rhs) options, skipping None (an option cut at the maximum depth)."""
    kept = [w for w in weighted if w is not None]
    total = sum(w for w, _ in kept)
    return tuple((rhs, w / total) for w, rhs in kept)


def _phrase_rules(d: int, deeper: bool) -> dict[str, tuple]:
    """Rules of the depth-d phrases; ``deeper`` says whether depth d + 1 exists."""
    e = d + 1
    rules = {
        f"S_{d}": _options((0.55, (f"NP_sg_anim_{d}", f"VP_sg_{d}")),
                           (0.45, (f"NP_pl_anim_{d}", f"VP_pl_{d}"))),
        f"OBJ_{d}": _options((0.3, (f"NP_sg_anim_{d}",)), (0.3, (f"NP_sg_inan_{d}",)),
                             (0.2, (f"NP_pl_anim_{d}",)), (0.2, (f"NP_pl_inan_{d}",))),
        f"AGENT_{d}": _options((0.6, (f"NP_sg_anim_{d}",)), (0.4, (f"NP_pl_anim_{d}",))),
        f"PP_{d}": _options((1.0, ("P", f"OBJ_{d}"))),
    }
    for n in NUMBERS:
        rules[f"VP_{n}_{d}"] = _options(
            (0.14, (f"VI_{n}",)), (0.08, (f"VI_{n}", "ADV")), (0.10, (f"VI_{n}", f"PP_{d}")),
            (0.36, (f"VT_{n}", f"OBJ_{d}")), (0.08, (f"VT_{n}", f"OBJ_{d}", "ADV")),
            (0.08, (f"VD_{n}", f"OBJ_{d}", "to", f"AGENT_{d}")),
            (0.10, (f"VS_{n}", "that", f"S_{e}")) if deeper else None,
        )
        # object relatives: the verb agrees with the clause's own subject m, not with the head
        obj_rel = [(w, (f"NP_{m}_anim_{d}", f"VT_{m}")) for m, w in (("sg", 0.55), ("pl", 0.45))]
        rules[f"RC_{n}_anim_{d}"] = _options(
            (0.45, ("who", f"VT_{n}", f"OBJ_{d}")), (0.25, ("who", f"VI_{n}")),
            *[(0.3 * w, ("who", *rhs)) for w, rhs in obj_rel])
        rules[f"RC_{n}_inan_{d}"] = _options(*[(w, ("that", *rhs)) for w, rhs in obj_rel])
        for a in ANIMACY:
            rules[f"NOM_{n}_{a}"] = _options(
                (0.6, (f"N_{n}_{a}",)), (0.32, ("ADJ", f"N_{n}_{a}")),
                (0.08, ("ADJ", "ADJ", f"N_{n}_{a}")))
            rules[f"NP_{n}_{a}_{d}"] = _options(
                (0.6, (f"DET_{n}", f"NOM_{n}_{a}")),
                (0.14, (f"DET_{n}", f"NOM_{n}_{a}", f"PP_{e}")) if deeper else None,
                (0.14, (f"DET_{n}", f"NOM_{n}_{a}", f"RC_{n}_{a}_{e}")) if deeper else None,
                (0.12, ("NAME",)) if (n, a) == ("sg", "anim") else None,
            )
    return rules


def build_grammar(max_depth: int = MAX_DEPTH, lexicon: dict | None = None) -> PCFG:
    """The English-like grammar with phrases nested at most ``max_depth`` levels.

    ``lexicon`` replaces the word lists (same preterminal names), e.g. for exhaustive tests.
    """
    rules: dict[str, tuple] = {
        "ROOT": _options((0.9, ("S_0", ".")), (0.1, ("S_2", ",", "CONJ", "S_2", ".")))
        if max_depth >= 1 else _options((1.0, ("S_0", "."))),
    }
    for d in range(max_depth + 1):
        rules.update(_phrase_rules(d, deeper=d < max_depth))
    grammar = PCFG(start="ROOT", rules=rules, lexicon=lexicon or default_lexicon())
    grammar.validate()
    return grammar


@lru_cache(maxsize=4)
def grammar_for(words_per_category: int = 0) -> PCFG:
    """The grammar of the ``synthetic`` corpus with ``DataConfig.synthetic_words`` words per open
    class (0: all of them); built once per process."""
    return build_grammar(MAX_DEPTH, default_lexicon(words_per_category))


def default_grammar() -> PCFG:
    """The grammar behind the default ``synthetic`` corpus (all words)."""
    return grammar_for(0)


def is_grammatical(sentence: Sequence[str] | str, words_per_category: int = 0) -> bool:
    """Whether a decoded sentence (string or words, without BOS/EOS/PAD) is in the language."""
    return grammar_for(words_per_category).is_grammatical(sentence)


def log_prob(sentence: Sequence[str] | str) -> float:
    """Exact log-probability of a sentence under the default grammar (-inf if ungrammatical)."""
    return default_grammar().log_prob(sentence)
