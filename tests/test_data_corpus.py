"""Corpus sources: text files, Hugging Face dumps (offline fixtures), the LM1B detokenizer."""

from __future__ import annotations

import pytest
import torch

from attractor.data import DataConfig, build_dataset
from attractor.data.corpus import hf_sentences, text_sentences
from attractor.data.detokenize import lm1b_detokenize
from attractor.errors import UserError


def _lines(n: int) -> list[str]:
    return [f"Line number {i} says {i * 7 % 13} things." for i in range(n)]


def test_text_file_lines_blank_lines_and_limit(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("\ufefffirst line\n\n  second line  \r\nthird\n   \n", encoding="utf-8")
    assert text_sentences(str(f)) == ["first line", "second line", "third"]
    assert text_sentences(str(f), limit=2) == ["first line", "second line"]


def test_text_directory_reads_txt_files_in_sorted_order(tmp_path):
    (tmp_path / "b.txt").write_text("from b\n", encoding="utf-8")
    (tmp_path / "a.txt").write_text("from a\n", encoding="utf-8")
    (tmp_path / "c.md").write_text("ignored\n", encoding="utf-8")
    assert text_sentences(str(tmp_path)) == ["from a", "from b"]


def test_text_corpus_with_gpt2_end_to_end(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(_lines(300) + _lines(20)), encoding="utf-8")  # 20 duplicates
    data = build_dataset(DataConfig(corpus=f"text:{f}", block_length=16, test_size=30))
    assert data.vocab_size == 50258 and data.pad_id == 50257 and data.bos_id == 50256
    assert data.sequences.shape == (300, 16)  # duplicates removed
    assert data.sentence(data.sequences[0]) == "Line number 0 says 0 things."
    assert torch.equal(data.loss_mask, data.sequences != data.pad_id)


def test_text_corpus_word_and_bpe_tokenizers(tmp_path):
    f = tmp_path / "corpus.txt"
    f.write_text("\n".join(_lines(300)), encoding="utf-8")
    for kind in ("word", "bpe:300"):
        data = build_dataset(DataConfig(corpus=f"text:{f}", tokenizer=kind, block_length=16,
                                        test_size=30, mode="wrap"))
        assert data.loss_mask.all()
        assert "[UNK]" not in data.decode(data.sequences[0])


@pytest.mark.parametrize("setup, message", [
    (lambda p: p / "missing.txt", "does not exist"),
    (lambda p: (p / "empty.txt").write_text("\n  \n\n") and p / "empty.txt", "is empty"),
    (lambda p: (p / "bad.txt").write_bytes(b"fine\nbad \xff byte\n") and p / "bad.txt",
     r"bad.txt is not UTF-8 text: invalid byte 0xff at byte offset 9"),
    (lambda p: (p / "sub").mkdir() or p / "sub", "has no \\*.txt files"),
    (lambda p: (p / "few.txt").write_text("a\nb\nc\n") and p / "few.txt",
     "only 3 distinct sequences, not more than the test size 1000"),
])
def test_text_corpus_errors(tmp_path, setup, message):
    path = setup(tmp_path)
    with pytest.raises(UserError, match=message):
        build_dataset(DataConfig(corpus=f"text:{path}"))


@pytest.mark.parametrize("raw, clean", [
    ("it 's $ 5 ( cheap ) .", "it's $5 (cheap) ."),
    ('He said , " I do n\'t know " .', 'He said, "I don\'t know" .'),
    ("Is it ? Yes !", "Is it? Yes!"),
    ("They 've gone home .", "They've gone home."),
    ("see http : / / example.com now", "see http://example.com now"),
    ("a ; b : c / d [ e ]", "a; b: c/d [e]"),
    ("It costs £ 3 .", "It costs £3."),
])
def test_lm1b_detokenizer(raw, clean):
    assert lm1b_detokenize(raw) == clean


@pytest.fixture
def parquet_dump(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    texts = [f"Sentence {i} , it 's here ." for i in range(120)] + ["", "  "]
    path = tmp_path / "lm1b_dump"
    path.mkdir()
    pq.write_table(pa.table({"text": texts[:60]}), path / "train-00000.parquet")
    pq.write_table(pa.table({"text": texts[60:]}), path / "train-00001.parquet")
    return path


def test_hf_local_parquet_dump_with_lm1b_detokenizer(parquet_dump):
    sentences = hf_sentences(str(parquet_dump))
    assert len(sentences) == 120  # blank rows dropped
    assert sentences[0] == "Sentence 0, it's here."
    assert hf_sentences(str(parquet_dump), limit=5)[-1] == "Sentence 4, it's here."
    data = build_dataset(DataConfig(corpus=f"hf:{parquet_dump}", block_length=16, test_size=20))
    assert data.sequences.shape == (120, 16)
    assert data.sentence(data.sequences[1]) == "Sentence 1, it's here."


def test_hf_single_file_and_save_to_disk(parquet_dump, tmp_path):
    datasets = pytest.importorskip("datasets")
    one = parquet_dump / "train-00000.parquet"
    assert len(hf_sentences(str(one))) == 60
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"text": ["a b .", "c d ."]}).save_to_disk(str(saved))
    assert hf_sentences(str(saved)) == ["a b .", "c d ."]  # no lm1b in the name: untouched


def test_hf_errors(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
    pq.write_table(pa.table({"sentence": ["x"]}), tmp_path / "x.parquet")
    with pytest.raises(UserError, match="no 'text' column"):
        hf_sentences(str(tmp_path / "x.parquet"))
    with pytest.raises(UserError, match="does not exist"):
        hf_sentences(str(tmp_path / "nowhere"))
    (tmp_path / "junk.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "tiny.txt").write_text("abc")
    for junk in ("junk.parquet", "tiny.txt"):
        with pytest.raises(UserError, match="cannot read .* as a dataset"):
            hf_sentences(str(tmp_path / junk))
    import huggingface_hub.constants

    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(UserError, match="could not load hf dataset 'lm1b'.*local parquet"):
        hf_sentences("lm1b")
