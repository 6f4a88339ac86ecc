"""Text tokenizers: the shipped tabletop BPE and hf_json (any local tokenizer.json)."""

from __future__ import annotations

import re

import pytest

from vlakit.components.text import HfJsonConfig, TabletopBpeTokenizer, load_text_tokenizer
from vlakit.components.text.build_asset import build_asset_text, default_asset_path, train_tabletop_tokenizer
from vlakit.components.text.corpus import world_sentences
from vlakit.interfaces.text_tokenizer import TextTokenizerError
from vlakit.registry import TEXT_TOKENIZERS


@pytest.fixture(scope="module")
def tok():
    return TEXT_TOKENIZERS.get("tabletop_bpe").Config().build()


def test_registered(tok):
    assert isinstance(tok, TabletopBpeTokenizer)
    assert "hf_json" in TEXT_TOKENIZERS.builtin_keys()


def test_specials_and_size(tok):
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert 300 <= tok.vocab_size <= 2048


def test_bos_eos_and_exact_round_trip(tok):
    texts = ["Task: put the red cube in the blue zone, State: 0 17 255 128;\nAction: ",
             "what colour is the ball?", "Ünïcode ✓ and words the world never says: zebra 😀", ""]
    ids = tok.encode(texts, add_bos=True, add_eos=True)
    assert all(row[0] == tok.bos_id and row[-1] == tok.eos_id for row in ids)
    assert all(0 <= i < tok.vocab_size for row in ids for i in row)
    assert tok.decode(ids) == texts
    plain = tok.encode(texts)
    assert [row[1:-1] for row in ids] == plain
    with_specials = tok.decode([[tok.bos_id, *plain[1], tok.eos_id, tok.pad_id]], skip_special=False)[0]
    assert with_specials == "<bos>" + texts[1] + "<eos><pad>"


def test_every_world_word_is_one_token(tok):
    # each word in the form it occurs: " word" mid-sentence, "word" at the start of a line
    words = sorted({w for s in world_sentences() for w in re.findall(r" ?[a-z]+", s)})
    assert len(words) > 50
    split = [w for w in words if len(tok.encode([w])[0]) != 1]
    assert split == []


def test_state_bins_are_single_tokens(tok):
    bins = " ".join(str(i) for i in range(256))
    ids = tok.encode([f"State: {bins};"])[0]
    assert len(ids) == 2 + 256 + 1  # "State", ":", one token per bin, ";"


def test_encode_rejects_a_bare_string(tok):
    with pytest.raises(TextTokenizerError, match="wrap a single string in a list"):
        tok.encode("pick up the cube")


def test_decode_rejects_out_of_vocab_ids(tok):
    with pytest.raises(TextTokenizerError, match=f"sample 1: token id {tok.vocab_size} is outside"):
        tok.decode([[5], [3, tok.vocab_size]])


def test_shipped_asset_matches_its_builder():
    assert default_asset_path().read_text(encoding="utf-8") == build_asset_text()


def test_training_is_deterministic():
    lines = world_sentences()[:300]
    assert train_tabletop_tokenizer(lines, vocab_size=400).to_str() == \
        train_tabletop_tokenizer(lines, vocab_size=400).to_str()


def _paligemma_like(path):
    """A tokenizer.json with PaliGemma-style specials (<pad>=0, <eos>=1, <bos>=2) and a BOS post-processor."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    t = Tokenizer(models.BPE(unk_token="<unk>"))
    t.normalizer = normalizers.Replace(" ", "▁")
    t.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first")
    t.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    t.train_from_iterator(world_sentences(), trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<pad>", "<eos>", "<bos>", "<unk>"], show_progress=False))
    t.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", 2)])
    t.save(str(path))


def test_hf_json_loads_local_file_with_its_specials(tmp_path):
    _paligemma_like(tmp_path / "tokenizer.json")
    tok = HfJsonConfig(path=str(tmp_path)).build()
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    ids = tok.encode(["pick up the red cube"], add_bos=True)[0]
    assert ids[0] == 2 and ids.count(2) == 1  # the file's post-processor does not add a second BOS
    assert tok.decode([ids]) == ["pick up the red cube"]


def test_hf_json_missing_special_token_is_named(tmp_path):
    _paligemma_like(tmp_path / "tokenizer.json")
    with pytest.raises(TextTokenizerError, match=r"bos_token '<s>' is not in the vocabulary.*<bos>"):
        HfJsonConfig(path=str(tmp_path / "tokenizer.json"), bos_token="<s>").build()
    with pytest.raises(TextTokenizerError, match="does not exist"):
        HfJsonConfig(path=str(tmp_path / "nope.json")).build()


def test_save_and_reload(tok, tmp_path):
    tok.save(tmp_path)
    back = load_text_tokenizer(tmp_path)
    texts = ["Task: tidy up the table: put every block in the bin, State: 3 9;\nAction: "]
    assert back.encode(texts, add_bos=True) == tok.encode(texts, add_bos=True)
    assert (back.bos_id, back.eos_id, back.pad_id, back.vocab_size) == \
        (tok.bos_id, tok.eos_id, tok.pad_id, tok.vocab_size)
