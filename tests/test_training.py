"""``winoeval train`` conventions (winoeval.training) on the MNIST U-Net trainer with a tiny net: extending a
finished run, refusing to train over a checkpoint, resuming into an empty folder, nothing left to do, and
ordinary file permissions."""

from __future__ import annotations

import json
import os
import stat

import click
import pytest

torch = pytest.importorskip("torch")

from winoeval.plugins import _mnist_net as mn  # noqa: E402

TINY = dict(channels=(8, 16, 16), time_dim=16, groups=4)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_train(out, epochs, logs=None, **kw):
    gen = torch.Generator().manual_seed(0)
    x = torch.rand((24, 1, 28, 28), generator=gen) * 2 - 1
    y = torch.arange(24) % 10
    cfg = mn.TrainConfig(epochs=epochs, batch_size=kw.pop("batch_size", 8), lr=kw.pop("lr", 1e-3), seed=5)
    log = (logs.append if logs is not None else (lambda m: None))
    return mn.train(x, y, out, cfg, net_config=mn.NetConfig(**TINY), progress=False, log=log, **kw)


def test_extending_a_finished_run_follows_the_longer_schedule(tmp_path):
    straight = tiny_train(tmp_path / "straight", epochs=2, batch_size=4)
    tiny_train(tmp_path / "ext", epochs=1, batch_size=4)
    logs: list[str] = []
    extended = tiny_train(tmp_path / "ext", epochs=2, resume=True, logs=logs, batch_size=4)  # crashed with "Tried to step" before
    assert any("extending the run to 2 epochs" in m for m in logs)
    s, e = straight["history"], extended["history"]
    assert [h["epoch"] for h in e] == [1, 2] and extended["epochs_trained"] == 1
    # epoch 2 runs at exactly the straight 2-epoch run's rates (6 steps per epoch, one cycle over 12)
    assert (e[1]["lr_start"], e[1]["lr_end"]) == (s[1]["lr_start"], s[1]["lr_end"])
    # the rates are the closed-form one cycle: epoch 1 of the extended run followed the 1-epoch cycle
    # (6 steps), the straight run's epoch 2 starts at step 6 of the 12-step cycle
    assert e[0]["lr_end"] == pytest.approx(one_cycle_lr(total=6, steps=6), rel=1e-12)
    assert s[1]["lr_start"] == pytest.approx(one_cycle_lr(total=12, steps=6), rel=1e-12)
    assert e[0]["lr_end"] != pytest.approx(s[0]["lr_end"])  # so the weights differ: documented


def one_cycle_lr(total: int, steps: int, max_lr: float = 1e-3) -> float:
    opt = torch.optim.Adam([torch.zeros(1, requires_grad=True)], lr=max_lr)
    ref = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=max_lr, total_steps=total)
    for _ in range(steps):
        opt.step()
        ref.step()
    return ref.get_last_lr()[0]

def test_refuses_a_folder_with_a_checkpoint_unless_resume_or_overwrite(tmp_path):
    tiny_train(tmp_path / "run", epochs=1)
    with pytest.raises(click.UsageError, match="--resume.*--overwrite"):
        tiny_train(tmp_path / "run", epochs=1)
    logs: list[str] = []
    again = tiny_train(tmp_path / "run", epochs=1, overwrite=True, logs=logs)
    assert any("--overwrite" in m and "starting fresh" in m for m in logs)
    assert [h["epoch"] for h in again["history"]] == [1]
    assert [h["epoch"] for h in json.loads((tmp_path / "run" / "history.json").read_text())] == [1]
    with pytest.raises(click.UsageError, match="contradict"):
        tiny_train(tmp_path / "run", epochs=2, overwrite=True, resume=True)


def test_resume_into_an_empty_folder_starts_fresh(tmp_path):
    logs: list[str] = []
    result = tiny_train(tmp_path / "new", epochs=1, resume=True, logs=logs)
    assert any("no checkpoint" in m and "starting fresh" in m for m in logs)
    assert result["epochs_trained"] == 1 and (tmp_path / "new" / "checkpoint.safetensors").exists()


def test_nothing_left_to_do_says_so_and_changes_nothing(tmp_path):
    tiny_train(tmp_path / "run", epochs=2)
    files = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "run").iterdir()}
    logs: list[str] = []
    for epochs in (2, 1):
        result = tiny_train(tmp_path / "run", epochs=epochs, resume=True, logs=logs)
        assert result["epochs_trained"] == 0 and len(result["history"]) == 2
    assert sum("nothing to do" in m and "2 finished epoch(s)" in m for m in logs) == 2
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in (tmp_path / "run").iterdir()} == files


def test_resume_with_other_settings_is_refused(tmp_path):
    tiny_train(tmp_path / "run", epochs=1)
    with pytest.raises(click.UsageError, match=r"--lr 0\.001 → 0\.002"):
        tiny_train(tmp_path / "run", epochs=2, resume=True, lr=2e-3)


def test_weight_files_have_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        tiny_train(tmp_path / "run", epochs=1)
    finally:
        os.umask(old)
    for name in ("checkpoint.safetensors", "mnist_unet.safetensors", "optim.pt", "history.json"):
        assert stat.S_IMODE((tmp_path / "run" / name).stat().st_mode) == 0o644, name


def test_cli_refuses_with_exit_status_2(tmp_path):
    from click.testing import CliRunner

    from winoeval.plugins.mnist_unet import train_command

    out = tmp_path / "run"
    out.mkdir()
    for name in ("checkpoint.safetensors", "optim.pt"):
        (out / name).write_bytes(b"")
    result = CliRunner().invoke(train_command, ["--out", str(out), "--epochs", "1", "--no-progress"])
    assert result.exit_code == 2, result.output
    assert "already holds a training checkpoint" in result.output and "--overwrite" in result.output
