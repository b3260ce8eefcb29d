"""Load one split of a dataset from a local folder (``--data-dir``), never touching the network.

Three layouts are recognised, in this order:

1. a ``save_to_disk`` folder — a ``Dataset`` (``state.json``) or a ``DatasetDict``
   (``dataset_dict.json``: the requested split is taken, or the only one there is);
2. a hub snapshot — what ``huggingface-cli download REPO --repo-type dataset --local-dir DIR``
   leaves: a ``README.md`` dataset card whose YAML header names the data files; read with
   ``datasets.load_dataset(DIR, split=split)``, which follows the card's ``configs``;
3. a folder of parquet files (``*.parquet``, ``data/test-*.parquet``,
   ``plain_text/test-00000-of-00001.parquet``, ``default/test/0000.parquet``, … searched
   recursively, hidden folders skipped). When file or folder names name several splits
   (``train``, ``test``, ``validation``, …) only the requested split's files are read; when none
   is named, all files form the one split. A single ``.parquet`` file may be given directly too.

Hub-library offline mode is switched on while loading (and restored afterwards), so a local read
can never stall on network retries. Every failure is one :class:`winoeval.errors.HubUnavailableError`
that names the path, the split and the layouts expected.
"""

from __future__ import annotations

import os
import re
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .errors import HubUnavailableError

KNOWN_SPLITS = frozenset({"train", "test", "validation", "valid", "val", "dev", "eval"})
_DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".tsv", ".arrow", ".txt", ".png", ".jpg", ".jpeg", ".zip")
_OFFLINE_FLAGS = (("huggingface_hub.constants", "HF_HUB_OFFLINE"), ("datasets.config", "HF_HUB_OFFLINE"),
                  ("datasets.config", "HF_DATASETS_OFFLINE"))


def expected_layouts(split: str) -> str:
    return (f"expected a `save_to_disk` folder (a Dataset, or a DatasetDict with split {split!r}), a folder of "
            f"parquet files (e.g. data/{split}-*.parquet) or a hub snapshot folder (`huggingface-cli download "
            f"REPO --repo-type dataset --local-dir DIR`)")


def _error(path: Path | str, split: str, what: str, reason: str) -> HubUnavailableError:
    return HubUnavailableError(f"could not load {what} (split {split!r}) from the local folder {str(path)!r}: "
                               f"{reason}; {expected_layouts(split)}")


@contextmanager
def offline() -> Iterator[None]:
    """Hub libraries in offline mode for the duration (environment and already-imported modules)."""
    saved_env = {k: os.environ.get(k) for k in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE")}
    saved_attrs = []
    for module_name, attr in _OFFLINE_FLAGS:
        module = sys.modules.get(module_name)
        if module is not None and hasattr(module, attr):
            saved_attrs.append((module, attr, getattr(module, attr)))
            setattr(module, attr, True)
    os.environ["HF_HUB_OFFLINE"] = os.environ["HF_DATASETS_OFFLINE"] = "1"
    try:
        yield
    finally:
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        for module, attr, value in saved_attrs:
            setattr(module, attr, value)


def _visible_files(root: Path) -> list[Path]:
    """Files under ``root``, skipping hidden files and folders (``.cache``, ``.git``, …), sorted."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out += [Path(dirpath) / f for f in sorted(filenames) if not f.startswith(".")]
    return out


def _tokens(rel: Path) -> set[str]:
    return set(re.split(r"[^a-z0-9]+", rel.as_posix().lower())) - {""}


def split_files(root: Path, files: list[Path], split: str) -> tuple[list[Path], set[str]]:
    """(files of ``split``, split names seen). Names are read from file and folder names."""
    wanted = split.lower()
    names = KNOWN_SPLITS | {wanted}
    tagged = {f: _tokens(f.relative_to(root)) & names for f in files}
    seen = set().union(*tagged.values()) if tagged else set()
    if not seen:
        return list(files), seen  # no split named anywhere: all files are the one split
    return [f for f, s in tagged.items() if wanted in s], seen


def _select_split(obj, split: str, path: Path, what: str):
    """A DatasetDict → its ``split`` (or its only split); a Dataset → itself."""
    import datasets

    if isinstance(obj, datasets.DatasetDict):
        if split in obj:
            return obj[split]
        if len(obj) == 1:
            (only,) = obj.keys()
            warnings.warn(f"{what}: {str(path)!r} has no split {split!r}; using its only split {only!r}",
                          stacklevel=3)
            return obj[only]
        raise _error(path, split, what, f"it has no split {split!r} (it has {', '.join(sorted(obj))})")
    saved_split = getattr(obj, "split", None)
    if saved_split is not None and str(saved_split) != split:
        warnings.warn(f"{what}: {str(path)!r} holds split {str(saved_split)!r}, not {split!r}; using it anyway",
                      stacklevel=3)
    return obj


def _is_saved(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _has_card(path: Path) -> bool:
    card = path / "README.md"
    if not card.is_file():
        return False
    with open(card, encoding="utf-8", errors="replace") as fh:
        return fh.readline().strip() == "---"


def _load_parquet(root: Path, files: list[Path], split: str, what: str):
    import datasets

    chosen, seen = split_files(root, files, split)
    if not chosen:
        raise _error(root, split, what, f"its parquet files are for split(s) {', '.join(sorted(seen))}, "
                                        f"none for {split!r}")
    try:
        return datasets.load_dataset("parquet", data_files={split: [str(f) for f in chosen]}, split=split)
    except Exception as exc:
        raise _error(root, split, what, f"reading its parquet files failed ({type(exc).__name__}: {exc})") from None


def _load_snapshot(path: Path, split: str, what: str, parquet: list[Path]):
    import datasets

    try:
        return datasets.load_dataset(str(path), split=split)
    except Exception as exc:  # noqa: BLE001 - the hub library raises many types
        message = f"{type(exc).__name__}: {exc}"
        unknown_split = "Unknown split" in str(exc)
    if parquet and not unknown_split:
        return _load_parquet(path, parquet, split, what)  # a card we cannot follow; the files may still do
    raise _error(path, split, what, f"`datasets.load_dataset` on it failed ({message})")


def load_local_dataset(path: str | os.PathLike, split: str, what: str | None = None):
    """One split of a local dataset as a ``datasets.Dataset`` (see the module docstring for layouts)."""
    what = what or "the dataset"
    root = Path(path).expanduser()
    if not root.exists():
        raise _error(root, split, what, "the path does not exist")
    import datasets

    with offline():
        if root.is_file():
            if root.suffix == ".parquet":
                return _load_parquet(root.parent, [root], split, what)
            if root.name in ("dataset_dict.json", "state.json", "dataset_info.json", "README.md"):
                root = root.parent  # pointed at a marker file: use its folder
            else:
                raise _error(root, split, what, "it is a file, not a folder or a .parquet file")
        if _is_saved(root):
            try:
                loaded = datasets.load_from_disk(str(root))
            except Exception as exc:
                raise _error(root, split, what, f"it looks like a `save_to_disk` folder but loading it failed "
                                                f"({type(exc).__name__}: {exc})") from None
            return _select_split(loaded, split, root, what)
        files = _visible_files(root)
        parquet = [f for f in files if f.suffix == ".parquet"]
        if _has_card(root):
            return _load_snapshot(root, split, what, parquet)
        if parquet:
            return _load_parquet(root, parquet, split, what)
        if any(f.suffix.lower() in _DATA_SUFFIXES for f in files):
            return _load_snapshot(root, split, what, [])
        reason = "the folder is empty" if not files else "no dataset files were recognised in it"
        raise _error(root, split, what, reason)


def data_fingerprint(ds, data_dir: str | os.PathLike | None) -> str | None:
    """What a task records as ``TaskData.fingerprint`` for a dataset it loaded.

    From ``--data-dir``: None, because the runner already records the folder's content
    (``task.fingerprint.data_dir``, sha256 of every file's bytes), and the ``datasets`` library's own
    ``_fingerprint`` of a parquet or snapshot folder depends on the files' modification times: a
    byte-identical rewrite (``cp``, ``rsync`` without ``-t``) would change the run key and recompute
    everything. From the hub: the library's fingerprint of the cached download."""
    if data_dir:
        return None
    return getattr(ds, "_fingerprint", None)


def undecoded(ds, columns):
    """``ds`` with the given image columns left as stored bytes/paths (no decoding while iterating).

    Returns ``(dataset, features)`` where ``features[column]`` is the column's original
    ``datasets.Image`` feature (or None when the column is not an Image column); pass it to
    :func:`open_image`. Cheap: only the feature metadata changes, nothing is rewritten.
    """
    import datasets

    originals = {}
    for column in columns:
        feature = ds.features.get(column)
        if isinstance(feature, datasets.Image):
            originals[column] = feature
            if feature.decode:
                ds = ds.cast_column(column, datasets.Image(mode=feature.mode, decode=False))
        else:
            originals[column] = None
    return ds, originals


def confined_path(root: str | os.PathLike, path: str | os.PathLike, name: str = "file") -> Path:
    """``path`` (as a dataset row names it) read inside ``root`` (``--data-dir``): a relative path
    resolves against ``root``, not the working directory; an absolute path, ``..`` or a symbolic link
    that leads outside ``root`` is refused (``ValueError`` naming ``name``). Every task reads local
    image files through this one helper (via :func:`open_image`), so a dataset file cannot make
    winoeval read, or ``compare --html`` embed, ``/home/you/...``."""
    base = Path(root).expanduser().resolve()
    target = (base / os.path.expanduser(str(path))).resolve()
    if target != base and base not in target.parents:
        raise ValueError(f"{name} points outside --data-dir ({str(path)!r}); image paths in local data "
                         f"must lie inside {str(base)!r}")
    return target


def _inside(root: str | os.PathLike, value: dict, name: str) -> dict:
    """A stored image given by ``path`` only is read from inside ``root`` (see :func:`confined_path`)."""
    if value.get("bytes") or not value.get("path"):
        return value
    return {**value, "path": str(confined_path(root, value["path"], name))}


DEFAULT_MAX_PIXELS = 89_478_485  # PIL's own default (Image.MAX_IMAGE_PIXELS), about 9459 × 9459
MAX_PIXELS_ENV = "WINOEVAL_MAX_PIXELS"  # set by `winoeval run --max-pixels N`


def max_pixels() -> int | None:
    """The largest image (width × height) :func:`open_image` decodes: ``$WINOEVAL_MAX_PIXELS`` (``0``: no
    limit), else PIL's default. Larger images are refused before their pixels are decoded."""
    value = os.environ.get(MAX_PIXELS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_PIXELS
    try:
        limit = int(value)
    except ValueError:
        limit = -1
    if limit < 0:
        from .config import ConfigError

        raise ConfigError(f"{MAX_PIXELS_ENV}={value!r}: expected a whole number of pixels (0 = no limit)")
    return limit or None


class BadImageError(ValueError):
    """An image that cannot be decoded (any decoder failure, or over the pixel limit); names the image."""


def open_image(value, feature=None, name: str = "image", root: str | os.PathLike | None = None):
    """Decode one stored image (``{"bytes", "path"}`` dict, a path, or a PIL image) to a PIL image in its
    own mode (each model converts it as its reference implementation does: SD resizes before converting
    palette and RGBA images to RGB).

    With ``root`` (the ``--data-dir``), an image stored as a path is only read from inside that folder
    (:func:`confined_path`). Images over :func:`max_pixels` are refused before decoding. Missing or
    unreadable images raise ``OSError`` / ``ValueError`` (:class:`BadImageError` for every decoder
    failure: ``RuntimeError``, ``MemoryError``, PIL's ``DecompressionBombError``, …) whose message names
    ``name``; the runner turns them into a :class:`winoeval.runner.BadExampleError` naming the example,
    or a counted skip with ``--skip-bad``.
    """
    if value is None:
        raise ValueError(f"{name} is missing")
    if hasattr(value, "convert"):  # already a PIL image
        return value
    if isinstance(value, (str, os.PathLike)):
        value = {"bytes": None, "path": str(value)}
    if not isinstance(value, dict) or (not value.get("bytes") and not value.get("path")):
        raise ValueError(f"{name} is missing (no bytes and no path)")
    if root is not None:
        value = _inside(root, value, name)
    limit = max_pixels()
    import datasets
    from PIL import Image

    decoder = datasets.Image(mode=getattr(feature, "mode", None))
    saved = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            # PIL only warns between MAX_IMAGE_PIXELS and twice that: make the limit exact
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = limit
            image = decoder.decode_example(value)
            image.load()  # decode now, inside this guard: a truncated file fails here, naming the image
        return image
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise BadImageError(f"{name} is larger than the pixel limit of {limit:,} ({_describe(exc)}); raise "
                            f"--max-pixels if the image is genuine") from None
    except OSError as exc:  # PIL.UnidentifiedImageError, FileNotFoundError, truncated files
        raise OSError(f"{name} is unreadable ({_describe(exc)})") from exc
    except (ValueError, SyntaxError) as exc:
        raise ValueError(f"{name} is unreadable ({_describe(exc)})") from exc
    except Exception as exc:  # noqa: BLE001 - decoders raise RuntimeError, MemoryError, struct.error, …
        raise BadImageError(f"{name} is unreadable ({_describe(exc)})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved


def _describe(exc: BaseException) -> str:
    text = re.sub(r"\s*<_io\.BytesIO object at 0x[0-9a-fA-F]+>", " (in-memory bytes)", str(exc))
    return f"{type(exc).__name__}: {text}"
