"""Probing a model that attractor did not train: the model, the user's members and non-members.

``load_subject(SubjectConfig(model=PATH, members=..., nonmembers=...), out)`` opens the model
with its adapter (:mod:`attractor.adapters.registry`), reads the sequences (a text file with one
sequence per line, a directory of ``*.txt``, or a local parquet/arrow/``save_to_disk`` dataset
with a text column), tokenises them with the model's tokenizer as [BOS] tokens [EOS] [PAD]...
(the ids the model has), and returns a :class:`attractor.run.Run` whose training ids are the
members and whose held-out ids are the non-members. Nothing is downloaded.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from attractor.config import check, setting
from attractor.data.tokenizer import encode_text
from attractor.errors import UserError, require


@dataclass(frozen=True)
class SubjectConfig:
    """Which model to open and which sequences to probe it on."""

    model: str | None = setting(None, help="a model to probe instead of RUN_DIR: an attractor "
                                "export, a Duo/UDLM/MDLM checkpoint (.ckpt or release folder), or "
                                "a transformers masked-LM folder (local paths only)")
    layout: str = setting("auto", help="auto | export | dit | transformers")
    weights: str | None = setting(None, help="Lightning checkpoints: ema | model (none: EMA "
                                  "where the file has it)")
    tokenizer: str | None = setting(None, help="gpt2 (built in), or a tokenizer.json or a "
                                    "folder with one (none: the model's own)")
    members: str | None = setting(None, help="sequences the model was trained on: a .txt (one "
                                  "per line), a folder of .txt, or a local parquet/arrow dataset")
    nonmembers: str | None = setting(None, help="sequences it was not trained on (same forms)")
    text_column: str = setting("text", help="the column of a dataset that holds the text")
    split: str = setting("train", help="the split of a save_to_disk dataset")
    limit: int = setting(0, help="read at most this many sequences of each (0: all)")
    length: int | None = setting(None, help="sequence length L (none: the model's own, else the "
                                 "longest sequence)")
    truncate: bool = setting(False, help="cut sequences longer than L (otherwise an error)")
    mask_id: int | None = setting(None, help="the mask id of a masked model (none: from the "
                                  "tokenizer)")
    pad_id: int | None = setting(None, help="pad id (none: from the tokenizer)")
    bos_id: int | None = setting(None, help="BOS id (none: from the tokenizer)")
    eos_id: int | None = setting(None, help="EOS id (none: from the tokenizer)")
    shifted_logits: bool = setting(False, help="transformers: logits at i predict token i + 1 "
                                   "(Dream-style); shift them back")
    trust_remote_code: bool = setting(False, help="transformers: allow the model's own Python "
                                      "code to run (custom architectures such as LLaDA)")
    device_map: str | None = setting(None, help="transformers: spread a model that does not "
                                     "fit on one GPU over the visible ones (auto | balanced | "
                                     "sequential; needs the accelerate package)")

    def __post_init__(self) -> None:
        check(self.layout in ("auto", "export", "dit", "transformers"), "layout",
              f"is {self.layout!r}; use auto, export, dit or transformers")
        check(self.device_map in (None, "auto", "balanced", "sequential"), "device_map",
              f"is {self.device_map!r}; use auto, balanced or sequential")
        check(self.weights in (None, "ema", "model"), "weights", "must be ema or model")
        check(self.limit >= 0, "limit", "must be >= 0")
        check(self.length is None or self.length >= 2, "length", "must be at least 2")


def read_texts(spec: str, cfg: SubjectConfig) -> list[str]:
    """Non-blank sequences from a text file or folder, or a local dataset's text column."""
    from attractor.data.corpus import hf_sentences, text_sentences

    path = Path(spec).expanduser()
    require(path.exists(), f"{spec} does not exist (sequences are read from local files only)")
    is_text = path.suffix in (".txt", "") and path.is_file() or \
        path.is_dir() and any(path.glob("*.txt"))
    if is_text:
        return text_sentences(str(path), cfg.limit)
    return hf_sentences(str(path), cfg.limit, column=cfg.text_column, split=cfg.split)


def _token_lists(texts: list[str], tokenizer, special, length: int | None,
                 truncate: bool, what: str) -> tuple[list[list[int]], int]:
    # literal special-token strings in the user's text stay text, as in training corpora
    lists = [[*([special.bos] if special.bos is not None else []), *ids,
              *([special.eos] if special.eos is not None else [])]
             for ids in encode_text(tokenizer, texts)]
    longest = max(len(ids) for ids in lists)
    L = length or longest
    if longest > L and not truncate:
        n = sum(len(ids) > L for ids in lists)
        raise UserError(f"{n} of the {what} are longer than L = {L} tokens (the longest: "
                        f"{longest}); pass --truncate to cut them, or a larger --length")
    return [ids[:L] for ids in lists], L


def _pool(members: list[list[int]], nonmembers: list[list[int]], L: int, pad: int | None):
    """(N, L) ids, (N, L) real mask, member ids, non-member ids; duplicates dropped."""
    seen: dict[tuple, int] = {}
    rows, split = [], []
    for name, lists in (("member", members), ("nonmember", nonmembers)):
        for ids in lists:
            key = tuple(ids)
            if key in seen:
                require(split[seen[key]] == name, "a sequence is both a member and a non-member")
                continue
            seen[key] = len(rows)
            rows.append(ids)
            split.append(name)
    require(pad is not None or all(len(r) == L for r in rows),
            "the sequences are shorter than L and the model has no pad token; give --pad-id")
    seqs = torch.full((len(rows), L), pad if pad is not None else 0, dtype=torch.long)
    mask = torch.zeros(len(rows), L, dtype=torch.bool)
    for i, r in enumerate(rows):
        seqs[i, : len(r)], mask[i, : len(r)] = torch.tensor(r), True
    is_member = torch.tensor([s == "member" for s in split])
    return seqs, mask, is_member.nonzero().squeeze(-1), (~is_member).nonzero().squeeze(-1)


def _placed(module: torch.nn.Module, device: torch.device, device_map: str | None):
    """The module on ``device``, or left where a device map put its layers (its inputs are
    moved to its first layer and its logits back to ``device`` by the adapter)."""
    return (module if device_map else module.to(device)).eval()


def load_subject(cfg: SubjectConfig, out: str | Path, device: str = "auto",
                 precision: str = "fp32"):
    """The model of ``cfg.model`` and its sequences, as a :class:`attractor.run.Run` writing to
    ``out``."""
    from attractor.adapters.registry import load_model
    from attractor.data import DataConfig, Dataset
    from attractor.data.dataset import fingerprint
    from attractor.device import resolve_device
    from attractor.run import Run

    require(cfg.members or cfg.nonmembers, "give the sequences to probe: --members and/or "
                                           "--nonmembers")
    loaded = load_model(cfg)
    require(cfg.device_map is None or loaded.source.get("adapter") == "transformers",
            "--device-map places transformers models; this model loads on one device")
    texts = {k: read_texts(v, cfg) if v else [] for k, v in
             (("members", cfg.members), ("non-members", cfg.nonmembers))}
    length = cfg.length or loaded.max_length
    lists, L = {}, length
    for what, t in texts.items():
        lists[what], L = _token_lists(t, loaded.tokenizer, loaded.special, length,
                                      cfg.truncate, what) if t else ([], L or 2)
    seqs, mask, members, nonmembers = _pool(lists["members"], lists["non-members"], L,
                                            loaded.special.pad)
    dev = resolve_device(device)
    dataset = Dataset(config=DataConfig(corpus=f"text:{cfg.members or cfg.nonmembers}"),
                      tokenizer=loaded.tokenizer, vocab_size=loaded.vocab_size,
                      pad_id=-1 if loaded.special.pad is None else loaded.special.pad,
                      bos_id=loaded.special.bos, eos_id=loaded.special.eos, sequences=seqs,
                      loss_mask=mask, test_ids=nonmembers, train_order=members,
                      fingerprint=fingerprint(seqs, mask))
    out = Path(out)
    return Run(directory=out, config=None, vocab_size=loaded.vocab_size,
               model=_placed(loaded.sigma_module(), dev, cfg.device_map), tokenizer=loaded.tokenizer,
               dataset=dataset, train_ids=members, test_ids=nonmembers,
               schedule=loaded.schedule, step=None, device=dev, precision=precision,
               family=loaded.family, mask_id=loaded.special.mask,
               source={**loaded.source, "members": cfg.members, "nonmembers": cfg.nonmembers,
                       "length": L, "family": loaded.family})
