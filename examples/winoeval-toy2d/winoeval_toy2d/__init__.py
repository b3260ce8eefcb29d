"""winoeval-toy2d: a diffusion model on 2-D points turned into a classifier by winoeval's scorer."""

__version__ = "0.1.0"
