"""The one mask builder: openpi's ar cumsum rule, hidden-from pairs, expert visibility, positions."""

from __future__ import annotations

import pytest
import torch

from vlakit.nn.segments import Segment, attention_mask, positions, split_outputs, streams_by_expert


def seg(name: str, n: int, *, attention: str = "prefix", expert: int = 0, valid: list[bool] | None = None,
        **kw) -> Segment:
    v = torch.tensor([valid if valid is not None else [True] * n])
    return Segment(name, torch.zeros(1, n, 4), v, expert=expert, attention=attention, **kw)


def as_rows(mask: torch.Tensor) -> list[str]:
    return ["".join("x" if v else "." for v in row) for row in mask[0].tolist()]


def test_prefix_then_causal_is_prefix_lm():
    mask = attention_mask([seg("p", 3), seg("t", 3, attention="causal")])
    assert as_rows(mask) == ["xxx...", "xxx...", "xxx...", "xxxx..", "xxxxx.", "xxxxxx"]


def test_block_segment_is_bidirectional_within_and_sees_earlier_blocks():
    mask = attention_mask([seg("p", 2), seg("state", 1, attention="block"), seg("act", 2, attention="block")])
    assert as_rows(mask) == ["xx...", "xx...", "xxx..", "xxxxx", "xxxxx"]


def test_padding_is_never_attended_and_positions_skip_it():
    segs = [seg("p", 3, valid=[True, False, True]), seg("t", 2, attention="causal")]
    mask = attention_mask(segs)
    assert not mask[0, :, 1].any() and not mask[0, 1].any()
    assert positions(segs).tolist() == [[0, 0, 1, 2, 3]]
    assert positions(segs, start=torch.tensor([10])).tolist() == [[10, 10, 11, 12, 13]]


def test_own_expert_visibility_hides_fast_from_the_action_expert_only():
    segs = [seg("p", 1), seg("fast", 2, attention="causal", visibility="own_expert"),
            seg("text_after", 1, attention="causal"), seg("act", 2, attention="block", expert=1)]
    rows = as_rows(attention_mask(segs))
    assert rows[3] == "xxxx.."  # a later expert-0 token still sees the FAST tokens
    assert rows[4] == rows[5] == "x..xxx"  # the action expert sees prefix and later text, not FAST


def test_hidden_from_names_a_query_segment():
    segs = [seg("p", 1), seg("a", 1, attention="causal", hidden_from=("c",)), seg("b", 1, attention="causal"),
            seg("c", 1, attention="causal")]
    assert as_rows(attention_mask(segs))[3] == "x.xx"


def test_none_visibility_hides_a_read_out_query_from_every_other_segment():
    segs = [seg("p", 2), seg("q", 1, attention="block", visibility="none"), seg("t", 2, attention="causal")]
    assert as_rows(attention_mask(segs)) == ["xx...", "xx...", "xxx..", "xx.x.", "xx.xx"]
    assert positions(segs).tolist() == [[0, 1, 2, 3, 4]]  # it still takes a position


def test_a_cached_none_visibility_token_is_an_invalid_key_but_counts_as_a_position():
    from vlakit.nn.attention import KVCache
    from vlakit.nn.runner import RunResult

    segs = [seg("p", 2), seg("q", 1, attention="block", visibility="none")]
    out = type("Out", (), {"keys": [torch.zeros(1, 1, 3, 2)], "values": [torch.zeros(1, 1, 3, 2)]})()
    fresh = RunResult(hidden={}, segments=segs, previous=None, output=out, valid=torch.ones(1, 3, dtype=torch.bool),
                      next_position=torch.tensor([3])).context()
    assert fresh.valid.tolist() == [[True, True, False]] and fresh.next_position.tolist() == [3]
    past = KVCache(keys=[torch.zeros(1, 1, 2, 2)], values=[torch.zeros(1, 1, 2, 2)],
                   valid=torch.tensor([[True, False]]), next_position=torch.tensor([1]))
    new = [seg("q2", 1, attention="block", visibility="none"), seg("t", 2, attention="causal")]
    out = type("Out", (), {"keys": [torch.zeros(1, 1, 3, 2)], "values": [torch.zeros(1, 1, 3, 2)]})()
    extended = RunResult(hidden={}, segments=new, previous=past, output=out, valid=torch.ones(1, 3, dtype=torch.bool),
                         next_position=torch.tensor([4])).context()
    assert extended.valid.tolist() == [[True, False, False, True, True]]
    assert extended.next_position.tolist() == [4]


def test_cached_keys_are_visible_to_valid_new_queries():
    segs = [seg("new", 2, attention="block", valid=[True, False])]
    mask = attention_mask(segs, past_valid=torch.tensor([[True, False, True]]))
    assert as_rows(mask) == ["x.xx.", "....."]


def test_segment_order_and_names_are_checked():
    with pytest.raises(ValueError, match="duplicate segment name"):
        attention_mask([seg("a", 1), seg("a", 1)])
    with pytest.raises(ValueError, match="order segments by expert"):
        attention_mask([seg("x", 1, expert=1), seg("y", 1)])


def test_streams_split_round_trip():
    a = Segment("a", torch.randn(2, 2, 4), torch.ones(2, 2, dtype=torch.bool), expert=0, attention="prefix")
    b = Segment("b", torch.randn(2, 3, 4), torch.ones(2, 3, dtype=torch.bool), expert=0, attention="causal")
    c = Segment("c", torch.randn(2, 1, 6), torch.ones(2, 1, dtype=torch.bool), expert=1, attention="block")
    streams = streams_by_expert([a, b, c], 2)
    assert streams[0].shape == (2, 5, 4) and streams[1].shape == (2, 1, 6)
    parts = split_outputs([a, b, c], streams)
    assert all(torch.equal(parts[s.name], s.embeds) for s in (a, b, c))
    with pytest.raises(ValueError, match="expert"):
        streams_by_expert([a, c], 1)
