"""Undo the Penn-Treebank-style spacing of LM1B before tokenisation, as Duo and MDLM do.

LM1B stores "He said , `` it 's fine ( really ) . ''"-like text with every punctuation mark and
clitic split off by spaces. Re-joining them before BPE gives the token statistics of ordinary
text (GPT-2 never sees " ," or " 's" in the wild). The rules follow Duo's ``lm1b_detokenizer``
(same patterns, in the same order) plus " n't" -> "n't", which that function leaves split.
"""

from __future__ import annotations

import re

# (pattern, replacement), applied in order; patterns are regular expressions.
_LM1B_RULES: tuple[tuple[str, str], ...] = (
    (r"http : / / ", "http://"),
    (r"https : / / ", "https://"),
    (r" '(\w+)", r"'\1"),                # "it 's" -> "it's", "they 've" -> "they've"
    (r" n't\b", "n't"),                   # "do n't" -> "don't"
    (r" (\w+) \. ", r" \1. "),            # full stop inside the line
    (r" (\w+) \.$", r" \1."),             # full stop at the end
    (r" \? ", "? "),
    (r" \?$", "?"),
    (r" ! ", "! "),
    (r" !$", "!"),
    (r" , ", ", "),
    (r" : ", ": "),
    (r" ; ", "; "),
    (r" / ", "/"),
    (r'" ([^"]+) "', r'"\1"'),            # quoted span
    (r"' ([^']+) '", r"'\1'"),
    (r"\( ([^()]+) \)", r"(\1)"),         # parenthesised span
    (r"\[ ([^\[\]]+) \]", r"[\1]"),
    (r"\$ ", "$"),                        # "$ 5" -> "$5"
    (r"£ ", "£"),
)
_COMPILED = tuple((re.compile(p), r) for p, r in _LM1B_RULES)


def lm1b_detokenize(text: str) -> str:
    """LM1B line with PTB spacing undone: "it 's $ 5 ( cheap ) ." -> "it's $5 (cheap)."."""
    for pattern, replacement in _COMPILED:
        text = pattern.sub(replacement, text)
    return text
