"""Built-in toy tasks, made in memory: no download, no data directory.

* ``colors``: classify solid 16×16 colour images among the eight palette names (10 per colour).
* ``toy-winoground``: Winoground-format pairs "A left of B" / "B left of A" over two-colour images;
  the swapped captions use the same words, so only composition tells them apart.

Images carry Gaussian pixel noise of standard deviation sigma (``colors:sigma=0.3``,
``toy-winoground:sigma=3``; default 0.2 on the [−1, 1] scale), seeded by the example id. The older
spelling without ``sigma=`` (``toy-winoground:3``) means the same: the argument is never a number of examples.
"""

from __future__ import annotations

import itertools
import zlib

from winoeval.api import Example, TaskData
from winoeval.hookspecs import hookimpl
from winoeval.plugins.analytic import PALETTE, mean_image

DEFAULT_SIGMA = 0.2


def render(text: str, sigma: float, key: str):
    """The mean image of ``text`` plus seeded Gaussian noise, as a PIL image."""
    import numpy as np
    from PIL import Image

    mean = np.asarray(mean_image(text), dtype=np.float64) / 127.5 - 1
    rng = np.random.default_rng(zlib.crc32(key.encode()))
    x = mean + sigma * rng.standard_normal(mean.shape)
    pixels = np.clip(np.rint((x + 1) * 127.5), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "RGB")


def _sigma(argument: str | None, name: str) -> float:
    from winoeval.plugins.analytic import parse_sigma

    return parse_sigma(argument, DEFAULT_SIGMA, name)


def load_colors(argument, config) -> TaskData:
    sigma, names, per_class = _sigma(argument, "colors"), list(PALETTE), 10

    def examples():
        for n, (i, label) in enumerate(itertools.product(range(per_class), range(len(names)))):
            eid = f"colors-{n:03d}"
            yield Example(eid, [render(names[label], sigma, eid)], names, label)

    return TaskData("colors", "classification", examples, per_class * len(names), texts=names, class_names=names)


def load_toy_winoground(argument, config) -> TaskData:
    sigma = _sigma(argument, "toy-winoground")
    colours = ["red", "green", "blue", "yellow"]
    pairs = list(itertools.combinations(colours, 2))

    def examples():
        for n, (a, b) in enumerate(pairs):
            eid = str(n)
            captions = [f"{a} left of {b}", f"{b} left of {a}"]
            images = [render(c, sigma, f"{eid}-{k}") for k, c in enumerate(captions)]
            tag = "Object" if n % 2 == 0 else "Relation"
            yield Example(eid, images, captions, meta={"collapsed_tag": tag, "num_main_preds": 1,
                                                       "secondary_tag": []})

    return TaskData("toy-winoground", "winoground", examples, len(pairs),
                    defaults={"normalize": True}, breakdowns=["collapsed_tag", "num_main_preds", "secondary_tag"])


@hookimpl
def winoeval_register_tasks(register):
    register("colors", load_colors, takes_argument=True, options={},
             description="toy: solid colours among 8 names, 80 images; colors:sigma=S: pixel noise sigma [0.2]")
    register("toy-winoground", load_toy_winoground, takes_argument=True, options={},
             description="toy Winoground: 'A left of B' vs 'B left of A', 6 pairs; toy-winoground:sigma=S: "
                         "pixel noise sigma [0.2]")
