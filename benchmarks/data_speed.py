"""Data speed: the PNG codec, dataset generation with 1 vs N worker processes, and training-batch making.

    .venv/bin/python benchmarks/data_speed.py [--frames 600] [--episodes 400] [--workers 2]
        [--recipe pi05_tabletop] [--cache-dir DIR]

Part 0 encodes and decodes ``--frames`` frames of the tabletop world (both cameras, fresh scenes)
with PIL and with vlakit's :mod:`vlakit.data.png`, in alternating rounds, checks that every frame
round-trips exactly through both, and prints the median times per frame, their ratios and the
mean file sizes.
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


def png_codec(frames: int, rounds: int = 3) -> None:
    import io
    import statistics

    import numpy as np
    from PIL import Image

    from vlakit.data.png import decode_png, encode_png
    from vlakit.envs.tabletop import TabletopConfig, TabletopEnv

    env = TabletopEnv(TabletopConfig())
    images: list[np.ndarray] = []
    seed = 0
    while len(images) < frames:
        obs = env.reset(seed=seed)
        images += [np.asarray(obs.images[c]) for c in sorted(obs.images)]
        seed += 1
    images = images[:frames]

    def pil_encode(img: np.ndarray) -> bytes:
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="PNG", compress_level=1)  # what vlakit wrote before
        return buf.getvalue()

    def pil_decode(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as im:
            return np.asarray(im.convert("RGB"))

    codecs = {"PIL": (pil_encode, pil_decode), "vlakit": (encode_png, decode_png)}
    times: dict[str, dict[str, list[float]]] = {n: {"encode": [], "decode": []} for n in codecs}
    sizes: dict[str, float] = {}
    for _ in range(rounds):
        for name, (enc, dec) in codecs.items():
            start = time.perf_counter()
            files = [enc(im) for im in images]
            times[name]["encode"].append((time.perf_counter() - start) / frames * 1e6)
            start = time.perf_counter()
            back = [dec(f) for f in files]
            times[name]["decode"].append((time.perf_counter() - start) / frames * 1e6)
            if not all(np.array_equal(a, b) for a, b in zip(images, back)):
                raise SystemExit(f"{name}: frames did not round-trip exactly")
            sizes[name] = sum(len(f) for f in files) / frames
    med = {n: {k: statistics.median(v) for k, v in t.items()} for n, t in times.items()}
    for op in ("encode", "decode"):
        print(f"PNG {op} of {frames} frames: PIL {med['PIL'][op]:.0f} us, vlakit {med['vlakit'][op]:.0f} us "
              f"per frame, ratio {med['PIL'][op] / med['vlakit'][op]:.2f}x (median of {rounds} rounds)")
    print(f"PNG file size: PIL {sizes['PIL']:.0f} bytes, vlakit {sizes['vlakit']:.0f} bytes per frame; "
          "every frame round-trips exactly through both")


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
    parser.add_argument("--frames", type=int, default=600, help="frames for the PNG codec comparison (0 skips)")
    parser.add_argument("--episodes", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--recipe", default="pi05_tabletop", help="recipe whose data pipeline is timed ('' skips)")
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--cache-dir", default=None, help="the recipe's data cache (default: its data.cache_dir; "
                        "generated there if missing)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="vlakit-data-speed-"))
    try:
        if args.frames:
            png_codec(args.frames)
        generation(args.episodes, args.workers, root)
        if args.recipe:
            batches(args.recipe, root, args.batches, args.cache_dir)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
