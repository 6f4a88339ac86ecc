"""Training batches made ahead in a background process (``data.prefetch``).

A batch is made in Python (decoding, rendering on-the-fly scenes, tokenising), so a thread would
hold the interpreter lock that the training step needs between its kernels; on a CPU machine a
background thread measured slower than none. :class:`BackgroundLoader` runs the whole
:class:`~vlakit.data.mixture.TrainLoader` in a spawned child process instead, which hands over each
batch with the loader position right after it. The stream, and every position, is the one the
loader would produce in this process, so checkpoints and resume are exact.
"""

from __future__ import annotations

import copy
import multiprocessing
import os
import queue as queue_mod
import shutil
import traceback
import weakref
from collections.abc import Callable
from typing import Any

from vlakit.data.errors import DatasetError

#: seconds between checks that the child is still alive while waiting for a batch
_POLL_S = 1.0


def _child(factory: Callable[[], Any], state: dict[str, Any] | None, out: Any, stop: Any) -> None:
    import torch

    torch.set_num_threads(1)  # the parent trains on the cores
    code = 0
    try:
        loader = factory()
        if state is not None:
            loader.load_state_dict(state)
        # the folder of the listener that hands tensors over: the parent removes it if this process is killed
        out.put(("state", loader.state_dict(), multiprocessing.util.get_temp_dir()))
        while not stop.is_set():
            batch = next(loader)
            out.put(("batch", (batch, loader.state_dict()), loader.clipped_fractions()))
        out.cancel_join_thread()  # stopped: exit without waiting to hand over batches nobody will read
    except BaseException as err:
        code = 1
        text = "".join(traceback.format_exception(err))
        try:
            out.put(("error", err, text))
        except Exception:  # an exception that does not pickle: its text still tells what happened
            out.put(("error", None, text))
        out.close()
        out.join_thread()  # the error reaches the parent before this process ends
    # no interpreter teardown: native libraries' threads complained ("terminate called ...") at exit. What
    # multiprocessing does at a child's exit still runs: it removes the child's temp folder (/tmp/pymp-*,
    # where the listener that hands tensors' file descriptors to the parent lives), which leaked before
    multiprocessing.util._exit_function()
    os._exit(code)


class BackgroundLoader:
    """An endless, resumable iterator of batches made by ``factory()`` (a picklable callable that
    returns a :class:`~vlakit.data.mixture.TrainLoader`) in a spawned process, up to ``prefetch``
    batches ahead.

    ``state_dict()`` is the position after the last batch returned; ``load_state_dict`` restarts the
    child from a position. An error in the child is raised here with its traceback; a child that
    dies (killed, out of memory) raises :class:`DatasetError`.
    """

    def __init__(self, factory: Callable[[], Any], *, prefetch: int) -> None:
        if prefetch < 1:
            raise ValueError(f"prefetch must be >= 1, got {prefetch}")
        self._factory = factory
        self.prefetch = int(prefetch)
        self._state: dict[str, Any] | None = None  #: where the next child starts (None: the beginning)
        self._clipped: dict[str, float] = {}
        self._proc: Any = None
        self._queue: Any = None
        self._stop: Any = None
        self._finalizer: Any = None

    # -- the child ---------------------------------------------------------------------------------
    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._queue = ctx.Queue(maxsize=self.prefetch)
        self._stop = ctx.Event()
        self._proc = ctx.Process(target=_child, args=(self._factory, self._state, self._queue, self._stop),
                                 daemon=True, name="vlakit-batches")
        self._proc.start()
        child_tmp: list[str] = []  # filled once the child reports its temp folder
        self._finalizer = weakref.finalize(self, _shutdown, self._proc, self._queue, self._stop, child_tmp)
        kind, state, tmp = self._receive()
        assert kind == "state"
        child_tmp.append(tmp)
        self._state = state

    def _receive(self) -> tuple[str, Any, Any]:
        while True:
            try:
                kind, payload, extra = self._queue.get(timeout=_POLL_S)
            except queue_mod.Empty:
                if not self._proc.is_alive():
                    code = self._proc.exitcode
                    self.close()
                    raise DatasetError(f"the background batch process died (exit code {code}) without an error "
                                       "message: killed, out of memory, or it could not start (it is spawned, so a "
                                       "script that trains needs `if __name__ == \"__main__\":`). Set "
                                       "data.prefetch: 0 to make batches in the training process") from None
                continue
            if kind == "error":
                self.close()
                if payload is not None:
                    raise payload from RuntimeError(f"in the background batch process:\n{extra}")
                raise DatasetError(f"the background batch process failed:\n{extra}")
            return kind, payload, extra

    def close(self) -> None:
        """Stop the child (a later ``next`` starts a new one at the current position)."""
        if self._finalizer is not None:
            self._finalizer()
        self._proc = self._queue = self._stop = self._finalizer = None

    # -- the loader interface ----------------------------------------------------------------------
    def __iter__(self) -> BackgroundLoader:
        return self

    def __next__(self) -> Any:
        if self._proc is None:
            self._start()
        _kind, (batch, state), clipped = self._receive()
        self._state, self._clipped = state, clipped
        return batch

    def state_dict(self) -> dict[str, Any]:
        if self._state is None:
            self._start()  # the child tells the starting position
        return copy.deepcopy(self._state)

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.close()
        self._state = copy.deepcopy(state)

    def clipped_fractions(self) -> dict[str, float]:
        """The child loader's clipped fractions as of the last batch returned."""
        return dict(self._clipped)


#: seconds a stopped child may take to finish its batch and exit before it is terminated
_STOP_TIMEOUT_S = 5.0


def _shutdown(proc: Any, queue: Any, stop: Any, child_tmp: list[str]) -> None:
    stop.set()
    try:  # unblock a child waiting to put a batch
        while True:
            queue.get_nowait()
    except Exception:
        pass
    proc.join(timeout=_STOP_TIMEOUT_S)
    if proc.is_alive():
        proc.terminate()
        proc.join(timeout=_STOP_TIMEOUT_S)
    queue.close()
    queue.cancel_join_thread()
    for folder in child_tmp:  # a child that exits cleanly removes it; a terminated one cannot
        shutil.rmtree(folder, ignore_errors=True)
