"""Inference timing of a tiny π0.5 with π0.5's sequence shape (not a test).

Three 224x224 cameras (256 tokens each), a ~200-token prompt, H = 50, 32 action dims, at tiny
widths. Prints the median over repeated runs of: the prefix forward (into the KV cache), one
denoising step over the cache, full ``sample_actions`` (cached), and the uncached reference path
that recomputes the prefix every step. Targets: cached >= 4x faster than uncached, and cached
within 15 % of prefix + steps x step.

    python benchmarks/inference.py [--threads 1] [--repeats 10] [--steps 10] [--batch-size 1]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from vlakit.recipe.build import build_policy
from vlakit.recipe.load import load_recipe
from vlakit.types import Observation

OVERRIDES = [
    "model.vision={type: siglip, variant: tiny_patch14_224}",
    "model.horizon=50", "model.max_action_dim=32", "model.max_token_len=200",
]
WORDS = ["pick", "up", "the", "red", "block", "and", "put", "it", "in", "the", "blue", "bowl", "next", "to", "the",
         "green", "block"]


def long_prompt(policy, *, target: int = 200, state_dims: int = 14) -> str:
    """A task string whose π0.5 prompt (with state text) is just under ``target`` tokens."""
    state = torch.zeros(1, policy.spec.max_action_dim)
    mask = torch.zeros_like(state, dtype=torch.bool)
    mask[:, :state_dims] = True
    words: list[str] = []
    while True:
        candidate = " ".join(words + [WORDS[len(words) % len(WORDS)]])
        text = policy.state_encoder.prompt(tasks=[candidate], state=state, state_mask=mask)
        if len(policy.text_tokenizer.encode(text, add_bos=True)[0]) > target - 2:
            return " ".join(words)
        words.append(WORDS[len(words) % len(WORDS)])


def median_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    policy = build_policy(load_recipe("pi05_tiny", OVERRIDES), device=args.device).eval()
    spec, b = policy.spec, args.batch_size
    task = long_prompt(policy)
    state_mask = torch.zeros(b, spec.max_action_dim, dtype=torch.bool)
    state_mask[:, :14] = True
    obs = Observation(
        images={c: torch.randint(0, 256, (b, 224, 224, 3), dtype=torch.uint8) for c in spec.cameras},
        image_masks={c: torch.ones(b, dtype=torch.bool) for c in spec.cameras},
        state=(torch.rand(b, spec.max_action_dim) * 2 - 1) * state_mask, state_mask=state_mask, prompt=[task] * b)
    noise = torch.randn(b, spec.horizon, spec.max_action_dim)
    head = policy.heads["flow_matching"]
    with torch.no_grad():
        prefix = policy.prefix_segments(obs)
        cache = policy.runner.run(prefix).context()
    n_prompt = int(prefix[-1].valid.sum(dim=1).max())
    n_prefix = sum(s.length for s in prefix)

    @torch.no_grad()
    def prefix_forward() -> object:
        return policy.runner.run(policy.prefix_segments(obs)).context()

    @torch.no_grad()
    def denoise_step() -> object:
        segs, cond = head.suffix(noise, torch.full((b,), 0.5), None)
        hidden = policy.runner.run(segs, context=cache, conds={head.expert_index: cond}).hidden["actions"]
        return noise - 0.1 * head.action_out_proj(hidden)

    def cached() -> object:
        return policy.sample_actions(obs, noise=noise, num_steps=args.steps)

    def uncached() -> object:
        return policy.sample_actions_uncached(obs, noise=noise, num_steps=args.steps)

    diff = (cached().actions - uncached().actions).abs().max().item()
    t_prefix = median_ms(prefix_forward, args.repeats)
    t_step = median_ms(denoise_step, args.repeats)
    t_cached = median_ms(cached, args.repeats)
    t_uncached = median_ms(uncached, args.repeats)
    budget = t_prefix + args.steps * t_step
    print(f"tiny pi0.5, batch {b}, {args.threads} thread(s), device {args.device}: prefix {n_prefix} tokens "
          f"({len(spec.cameras)} cameras x {policy.vision.num_tokens} + {n_prompt} valid prompt tokens of "
          f"{spec.max_token_len}), H={spec.horizon}, {args.steps} steps; median of {args.repeats}")
    print(f"  prefix forward            {t_prefix:9.2f} ms")
    print(f"  one denoise step (cached) {t_step:9.2f} ms")
    print(f"  sample_actions (cached)   {t_cached:9.2f} ms   prefix + {args.steps} x step = {budget:.2f} ms "
          f"({100 * (t_cached / budget - 1):+.1f} %, target within 15 %)")
    print(f"  uncached reference        {t_uncached:9.2f} ms   {t_uncached / t_cached:.1f}x slower "
          f"(target >= 4x)")
    print(f"  max |cached - uncached|   {diff:.2e}")


if __name__ == "__main__":
    main()
