"""Paper-size recipes built on the meta device: exact per-block parameter counts (reference §1.3),
totals, the ``--params`` table, and the composition root's cross-component checks."""

from __future__ import annotations

import pytest
import torch

from vlakit.recipe.build import BuildError, build_policy, parameter_counts, parameter_table
from vlakit.recipe.load import load_recipe

# reference §1.3 (computed from openpi's configs; SigLIP and Gemma-2B confirmed by a third-party count)
SIGLIP_SO400M_WITH_HEAD = 414_803_696
GEMMA_2B_WITHOUT_EMBEDDING = 1_981_884_416
PALIGEMMA_EMBEDDING = 526_647_296
EXPERT_PI0 = 311_464_960
EXPERT_PI05 = 427_932_672
HEADS_PI0, HEADS_PI05 = 3_248_160, 2_165_792


def test_pi05_counts_match_the_reference_blocks():
    c = parameter_counts(load_recipe("pi05"))
    assert c["vision"] == SIGLIP_SO400M_WITH_HEAD
    assert c["language"] == GEMMA_2B_WITHOUT_EMBEDDING
    assert c["embedding"] == PALIGEMMA_EMBEDDING
    assert c["expert:flow_matching"] == EXPERT_PI05
    assert c["head:flow_matching"] + c["state"] == HEADS_PI05
    assert c["head:fast_autoregressive"] == 0  # FAST reuses the LM embedding and head
    assert c["total"] == sum(v for k, v in c.items() if k != "total")
    assert abs(c["total"] - 3.353e9) / 3.353e9 < 0.005


def test_pi0_counts_match_the_reference_blocks():
    c = parameter_counts(load_recipe("pi0"))
    assert c["expert:flow_matching"] == EXPERT_PI0
    assert c["head:flow_matching"] + c["state"] == HEADS_PI0  # state_proj is the state encoder's
    assert c["total"] == SIGLIP_SO400M_WITH_HEAD + GEMMA_2B_WITHOUT_EMBEDDING + PALIGEMMA_EMBEDDING + EXPERT_PI0 \
        + HEADS_PI0
    assert abs(c["total"] - 3.238e9) / 3.238e9 < 0.005


def test_pi0_fast_has_no_action_expert():
    c = parameter_counts(load_recipe("pi0_fast"))
    assert not any(k.startswith("expert:") for k in c)
    assert c["total"] == SIGLIP_SO400M_WITH_HEAD + GEMMA_2B_WITHOUT_EMBEDDING + PALIGEMMA_EMBEDDING


def test_meta_build_allocates_nothing_and_has_no_dead_parameters():
    policy = build_policy(load_recipe("pi05"), device="meta")
    assert all(p.device.type == "meta" for p in policy.parameters())
    names = [n for n, _ in policy.named_parameters()]
    assert [n for n in names if "embedding" in n] == ["language.embedding.weight"]  # tied LM head, expert 0 only
    assert not any(n.startswith("language.experts.1.") and ("embed" in n or "lm_head" in n) for n in names)


def test_parameter_table_lists_components_and_exact_total():
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(parameter_table(load_recipe("pi05")))
    text = console.export_text()
    assert "3,353,433,872" in text and "414,803,696" in text and "action expert of heads.flow_matching" in text


def test_cli_prints_params(tmp_path):
    from typer.testing import CliRunner

    from vlakit.cli.main import app

    result = CliRunner().invoke(app, ["recipes", "show", "pi0", "--params"], terminal_width=160)
    assert result.exit_code == 0, result.output
    assert "3,238,048,528" in result.output


@pytest.mark.parametrize("overrides,needles", [
    (["model.heads.flow_matching.expert=gemma_300m"], ["model.heads.flow_matching.expert 'gemma_300m'",
                                                       "model.language (gemma tiny)", "depth 18 vs 2"]),
    (["model.heads.flow_matching.expert=gemma_3b"], ["model.heads.flow_matching.expert 'gemma_3b'", "gemma_2b"]),
    (["model.language.vocab_size=900"], ["model.heads.fast_autoregressive", "model.action_tokenizer (fast, 256",
                                         "overlap", "at least {min_vocab}"]),
    (["model.language.vocab_size=500"], ["model.text_tokenizer (tabletop_bpe", "vocab_size 500"]),
    (["model.inference.actions_from=fast_autoregressive", "model.heads={flow_matching: {expert: tiny_expert}}"],
     ["model.inference.actions_from", "fast_autoregressive"]),
])
def test_cross_component_checks_fail_before_weights_naming_both_parts(overrides, needles):
    recipe = load_recipe("pi05_tiny", overrides)
    with pytest.raises(BuildError) as info:
        build_policy(recipe, device="meta")
    min_vocab = recipe.model.text_tokenizer.build().vocab_size + 256
    for needle in needles:
        assert needle.format(min_vocab=min_vocab) in str(info.value)


def test_state_tokens_need_an_action_expert():
    recipe = load_recipe("pi0_fast_tiny", ["model.state={type: continuous_token}"])
    with pytest.raises(BuildError, match=r"model.state \(continuous_token\).*no head.*action expert"):
        build_policy(recipe, device="meta")


def test_tiny_recipes_build_and_size_the_vocabulary_from_the_tokenizers():
    for name in ("pi05_tiny", "pi0_tiny", "pi0_fast_tiny"):
        policy = build_policy(load_recipe(name))
        text_vocab = policy.text_tokenizer.vocab_size
        fast = policy.action_tokenizer.vocab_size if policy.action_tokenizer is not None else 0
        assert policy.language.vocab_size == text_vocab + fast
        assert sum(p.numel() for p in policy.parameters()) < 1_000_000
        assert torch.isfinite(next(policy.parameters())).all()
