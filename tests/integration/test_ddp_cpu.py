"""A 2-process CPU DDP run over gloo (Lightning's DDP strategy), with the fake policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent


@pytest.mark.slow
def test_two_process_gloo_ddp_trains_in_sync(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MASTER_PORT": str(29500 + os.getpid() % 1000)}
    proc = subprocess.run([sys.executable, str(HERE / "ddp_fake_train.py"), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    infos = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    # each rank built its own shard of the data and ran every step of both stages
    assert infos[0]["loaders"] == [[0, 2]] and infos[1]["loaders"] == [[1, 2]]
    assert infos[0]["steps"] == infos[1]["steps"] == 8
    w0, w1 = (torch.load(tmp_path / f"weights_rank{r}.pt") for r in (0, 1))
    for k in w0:  # gradients were all-reduced: both replicas hold the same weights
        torch.testing.assert_close(w0[k], w1[k], msg=k)
    assert (tmp_path / "checkpoints" / "01-post" / "done.json").is_file()
