"""``winoeval sample``: the grid (padding, whole-factor upscaling, title) and the progress bar."""

from __future__ import annotations

import pytest

from winoeval.sampling import CELL, MARGIN, PAD, accepts, make_grid, upscale_factor


def test_upscale_factor():
    assert upscale_factor(28, 28) == 4  # 112 px
    assert upscale_factor(32, 16) == 3  # 96 px on the longest side
    assert upscale_factor(500, 300) == 1  # never shrinks


def test_grid_layout_and_pixels():
    Image = pytest.importorskip("PIL.Image")
    ims = []
    for k in range(3):
        im = Image.new("L", (28, 28), 0)
        im.putpixel((0, 0), 50 * (k + 1))  # one marked pixel per image, top left
        ims.append(im)
    grid = make_grid(ims, "mnist-unet · label '3'", cols=2)
    k = 4
    width = 2 * MARGIN + 2 * 28 * k + PAD
    assert grid.mode == "RGB" and grid.size[0] >= width
    # the title band is above the first row: find the first row by the marked pixel of image 0
    left = (grid.size[0] - (2 * 28 * k + PAD)) // 2
    top = next(y for y in range(grid.size[1]) if grid.getpixel((left, y)) == (50, 50, 50))
    assert top > MARGIN  # a title above
    for n, (col, row) in enumerate([(0, 0), (1, 0), (0, 1)]):
        x, y = left + col * (28 * k + PAD), top + row * (28 * k + PAD)
        v = 50 * (n + 1)
        # the marked pixel is a k×k block (nearest-neighbour upscaling), its neighbour black
        assert all(grid.getpixel((x + i, y + j)) == (v, v, v) for i in range(k) for j in range(k))
        assert grid.getpixel((x + k, y)) == (0, 0, 0)
    # padding between cells has the background colour, not image pixels
    assert grid.getpixel((left + 28 * k + PAD // 2, top + 5)) != (0, 0, 0)
    assert grid.size[1] == top + 2 * 28 * k + PAD + MARGIN
    assert CELL == 112


def test_accepts():
    def old(label, n, guidance=2.0, seed=0):
        return []

    def new(label, n, guidance=2.0, seed=0, progress=False):
        return []

    assert not accepts(old, "progress") and accepts(new, "progress") and accepts(lambda **kw: kw, "progress")


@pytest.mark.slow
def test_mnist_sample_progress_bar(tmp_path, capsys, one_torch_thread):
    torch = pytest.importorskip("torch")
    from winoeval.plugins import _mnist_net as mn
    from winoeval.plugins.mnist_unet import MnistDenoiser

    torch.manual_seed(0)
    net = mn.ContextUNet(mn.NetConfig(channels=(8, 16, 16), time_dim=16, groups=4))
    path = tmp_path / "w.safetensors"
    mn.save_weights(path, net.state_dict(), net.config)
    model = MnistDenoiser(path)
    quiet = model.sample("3", n=1, guidance=1.0, seed=0)
    assert "sampling" not in capsys.readouterr().err
    shown = model.sample("3", n=1, guidance=1.0, seed=0, progress=True)
    err = capsys.readouterr().err
    assert "sampling 1 × '3'" in err and "/400 [" in err  # T = 400 denoising steps
    assert quiet[0].tobytes() == shown[0].tobytes()  # the bar changes nothing


@pytest.mark.slow
def test_sample_checks_label_and_output_before_sampling(tmp_path, run_winoeval):
    res = run_winoeval(["sample", "-m", "mnist-unet", "--label", "3", "--out", str(tmp_path / "nodir" / "x.png")])
    assert res.returncode == 2 and "does not exist" in res.stderr
    res = run_winoeval(["sample", "-m", "mnist-unet", "--label", "cat", "--out", str(tmp_path / "x.png")])
    assert res.returncode == 2 and "--label 'cat'" in res.stderr and "Traceback" not in res.stderr
