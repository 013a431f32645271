"""Probing models attractor did not train: exports, transformers masked LMs, user sequences."""

import json

import pytest
import torch

from attractor.cli import main

transformers = pytest.importorskip("transformers")

WORDS = [f"w{i}" for i in range(40)]


@pytest.fixture(scope="module")
def memorised(tmp_path_factory):
    """A nano run that memorised 24 sequences, its export, and its members as text files."""
    from _runs import train_small

    root = tmp_path_factory.mktemp("subject")
    run_dir = root / "run"
    train_small(run_dir, num_train=24, steps=600, corpus=600, test_size=24,
                data={"block_length": 12}, eval_sequences=24, optim={"ema": 0.99})
    assert main(["export", str(run_dir), str(root / "export")]) == 0
    from attractor.run import load_run

    run = load_run(run_dir, device="cpu")
    for split, ids in (("members", run.train_ids), ("nonmembers", run.test_ids)):
        (root / f"{split}.txt").write_text(
            "\n".join(run.dataset.sentence(run.dataset.sequences[i]) for i in ids) + "\n")
    return root


def _probe(argv, capsys):
    capsys.readouterr()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 0, err
    return err


@pytest.mark.slow
def test_an_export_probed_with_its_members_reproduces_the_run(memorised, capsys):
    root = memorised
    common = ["--num-sequences", "24", "--bootstrap", "20", "--no-progress", "--device", "cpu"]
    for command in (["recovery", "--times", "0.25", "--fractions", "0.2", "--reverse-steps",
                     "5"], ["entropy", "--nelbo-samples", "2"]):
        _probe(["probe", *command, str(root / "run"), *common], capsys)
        _probe(["probe", *command, "--model", str(root / "export"), "--members",
                str(root / "members.txt"), "--nonmembers", str(root / "nonmembers.txt"),
                "--truncate", "--out", str(root / "probed"), *common], capsys)
    for name in ("recovery_deterministic", "recovery_stochastic", "entropy"):
        a = json.loads((root / "run" / "probes" / f"{name}.json").read_text())
        b = json.loads((root / "probed" / "probes" / f"{name}.json").read_text())
        assert a["summary"] == b["summary"], name
        assert b["source"]["adapter"] == "export" and b["num_train"] == 24
    assert (root / "probed" / "probes" / "report.html").is_file()


def _tiny_masked_lm(path, auto_map: bool = False):
    """A random-weight BERT masked LM over the words, with its tokenizer.json."""
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    config = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=16)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config)
    model.save_pretrained(str(path))
    tok.save(str(path / "tokenizer.json"))
    if auto_map:
        meta = json.loads((path / "config.json").read_text())
        meta["auto_map"] = {"AutoModelForMaskedLM": "modeling_x.XForMaskedLM"}
        (path / "config.json").write_text(json.dumps(meta))
    return model


def _texts(path, n, seed):
    g = torch.Generator().manual_seed(seed)
    lines = [" ".join(WORDS[int(i)] for i in torch.randint(0, len(WORDS), (6,), generator=g))
             for _ in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_transformers_masked_lm_runs_every_probe(tmp_path, capsys):
    from attractor.adapters.registry import load_model
    from attractor.adapters.subject import SubjectConfig

    model = _tiny_masked_lm(tmp_path / "mlm").eval()
    loaded = load_model(SubjectConfig(model=str(tmp_path / "mlm")))
    assert loaded.family == "masked" and loaded.special.mask == 4
    z = torch.randint(0, 45, (3, 9))
    with torch.no_grad():
        ours = loaded.sigma_module()(z, torch.zeros(3))
        theirs = model(input_ids=z).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    members, nonmembers = _texts(tmp_path / "m.txt", 8, 1), _texts(tmp_path / "n.txt", 8, 2)
    common = ["--model", str(tmp_path / "mlm"), "--members", str(members), "--nonmembers",
              str(nonmembers), "--out", str(tmp_path / "out"), "--bootstrap", "10",
              "--no-progress", "--device", "cpu"]
    _probe(["probe", "recovery", *common, "--num-sequences", "8", "--reverse-steps", "3",
            "--times", "0.3", "--fractions", "0.3"], capsys)
    _probe(["probe", "entropy", *common, "--num-sequences", "8", "--nelbo-samples", "2"], capsys)
    _probe(["probe", "generate", *common, "--num-samples", "4", "--reverse-steps", "3",
            "--num-reference", "4"], capsys)
    data = json.loads((tmp_path / "out" / "probes" / "recovery_stochastic.json").read_text())
    assert data["family"] == "masked"
    html = (tmp_path / "out" / "probes" / "report.html").read_text()
    assert "infilling" in html


def _error(argv, capsys) -> str:
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_models_that_cannot_be_probed_are_one_line_errors(tmp_path, capsys):
    members = _texts(tmp_path / "m.txt", 4, 1)
    base = ["probe", "entropy", "--members", str(members), "--out", str(tmp_path / "o")]
    assert "not a local path" in _error([*base, "--model", "kuleshov-group/mdlm-owt"], capsys)
    (tmp_path / "empty").mkdir()
    assert "none of the model layouts" in _error([*base, "--model", str(tmp_path / "empty")],
                                                 capsys)
    _tiny_masked_lm(tmp_path / "custom", auto_map=True)
    assert "--trust-remote-code" in _error([*base, "--model", str(tmp_path / "custom")], capsys)
    _tiny_masked_lm(tmp_path / "mlm")
    long = tmp_path / "long.txt"
    long.write_text(" ".join(WORDS[:30]) + "\n")
    assert "--truncate" in _error(["probe", "entropy", "--model", str(tmp_path / "mlm"),
                                   "--members", str(long), "--out", str(tmp_path / "o")], capsys)
    from tokenizers import Tokenizer, models

    big = Tokenizer(models.WordLevel({f"t{i}": i for i in range(100)}, unk_token="t0"))
    big.save(str(tmp_path / "big.json"))
    assert "tokenizer has 100 tokens" in _error(
        [*base, "--model", str(tmp_path / "mlm"), "--tokenizer", str(tmp_path / "big.json")],
        capsys)
    assert "mask id" in _error([*base, "--model", str(tmp_path / "mlm"), "--tokenizer",
                                str(_no_mask_tokenizer(tmp_path))], capsys)
    (tmp_path / "mlm" / "model.safetensors").write_bytes(b"not weights")
    assert "cannot load" in _error([*base, "--model", str(tmp_path / "mlm")], capsys)
    assert not (tmp_path / "o").exists()


def _no_mask_tokenizer(tmp_path):
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[XX]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "nomask.json"))
    return tmp_path / "nomask.json"


def test_without_non_members_the_probes_run_and_say_what_is_missing(tmp_path, capsys):
    _tiny_masked_lm(tmp_path / "mlm")
    given = _texts(tmp_path / "given.txt", 6, 3)
    common = ["--model", str(tmp_path / "mlm"), "--members", str(given), "--out",
              str(tmp_path / "out"), "--bootstrap", "10", "--no-progress", "--device", "cpu"]
    _probe(["probe", "entropy", *common, "--nelbo-samples", "2"], capsys)
    _probe(["probe", "generate", *common, "--num-samples", "3", "--reverse-steps", "2"], capsys)
    entropy = json.loads((tmp_path / "out" / "probes" / "entropy.json").read_text())
    assert entropy["num_test"] == 0
    assert entropy["membership"]["scores"]["nelbo"]["auroc"]["mean"] is None
    generate = json.loads((tmp_path / "out" / "probes" / "generate.json").read_text())
    assert generate["summary"]["entropy"]["generated"]["mean"] is not None
    assert "cannot" in (tmp_path / "out" / "probes" / "report.html").read_text()


@pytest.mark.parametrize("model_type, extra", [("udlm", []), ("mdlm", ["--mask-id", "44"])])
def test_released_dit_layouts_are_probed_through_the_cli(tmp_path, capsys, model_type, extra):
    """A UDLM (uniform) and an MDLM (masked) release folder with random weights, K = 50."""
    from test_adapters_checkpoints import hf_folder, random_weights
    from tokenizers import Tokenizer, models, pre_tokenizers

    folder = hf_folder(tmp_path / model_type, random_weights(torch.Generator().manual_seed(0)),
                       model_type=model_type)
    vocab = {t: i for i, t in enumerate(["[PAD]", "[BOS]", "[EOS]", "[UNK]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tok.save(str(tmp_path / "tok.json"))
    members, nonmembers = _texts(tmp_path / "m.txt", 6, 1), _texts(tmp_path / "n.txt", 6, 2)
    common = ["--model", str(folder), "--members", str(members), "--nonmembers", str(nonmembers),
              "--length", "10", "--out", str(tmp_path / "out"), "--bootstrap", "10",
              "--no-progress", "--device", "cpu", *extra]
    assert "holds no tokenizer" in _error(["probe", "entropy", *common], capsys)
    common += ["--tokenizer", str(tmp_path / "tok.json")]
    _probe(["probe", "entropy", *common, "--nelbo-samples", "2"], capsys)
    _probe(["probe", "recovery", *common, "--times", "0.3", "--fractions", "0.3",
            "--reverse-steps", "2", "--num-sequences", "6"], capsys)
    data = json.loads((tmp_path / "out" / "probes" / "entropy.json").read_text())
    assert data["family"] == ("masked" if model_type == "mdlm" else "uniform")
    assert data["source"]["adapter"] == "dit" and data["num_train"] == 6


def test_special_token_strings_in_member_files_stay_text():
    """A member sentence that spells "[PAD]" or "<|endoftext|>" is not given those ids."""
    from attractor.adapters.subject import _token_lists
    from attractor.data.tokenizer import gpt2_tokenizer, special_ids, word_tokenizer

    word = word_tokenizer(["the", "cat", "sat"])
    ids, _ = _token_lists(["the [PAD] cat"], word, special_ids(word), None, False, "members")
    pad = special_ids(word).pad
    assert pad not in ids[0] and len(ids[0]) == 3 + (special_ids(word).bos is not None) + \
        (special_ids(word).eos is not None)
    gpt = gpt2_tokenizer()
    eot = gpt.token_to_id("<|endoftext|>")
    ids, _ = _token_lists(["a <|endoftext|> b"], gpt, special_ids(gpt), None, False, "members")
    body = ids[0][1:-1] if special_ids(gpt).bos is not None else ids[0]
    assert eot not in body and len(body) > 3


def test_a_device_map_places_a_transformers_model_and_keeps_its_logits(tmp_path, monkeypatch):
    """--device-map hands the placement to transformers/accelerate (here every layer lands on
    the CPU); inputs go to the first layer, logits come back to the probe's device."""
    from attractor.adapters.subject import SubjectConfig, load_subject

    model = _tiny_masked_lm(tmp_path / "mlm").eval()
    members = _texts(tmp_path / "m.txt", 4, 1)
    run = load_subject(SubjectConfig(model=str(tmp_path / "mlm"), members=str(members),
                                     device_map="auto"), tmp_path / "out", device="cpu")
    assert run.source["device_map"] == "auto" and run.source["placement"] == ["cpu"]
    z = torch.randint(0, 45, (2, 7))
    with torch.no_grad():
        torch.testing.assert_close(run.model(z, torch.zeros(2)), model(input_ids=z).logits,
                                   atol=1e-5, rtol=1e-5)
    monkeypatch.setitem(__import__("sys").modules, "accelerate", None)     # not installed
    with pytest.raises(Exception, match="needs the accelerate package"):
        load_subject(SubjectConfig(model=str(tmp_path / "mlm"), members=str(members),
                                   device_map="auto"), tmp_path / "out", device="cpu")


@pytest.mark.slow
def test_a_device_map_is_refused_for_models_that_load_on_one_device(memorised, capsys):
    err = _error(["probe", "entropy", "--model", str(memorised / "export"), "--members",
                  str(memorised / "members.txt"), "--device-map", "auto", "--out",
                  str(memorised / "mapped")], capsys)
    assert "--device-map places transformers models" in err
    assert not (memorised / "mapped" / "probes").exists()
