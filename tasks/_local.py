"""Shared helpers of the tasks whose data are published as files (JSON annotations + an image folder).

Every missing piece is one :class:`winoeval.errors.HubUnavailableError` (the project's "data not
available" error, exit code 1) that names the file to download and where to put it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence


def _unavailable(message: str):
    from winoeval.errors import HubUnavailableError

    return HubUnavailableError(message)


def config_error(message: str):
    from winoeval.config import ConfigError

    return ConfigError(message)


def need_data_dir(config: Any, task: str, how: str) -> Path:
    """``--data-dir`` as a Path, or the error saying what to download (these sets have no hub copy)."""
    data_dir = getattr(config, "data_dir", None)
    if not data_dir:
        raise _unavailable(f"{task} is read from a local copy of its published files: {how}; then pass "
                           f"--data-dir DIR (README, 'Tasks')")
    return Path(data_dir).expanduser()


def find_file(root: Path, names: Sequence[str], task: str, url: str, subdirs: Sequence[str] = ("",)) -> Path:
    """The first of ``names`` found in ``root`` or one of its ``subdirs``; else the error naming
    ``names[0]``, where it goes and where it comes from."""
    for sub in subdirs:
        for name in names:
            path = root / sub / name if sub else root / name
            if path.is_file():
                return path
    raise _unavailable(f"{task}: {root / names[0]} is missing; download {url} and put it at "
                       f"{root / names[0]} (--data-dir {root})")


def need_folder(root: Path, rel: str, task: str, how: str) -> Path:
    path = root / rel
    if not path.is_dir():
        raise _unavailable(f"{task}: the image folder {path} is missing; {how} (--data-dir {root})")
    return path


def read_json(path: Path, task: str) -> Any:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unavailable(f"{task}: cannot read {path} ({type(exc).__name__}: {exc}); download it again") from None


def read_jsonl(path: Path, task: str) -> list:
    rows = []
    try:
        with open(path, encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    rows.append(json.loads(line))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _unavailable(f"{task}: cannot read {path} (line {n}: {type(exc).__name__}: {exc}); download it "
                           f"again") from None
    return rows


def field(record: dict, key: str, where: str, task: str) -> Any:
    if not isinstance(record, dict) or key not in record:
        have = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
        raise _unavailable(f"{task}: {where} has no field {key!r} (it has {have}); is this the published file?")
    return record[key]


def open_one(root: Path, rel: str, name: str, crop: tuple[float, float, float, float] | None = None):
    """Decode ``root/rel`` (only from inside ``root``); ``.npy`` files are BGR arrays (EqBen's YouCook2
    frames) and become RGB images; ``crop`` = (x, y, w, h) as ARO's ``image.crop((x, y, x + w, y + h))``."""
    if str(rel).lower().endswith(".npy"):
        import numpy as np
        from PIL import Image

        from winoeval.localdata import BadImageError, confined_path, max_pixels

        target = confined_path(root, rel, name)  # the one confinement helper every task uses
        try:
            array = np.load(target, mmap_mode="r", allow_pickle=False)  # the shape first, pixels later
        except (OSError, ValueError) as exc:
            raise OSError(f"{name} is unreadable ({type(exc).__name__}: {exc})") from exc
        except Exception as exc:  # noqa: BLE001 - any other decoder failure is a bad example too
            raise BadImageError(f"{name} is unreadable ({type(exc).__name__}: {exc})") from None
        if array.ndim != 3 or array.shape[2] != 3:
            raise ValueError(f"{name}: expected an H×W×3 array, got shape {tuple(array.shape)}")
        limit = max_pixels()
        if limit and array.shape[0] * array.shape[1] > limit:
            raise BadImageError(f"{name} is larger than the pixel limit of {limit:,} ({array.shape[1]} × "
                                f"{array.shape[0]}); raise --max-pixels if the image is genuine")
        image = Image.fromarray(np.ascontiguousarray(array[:, :, ::-1]).astype("uint8"), "RGB")
    else:
        from winoeval.localdata import open_image

        image = open_image(str(rel), None, name, root=root)
    if crop is not None:
        x, y, w, h = crop
        image = image.crop((x, y, x + w, y + h))
    return image


def lazy_images(root: Path, rels: Sequence[str], names: Sequence[str], crop=None) -> Callable[[], list]:
    root = Path(root).resolve()  # a symlinked image folder is read where it points
    rels, names = list(rels), list(names)

    def images() -> list:
        return [open_one(root, rel, name, crop) for rel, name in zip(rels, names)]

    return images


def fingerprint(*paths: Path) -> str:
    """A content hash of the annotation files (what the examples are made of; keys the resume cache)."""
    import hashlib

    digest = hashlib.sha256()
    for path in paths:
        digest.update(Path(path).name.encode() + b"\0")
        digest.update(Path(path).read_bytes())
    return digest.hexdigest()[:16]


def parse_choice(argument: str | None, choices: dict[str, Any], task: str, example: str) -> list[str]:
    """``None``/``all`` → every key of ``choices``; ``a,b`` (``_``/``-`` and case ignored) → those keys."""
    if argument is None or argument.strip().lower() in ("", "all"):
        return list(choices)
    out = []
    for part in argument.split(","):
        key = part.strip().lower().replace("_", "-")
        if key not in choices:
            raise config_error(f"unknown {task} subset {part.strip()!r}; valid: {', '.join(choices)} "
                               f"(e.g. {example}), or none for all")
        if key not in out:
            out.append(key)
    return out
