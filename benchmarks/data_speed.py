"""Data speed: dataset generation with 1 vs N worker processes, and training-batch making.

    .venv/bin/python benchmarks/data_speed.py [--episodes 400] [--workers 2] [--recipe pi05_tabletop]
        [--cache-dir DIR]

Part 1 generates the same tabletop dataset (``--episodes``) once in this process and once with a
pool of ``--workers`` processes, checks that the two are byte-identical, and prints both times and
their ratio. Part 2 times how long the recipe's data pipeline takes to make one training batch
(main-thread loading), for the recipe's mixture and for each stage's own mixture: that is the
time a step waits for data unless ``data.prefetch`` makes batches ahead.
"""

from __future__ import annotations

import argparse
import filecmp
import shutil
import tempfile
import time
from pathlib import Path


def generation(episodes: int, workers: int, root: Path) -> None:
    from vlakit.data.generate import generate_tabletop_dataset

    times = {}
    for n in (1, workers):
        start = time.perf_counter()
        generate_tabletop_dataset(root / f"w{n}", episodes=episodes, progress=False, workers=n)
        times[n] = time.perf_counter() - start
    a, b = root / "w1", root / f"w{workers}"
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    same = files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file()) and all(
        filecmp.cmp(a / f, b / f, shallow=False) for f in files)
    print(f"generation of {episodes} episodes: 1 process {times[1]:.1f} s, {workers} processes "
          f"{times[workers]:.1f} s, ratio {times[1] / times[workers]:.2f}x; identical datasets: {same}")


def batches(recipe_name: str, root: Path, count: int, cache_dir: str | None) -> None:
    from vlakit.data import build_train_loader, compute_norm_stats, prepare_sources
    from vlakit.recipe.load import load_recipe
    from vlakit.training.stage_data import with_weights

    recipe = load_recipe(recipe_name, [f"data.cache_dir={cache_dir}"] if cache_dir else [])
    prepare_sources(recipe.data, cache_dir=None, progress=True)
    norm_stats = compute_norm_stats(recipe.data, model_spec=recipe.model)
    mixtures = {"recipe mixture": {}}
    mixtures.update({f"stage {s.name}": s.mixture for s in recipe.train.stages if s.mixture})
    for label, weights in mixtures.items():
        loader = build_train_loader(with_weights(recipe.data, weights), model_spec=recipe.model,
                                    norm_stats=norm_stats, seed=0)
        next(loader)
        start = time.perf_counter()
        for _ in range(count):
            next(loader)
        ms = (time.perf_counter() - start) / count * 1000
        print(f"{label}: {ms:.1f} ms per batch of {recipe.data.batch_size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recipe", default="pi05_tabletop", help="recipe whose data pipeline is timed ('' skips)")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--cache-dir", default=None, help="the recipe's data cache (default: its data.cache_dir; "
                        "generated there if missing)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vlakit-data-speed-"))
    try:
        generation(args.episodes, args.workers, root)
        if args.recipe:
            batches(args.recipe, root, args.batches, args.cache_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
