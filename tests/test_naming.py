"""Names that say what they mean: the toy models' and tasks' argument is a noise sigma, written
``NAME:sigma=S`` (the older bare ``NAME:S`` still works and means the same); ``winoeval info`` shows a
plugin's full description."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from winoeval.cli import cli
from winoeval.config import ConfigError
from winoeval.plugins.analytic import load, parse_sigma
from winoeval.tasks.synthetic import load_colors, load_toy_winoground


@pytest.mark.parametrize("argument, expected", [(None, 0.2), ("", 0.2), ("sigma=3", 3.0), ("3", 3.0),
                                                ("sigma=0.25", 0.25), (" SIGMA = 1.5 ", 1.5)])
def test_sigma_is_read_from_both_spellings(argument, expected):
    assert parse_sigma(argument, 0.2, "toy-winoground") == expected


@pytest.mark.parametrize("argument, message", [("n=3", "the only argument is the noise sigma"),
                                               ("sigma=", "needs a number"), ("abc", "written colors:sigma=S"),
                                               ("sigma=-1", "finite number >= 0"), ("inf", "finite number >= 0")])
def test_other_arguments_are_refused_naming_the_spelling(argument, message):
    with pytest.raises(ConfigError, match=message):
        parse_sigma(argument, 0.2, "colors")


def test_the_two_spellings_give_the_same_model_and_data():
    assert load("sigma=10", None).sigma == load("10", None).sigma == 10.0
    a = next(iter(load_toy_winoground("sigma=3", None).examples()))
    b = next(iter(load_toy_winoground("3", None).examples()))
    assert np.array_equal(np.asarray(a.images[0]), np.asarray(b.images[0]))
    c = next(iter(load_colors("sigma=0", None).examples()))
    assert not np.asarray(c.images[0]).any()  # sigma 0: the exact palette colour (black first)


def test_info_shows_the_full_description_and_options():
    res = CliRunner().invoke(cli, ["info", "winodigits-sd"])
    assert res.exit_code == 0, res.output
    assert "--model-arg attention=" in res.output and "--model-arg text_batch_size=" in res.output
    # the plugin module's documentation, not only the one-line description
    assert "About (from winoeval.plugins.winodigits)" in res.output
    assert "frozen while the U-Net trained" in res.output
    res = CliRunner().invoke(cli, ["info", "analytic"])
    assert "analytic:sigma=S" in res.output and "Bayes-optimal denoiser" in res.output
    res = CliRunner().invoke(cli, ["info", "toy-winoground"])
    assert "toy-winoground:sigma=S" in res.output and "never a number of examples" in res.output
