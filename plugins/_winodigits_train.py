"""Training for the WinoDigits models (imported only by ``winoeval train winodigits-*``: torch at the top).

* :func:`train_sd`: a latent diffusion model in the Stable Diffusion pipeline format. Stage 1 trains an
  ``AutoencoderKL`` (4× down-sampling: 3 × 32 × 32 scenes ↔ 4 × 8 × 8 latents) on training scenes;
  stage 2 encodes a fixed pool of training scenes once (posterior mean × scaling factor, as the ``sd``
  plugin does) and trains a ``UNet2DConditionModel`` with cross-attention and a ``CLIPTextModel``
  from scratch, jointly, on ε-prediction with the SD scaled-linear DDPM schedule and caption dropout
  (the unconditional text is ``""``). Captions are re-drawn every time a scene is used (either word
  order, with or without a true "not R" clause: :func:`winoeval.tasks.winodigits.describe`).
  Every epoch: a resumable checkpoint (``checkpoint.safetensors`` + ``optim.pt``), the EMA weights
  exported as a diffusers folder (``pipeline/``) and the held-out per-tag scores on a fixed subset of
  the test examples (the learning curve, in ``history.json`` and the recipe).
* :func:`train_clip`: a tiny OpenCLIP model trained with the symmetric InfoNCE loss, in-batch
  negatives only, saved in open_clip's ``local-dir`` layout (``open_clip_config.json`` +
  ``open_clip_model.safetensors``).
"""

from __future__ import annotations

import json
import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from winoeval.training import start_mode
import torch.nn.functional as F

from winoeval.tasks import winodigits as wd

CONTEXT = 16  # text positions (captions are at most 13 tokens with start and end)
EVAL_TAG_EXAMPLES = 20  # held-out examples per tag in the learning-curve subset


# --- shared helpers ---------------------------------------------------------------------------
def to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (B, 32, 32, 3) → float32 (B, 3, 32, 32) in [−1, 1]."""
    return torch.from_numpy(images).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def save_state(path: Path, tensors: dict[str, torch.Tensor], meta: dict | None = None) -> None:
    from safetensors.torch import save_file

    from winoeval.storage import publish, temporary_path

    tmp = temporary_path(path)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(tmp),
              metadata={k: json.dumps(v) for k, v in (meta or {}).items()})
    publish(tmp, path)  # 0666 minus the umask (safetensors writes 0600)


def prefixed(prefix: str, module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in module.state_dict().items()}


def load_prefixed(module: torch.nn.Module, tensors: dict[str, torch.Tensor], prefix: str) -> None:
    n = len(prefix) + 1
    module.load_state_dict({k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")})


def save_optim(path: Path, optimizer, extra: dict) -> None:
    from winoeval.storage import publish, temporary_path

    tmp = temporary_path(path)
    torch.save({"optimizer": optimizer.state_dict(), **extra}, tmp)
    publish(tmp, path)


def cosine_lr(step: int, total: int, warmup: int, lr: float, floor: float = 0.05) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    p = min(1.0, (step - warmup) / max(1, total - warmup))
    return lr * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))


def n_params(*modules) -> int:
    return sum(p.numel() for m in modules for p in m.parameters())


def eval_examples(per_tag: int = EVAL_TAG_EXAMPLES, seed: int = wd.DEFAULT_SEED, grammar: int = 1) -> list[dict]:
    """The fixed learning-curve subset: the first ``per_tag`` examples of every tag. Grammar 1: the v1
    test examples (seed 0, as the shipped v1 recipes did); grammar 2: the **validation** generator
    seed :data:`winodigits.VALIDATION_SEED` of ``winodigits2`` (never the test items)."""
    if grammar == 2:
        return [wd.make_example2(i, wd.VALIDATION_SEED) for i in range(per_tag * len(wd.TAGS2))]
    return [wd.make_example(i, seed) for i in range(per_tag * len(wd.TAGS))]


def stream(grammar: int):
    """(training_scenes, describe, tags) of a caption grammar: 1 = ``winodigits``, 2 = ``winodigits2``
    (no held-out colour–digit pairing in any scene or caption; conjunction captions too)."""
    if grammar == 2:
        return wd.training_scenes2, wd.describe2, wd.TAGS2
    if grammar == 1:
        return wd.training_scenes, wd.describe, wd.TAGS
    raise ValueError(f"unknown grammar {grammar!r} (1 or 2)")


def _write_json(path: Path, obj: Any) -> None:
    from winoeval.storage import atomic_write

    atomic_write(path, json.dumps(obj, indent=1) + "\n")


# --- Stable-Diffusion-format model --------------------------------------------------------------
SD_ARCH = {
    "vae": dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(16, 32, 64),
                layers_per_block=1, down_block_types=("DownEncoderBlock2D",) * 3,
                up_block_types=("UpDecoderBlock2D",) * 3, sample_size=wd.SIZE, norm_num_groups=16),
    "unet": dict(sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
                 down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
                 cross_attention_dim=64, attention_head_dim=4, norm_num_groups=32),
    "text": dict(hidden_size=64, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                 max_position_embeddings=CONTEXT, projection_dim=64),
    "scheduler": dict(beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012,
                      num_train_timesteps=1000, prediction_type="epsilon", clip_sample=False, steps_offset=1),
}


def build_sd(seed: int):
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from winoeval.testing.models import make_clip_tokenizer

    tokenizer = make_clip_tokenizer(model_max_length=CONTEXT)
    torch.manual_seed(seed)
    vae = AutoencoderKL(**SD_ARCH["vae"])
    unet = UNet2DConditionModel(**SD_ARCH["unet"])
    text = CLIPTextModel(CLIPTextConfig(**SD_ARCH["text"], vocab_size=len(tokenizer),
                                        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                                        pad_token_id=tokenizer.pad_token_id))
    scheduler = DDPMScheduler(**SD_ARCH["scheduler"])
    return vae, unet, text, tokenizer, scheduler


def clip_text_encoder(folder: str | os.PathLike, tokenizer):
    """The text tower of a trained OpenCLIP model folder (``open_clip_config.json`` + safetensors) as a
    ``transformers.CLIPTextModel`` (same weights, exact GELU, causal mask, final LayerNorm on every
    token): the SD 2 arrangement, where the text encoder is a frozen contrastive text tower."""
    from safetensors.torch import load_file
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    cfg = json.loads((folder / "open_clip_config.json").read_text())["model_cfg"]["text_cfg"]
    sd = load_file(str(folder / "open_clip_model.safetensors"))
    width, layers = int(cfg["width"]), int(cfg["layers"])
    model = CLIPTextModel(CLIPTextConfig(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers, num_attention_heads=int(cfg["heads"]),
        max_position_embeddings=int(cfg["context_length"]), vocab_size=int(cfg["vocab_size"]), hidden_act="gelu",
        projection_dim=width, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id))
    new = {"text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
           "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
           "text_model.final_layer_norm.weight": sd["ln_final.weight"],
           "text_model.final_layer_norm.bias": sd["ln_final.bias"]}
    for i in range(layers):
        src, dst = f"transformer.resblocks.{i}.", f"text_model.encoder.layers.{i}."
        for name, w in zip("qkv", sd[src + "attn.in_proj_weight"].chunk(3)):
            new[dst + f"self_attn.{name}_proj.weight"] = w
        for name, b in zip("qkv", sd[src + "attn.in_proj_bias"].chunk(3)):
            new[dst + f"self_attn.{name}_proj.bias"] = b
        pairs = {"attn.out_proj": "self_attn.out_proj", "ln_1": "layer_norm1", "ln_2": "layer_norm2",
                 "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2"}
        for a, b in pairs.items():
            new[dst + b + ".weight"] = sd[src + a + ".weight"]
            new[dst + b + ".bias"] = sd[src + a + ".bias"]
    expected = set(model.state_dict())
    new = {k if k in expected else k.removeprefix("text_model."): v for k, v in new.items()}  # transformers 5 names
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in new.items()}, strict=False)
    missing = [k for k in missing if "position_ids" not in k]
    if missing or unexpected:
        raise ValueError(f"CLIP text tower conversion: missing {missing}, unexpected {unexpected}")
    return model


def tokenize(tokenizer, texts: list[str]) -> torch.Tensor:
    return tokenizer(list(texts), padding="max_length", max_length=CONTEXT, truncation=True,
                     return_tensors="pt").input_ids


def train_vae(vae, out: Path, *, steps: int, batch_size: int, lr: float, kl_weight: float, seed: int,
              progress: bool, log: Callable[[str], None], n_images: int = 20_000, grammar: int = 1) -> dict:
    """Stage 1 (resumable as a whole: skipped when ``vae_done.safetensors`` exists)."""
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    done = out / "vae_done.safetensors"
    if done.exists():
        tensors = load_file(str(done))
        load_prefixed(vae, tensors, "vae")
        return json.loads((out / "vae_history.json").read_text())
    rng = np.random.default_rng([seed, 11])
    images, _ = stream(grammar)[0](n_images, seed=seed + 101)
    opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.0)
    vae.train()
    started, losses = time.time(), []
    bar = tqdm(range(steps), desc="vae", disable=not progress, mininterval=5)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = cosine_lr(step, steps, 100, lr)
        x = to_tensor(images[rng.integers(0, len(images), batch_size)])
        posterior = vae.encode(x).latent_dist
        recon = vae.decode(posterior.sample()).sample
        rec = F.mse_loss(recon, x) + 0.5 * F.l1_loss(recon, x)
        kl = posterior.kl().mean() / x[0].numel()
        loss = rec + kl_weight * kl
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(rec.detach()))
        if step % 50 == 0:
            bar.set_postfix(rec=f"{np.mean(losses[-50:]):.4f}", kl=f"{float(kl.detach()):.3f}")
        if progress is False and step % 200 == 0:
            log(f"vae step {step}/{steps} rec {np.mean(losses[-200:]):.4f} kl {float(kl.detach()):.3f}")
    vae.eval()
    with torch.no_grad():
        x = to_tensor(images[:512])
        z = vae.encode(x).latent_dist.mean
        scale = float(1.0 / z.flatten().std())
        recon = vae.decode(z).sample
        val = float(F.mse_loss(recon, x))
        # held-out reconstruction: the validation scenes (held-out digit glyphs), pixels in [-1, 1]
        held = [s for ex in eval_examples(grammar=grammar)[:64] for s in ex["scenes"]]
        xh = to_tensor(np.stack([wd.render_array(s) for s in held]))
        val_held = float(F.mse_loss(vae.decode(vae.encode(xh).latent_dist.mean).sample, xh))
    vae.register_to_config(scaling_factor=scale)
    hist = {"steps": steps, "batch_size": batch_size, "lr": lr, "kl_weight": kl_weight,
            "seconds": round(time.time() - started, 1), "final_rec_loss": float(np.mean(losses[-100:])),
            "recon_mse_posterior_mean": val, "recon_mse_heldout_scenes": val_held, "scaling_factor": scale,
            "grammar": grammar,
            "rec_loss_every_100": [round(float(np.mean(losses[i:i + 100])), 5) for i in range(0, steps, 100)]}
    _write_json(out / "vae_history.json", hist)
    save_state(done, prefixed("vae", vae))
    log(f"vae done: {steps} steps in {hist['seconds']} s, recon mse {val:.4f} (held-out scenes {val_held:.4f}), "
        f"scaling factor {scale:.4f}")
    return hist


@torch.no_grad()
def encode_latents(vae, images: np.ndarray, batch: int = 256) -> torch.Tensor:
    out = []
    scale = float(vae.config.scaling_factor)
    for s in range(0, len(images), batch):
        out.append(vae.encode(to_tensor(images[s:s + batch])).latent_dist.mean * scale)
    return torch.cat(out)


def winoground_eval(vae, unet, text, tokenizer, scheduler, examples: list[dict], n_t: int = 10, seed: int = 0,
                    tags: tuple[str, ...] = wd.TAGS, scores: dict | None = None) -> dict:
    """Per-tag text / image / group scores of the pipeline (vae, unet, text, tokenizer, scheduler) on
    ``examples``, computed by winoeval's own scorer: the ``sd`` plugin's denoiser and
    :func:`winoeval.scoring.make_scorer` with N = ``n_t`` even timesteps, ``seed``, normalised scores
    (the WinoDigits default), so a learning-curve point is what ``winoeval run --model sd:<pipeline>
    --n-samples n_t --seed seed`` gives on the same examples. v2 examples also get ``tag/seen|unseen``.
    ``scores``, if given, receives each example's 2 × 2 score matrix by id."""
    from winoeval.config import ScorerConfig
    from winoeval.metrics import winoground_verdicts
    from winoeval.plugins.stable_diffusion import StableDiffusionDenoiser
    from winoeval.scoring import make_scorer

    model = StableDiffusionDenoiser(unet, vae, text, tokenizer, scheduler, source="training")
    scorer = make_scorer(model, ScorerConfig(n_samples=(n_t,), timesteps="even", seed=seed, normalize=True))
    items = [(k, ex["id"], [wd.render(sc) for sc in ex["scenes"]], list(ex["captions"]))
             for k, ex in enumerate(examples)]
    verdicts: dict[int, dict] = {}
    for k, result in scorer.score_stream(items):
        if isinstance(result, BaseException):
            raise result
        verdicts[k] = winoground_verdicts(result.scores.tolist())
        if scores is not None:
            scores[examples[k]["id"]] = result.scores.tolist()
    return summarise(examples, verdicts, tags)


def summarise(examples: list[dict], verdicts: dict[int, dict], tags: tuple[str, ...]) -> dict:
    """{tag | tag/split | "all": {"text", "image", "group", "n"}} from per-example verdicts."""
    keys = [[ex["tag"], "all"] + ([f"{ex['tag']}/{ex['split']}"] if "split" in ex else []) for ex in examples]
    out: dict[str, dict[str, float]] = {}
    for tag in [*tags, *[f"{t}/{sp}" for t in tags for sp in ("seen", "unseen")], "all"]:
        idx = [k for k in range(len(examples)) if tag in keys[k]]
        if idx:
            out[tag] = {m: sum(verdicts[k][m] for k in idx) / len(idx) for m in ("text", "image", "group")}
            out[tag]["n"] = len(idx)
    return out


def export_pipeline(path: Path, vae, unet, text, tokenizer, scheduler, dtype=torch.float32) -> Path:
    """Save a diffusers ``StableDiffusionPipeline`` folder (safetensors) that ``sd:<path>`` loads."""
    import copy

    from diffusers import StableDiffusionPipeline

    parts = [copy.deepcopy(m).to(dtype) for m in (vae, unet, text)]
    pipe = StableDiffusionPipeline(vae=parts[0], unet=parts[1], text_encoder=parts[2], tokenizer=tokenizer,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    tmp = path.with_name(path.name + ".tmp")
    pipe.save_pretrained(tmp, safe_serialization=True)
    if path.exists():
        import shutil

        shutil.rmtree(path)
    os.replace(tmp, path)
    return path


def train_sd(out: str | os.PathLike, *, epochs: int = 40, steps_per_epoch: int = 400, batch_size: int = 128,
             lr: float = 1e-3, ema_decay: float = 0.999, p_uncond: float = 0.1, pool: int = 40_000,
             vae_steps: int = 1500, vae_batch: int = 64, vae_lr: float = 1e-3, kl_weight: float = 1e-4,
             eval_every: int = 1, eval_n_t: int = 10, seed: int = 0, resume: bool = False, overwrite: bool = False,
             threads: int | None = None, progress: bool = True, command: str = "",
             log: Callable[[str], None] = print, frozen_text: str | None = None, grammar: int = 1,
             warmup: int = 500, vae_from: str | None = None, eval_per_tag: int = EVAL_TAG_EXAMPLES) -> dict:
    """Train the WinoDigits latent diffusion model in ``out`` (see the module docstring). With
    ``frozen_text`` (a trained OpenCLIP folder) the text encoder is that model's text tower, frozen.
    ``grammar`` 2 trains on the ``winodigits2`` stream (held-out pairings excluded) and draws the
    learning curve on its validation seed; ``vae_from`` reuses the finished VAE stage of another run
    (its ``vae_done.safetensors`` and ``vae_history.json`` are copied in)."""
    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, optim_path, hist_path = out / "checkpoint.safetensors", out / "optim.pt", out / "history.json"
    # a run is here once its VAE stage finished (winoeval.training's conventions: --resume or --overwrite)
    resume = start_mode(out, ["vae_done.safetensors"], resume=resume, overwrite=overwrite, log=log,
                        run_files=[ckpt.name, optim_path.name, hist_path.name, "vae_history.json",
                                   "recipe.json"]) == "resume"
    make_scenes, describe_fn, tags = stream(grammar)
    if vae_from and not (out / "vae_done.safetensors").exists():
        import shutil

        for name in ("vae_done.safetensors", "vae_history.json"):
            if not (Path(vae_from) / name).is_file():
                raise ValueError(f"--vae-from {vae_from}: no {name} there (a finished winodigits-sd VAE stage)")
            shutil.copy(Path(vae_from) / name, out / name)
    hparams = dict(grammar=grammar, warmup=warmup, vae_from=vae_from, eval_per_tag=eval_per_tag,
                   epochs=epochs, steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr,
                   ema_decay=ema_decay, p_uncond=p_uncond, pool=pool, vae_steps=vae_steps, vae_batch=vae_batch,
                   vae_lr=vae_lr, kl_weight=kl_weight, eval_every=eval_every, eval_n_t=eval_n_t, seed=seed,
                   text_encoder=f"frozen OpenCLIP text tower of {frozen_text}" if frozen_text else "joint")
    vae, unet, text, tokenizer, scheduler = build_sd(seed)
    if frozen_text:
        text = clip_text_encoder(frozen_text, tokenizer).requires_grad_(False)
    vae_hist = train_vae(vae, out, steps=vae_steps, batch_size=vae_batch, lr=vae_lr, kl_weight=kl_weight,
                         seed=seed, progress=progress, log=log, n_images=min(20_000, pool), grammar=grammar)
    vae.eval().requires_grad_(False)
    t0 = time.time()
    images, scenes = make_scenes(pool, seed=seed)
    latents = encode_latents(vae, images)
    del images
    evals = eval_examples(eval_per_tag, grammar=grammar) if eval_every else []
    log(f"encoded {pool} training scenes in {time.time() - t0:.0f} s "
        f"(latent std {float(latents.std()):.3f})")
    import copy

    ema_unet, ema_text = copy.deepcopy(unet), copy.deepcopy(text)
    ema_unet.eval().requires_grad_(False)
    ema_text.eval().requires_grad_(False)
    params = list(unet.parameters()) + ([] if frozen_text else list(text.parameters()))
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    history: list[dict] = []
    start_epoch = 0
    if resume and ckpt.exists():
        tensors = load_file(str(ckpt))
        for prefix, module in (("unet", unet), ("text", text), ("ema_unet", ema_unet), ("ema_text", ema_text)):
            load_prefixed(module, tensors, prefix)
        state = torch.load(optim_path, weights_only=True)
        opt.load_state_dict(state["optimizer"])
        history = json.loads(hist_path.read_text())["epochs"]
        start_epoch = len(history)
        log(f"resumed after epoch {start_epoch}")
    alphas = scheduler.alphas_cumprod.float()
    T = len(alphas)
    total = epochs * steps_per_epoch
    ema_pairs = [(ema_unet, unet), (ema_text, text)]
    started = time.time()
    for epoch in range(start_epoch, epochs):
        rng = np.random.default_rng([seed, 7, epoch])
        g = torch.Generator().manual_seed(int(rng.integers(2**62)))
        unet.train()
        text.train(not frozen_text)
        t_epoch, losses = time.time(), []
        bar = tqdm(range(steps_per_epoch), desc=f"sd epoch {epoch + 1}/{epochs}", disable=not progress,
                   mininterval=10)
        for i in bar:
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, lr)
            idx = rng.integers(0, pool, batch_size)
            captions = ["" if rng.random() < p_uncond else describe_fn(scenes[j], rng) for j in idx]
            z0 = latents[torch.from_numpy(idx)]
            t = torch.randint(0, T, (batch_size,), generator=g)
            eps = torch.randn(z0.shape, generator=g)
            ab = alphas[t].view(-1, 1, 1, 1)
            x_t = ab.sqrt() * z0 + (1 - ab).sqrt() * eps
            cond = text(tokenize(tokenizer, captions))[0]
            pred = unet(x_t, t, encoder_hidden_states=cond).sample
            loss = F.mse_loss(pred, eps)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            with torch.no_grad():
                d = min(ema_decay, (1 + step) / (10 + step))
                for ema, live in ema_pairs:
                    for pe, pl in zip(ema.parameters(), live.parameters()):
                        pe.lerp_(pl, 1 - d)
            losses.append(float(loss.detach()))
            if i % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-100:]):.4f}")
        entry: dict[str, Any] = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch,
                                 "loss": round(float(np.mean(losses)), 5),
                                 "seconds": round(time.time() - t_epoch, 1)}
        if eval_every and ((epoch + 1) % eval_every == 0 or epoch + 1 == epochs):
            te = time.time()
            entry["heldout"] = winoground_eval(vae, ema_unet, ema_text, tokenizer, scheduler, evals,
                                               n_t=eval_n_t, seed=seed, tags=tags)
            entry["eval_seconds"] = round(time.time() - te, 1)
        history.append(entry)
        tensors = {**prefixed("unet", unet), **prefixed("text", text), **prefixed("ema_unet", ema_unet),
                   **prefixed("ema_text", ema_text)}
        save_state(ckpt, tensors, {"epoch": epoch + 1})
        save_optim(optim_path, opt, {"epoch": epoch + 1})
        _write_json(hist_path, {"epochs": history})
        export_pipeline(out / "pipeline", vae, ema_unet, ema_text, tokenizer, scheduler)
        ho = entry.get("heldout", {})
        summary = " ".join(f"{k}={v['text']:.2f}/{v['group']:.2f}" for k, v in ho.items() if "/" not in k)
        log(f"epoch {epoch + 1}/{epochs} loss {entry['loss']:.4f} ({entry['seconds']:.0f} s) held-out text/group "
            f"{summary}")
        write_sd_recipe(out, hparams, vae_hist, history, command, n_params(vae), n_params(unet), n_params(text))
    log(f"done in {time.time() - started:.0f} s")
    return {"history": history, "vae": vae_hist}


DATA_TEXT = {
    1: ("random WinoDigits training scenes (winoeval.tasks.winodigits.training_scenes) from the 4,500 "
        "training digits of winoeval.tasks.mnist.mnist_split(); the 500 held-out digits never seen; "
        "captions re-drawn per use by winodigits.describe (either order, 50 % with a true 'not R')"),
    2: ("random WinoDigits-2 training scenes (winoeval.tasks.winodigits.training_scenes2) from the 4,500 training "
        "digits; no scene or caption holds a held-out colour-digit pairing (winodigits.HELD_OUT); captions re-drawn "
        "per use by winodigits.describe2 (20 % 'a C D and a C D' in either order, else relational in either "
        "order, 30 % of those with a true 'not R')"),
}


def curve_text(hparams: dict) -> str:
    per_tag = hparams.get("eval_per_tag", EVAL_TAG_EXAMPLES)
    if hparams.get("grammar", 1) == 2:
        return (f"first {per_tag} examples per tag of the winodigits2 VALIDATION set (generator seed "
                f"{wd.VALIDATION_SEED}; the test set is seed 0)")
    return f"first {per_tag} held-out test examples per tag (winodigits ids 0..{per_tag * 4 - 1})"


def write_sd_recipe(out: Path, hparams: dict, vae_hist: dict, history: list[dict], command: str,
                    vae_params: int, unet_params: int, text_params: int) -> None:
    import datetime

    prev = {}
    if (out / "recipe.json").exists():
        try:
            prev = json.loads((out / "recipe.json").read_text())
        except ValueError:
            prev = {}
    recipe = {
        "model": "winodigits-sd",
        "format": "diffusers StableDiffusionPipeline (vae, unet, text_encoder, tokenizer, scheduler)",
        "architecture": {k: {kk: list(vv) if isinstance(vv, tuple) else vv for kk, vv in v.items()}
                         for k, v in SD_ARCH.items()},
        "params": {"vae": vae_params, "unet": unet_params, "text_encoder": text_params},
        "tokenizer": f"CLIP BPE (open_clip's bpe_simple_vocab_16e6), model_max_length {CONTEXT}",
        "data": DATA_TEXT[hparams.get("grammar", 1)],
        "objective": "epsilon MSE, t uniform over 1000 scaled-linear DDPM steps, caption dropout p_uncond, "
                     f"text encoder: {hparams.get('text_encoder', 'joint')} (joint = trained from scratch together "
                     "with the U-Net), EMA weights shipped",
        "hyperparameters": hparams,
        "vae_training": vae_hist,
        "learning_curve_subset": curve_text(hparams) + ", N=eval_n_t even timesteps, EMA weights, "
                                 "winoeval's scorer (normalised)",
        "command": prev.get("command") or command,
        "epochs_done": len(history),
        "train_seconds": round(sum(h["seconds"] + h.get("eval_seconds", 0) for h in history)
                               + vae_hist.get("seconds", 0), 1),
        "torch": torch.__version__, "threads": torch.get_num_threads(), "machine": platform.machine(),
        "date": datetime.date.today().isoformat(),
        "history": history,
    }
    _write_json(out / "recipe.json", recipe)


# --- OpenCLIP model -----------------------------------------------------------------------------
CLIP_CFG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": wd.SIZE, "layers": 3, "width": 64, "patch_size": 4, "head_width": 16},
    "text_cfg": {"context_length": CONTEXT, "vocab_size": 49408, "width": 64, "heads": 4, "layers": 3},
}
CLIP_PREPROCESS = {"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5], "interpolation": "bicubic",
                   "resize_mode": "shortest"}
CLIP_ARCH = "winodigits-clip"


def build_clip(seed: int, out: Path):
    import logging

    import open_clip

    cfg_path = out / f"{CLIP_ARCH}.json"
    _write_json(cfg_path, CLIP_CFG)
    open_clip.add_model_config(cfg_path)
    torch.manual_seed(seed)
    logger = logging.getLogger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        model = open_clip.create_model(CLIP_ARCH, pretrained=None)
    finally:
        logger.setLevel(level)
    return model, open_clip.get_tokenizer(CLIP_ARCH)


def export_clip(path: Path, model, dtype=torch.float32) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    save_state(path / "open_clip_model.safetensors", {k: v.to(dtype) for k, v in model.state_dict().items()})
    _write_json(path / "open_clip_config.json", {"model_cfg": CLIP_CFG, "preprocess_cfg": CLIP_PREPROCESS})
    return path


@torch.no_grad()
def clip_eval(model, tokenizer, images: torch.Tensor, examples: list[dict], tags: tuple[str, ...] = wd.TAGS) -> dict:
    model.eval()
    img = F.normalize(model.encode_image(images), dim=-1)
    txt = F.normalize(model.encode_text(tokenizer([c for ex in examples for c in ex["captions"]])), dim=-1)
    from winoeval.metrics import winoground_verdicts

    # s[i, j] = s(C_j, I_i)
    verdicts = {k: winoground_verdicts((img[2 * k:2 * k + 2] @ txt[2 * k:2 * k + 2].T).tolist())
                for k in range(len(examples))}
    return summarise(examples, verdicts, tags)


def train_clip(out: str | os.PathLike, *, epochs: int = 30, steps_per_epoch: int = 200, batch_size: int = 256,
               lr: float = 1e-3, pool: int = 40_000, seed: int = 0, resume: bool = False, overwrite: bool = False,
               threads: int | None = None, progress: bool = True, command: str = "",
               log: Callable[[str], None] = print, grammar: int = 1, warmup: int = 200,
               eval_per_tag: int = EVAL_TAG_EXAMPLES) -> dict:
    """Train the tiny OpenCLIP model in ``out`` (InfoNCE, in-batch negatives only)."""
    import datetime

    from safetensors.torch import load_file
    from tqdm.auto import tqdm

    if threads:
        torch.set_num_threads(int(threads))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt, optim_path, hist_path = out / "checkpoint.safetensors", out / "optim.pt", out / "history.json"
    resume = start_mode(out, [ckpt.name, optim_path.name], resume=resume, overwrite=overwrite, log=log,
                        run_files=[hist_path.name, "recipe.json"]) == "resume"
    hparams = dict(grammar=grammar, warmup=warmup, eval_per_tag=eval_per_tag, epochs=epochs,
                   steps_per_epoch=steps_per_epoch, batch_size=batch_size, lr=lr, pool=pool, seed=seed)
    make_scenes, describe_fn, tags = stream(grammar)
    model, tokenizer = build_clip(seed, out)
    images, scenes = make_scenes(pool, seed=seed + 202)
    evals = eval_examples(eval_per_tag, grammar=grammar)
    eval_images = to_tensor(np.stack([wd.render_array(s) for ex in evals for s in ex["scenes"]]))
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.1)
    history: list[dict] = []
    start_epoch = 0
    if resume and ckpt.exists():
        model.load_state_dict(load_file(str(ckpt)))
        opt.load_state_dict(torch.load(optim_path, weights_only=True)["optimizer"])
        history = json.loads(hist_path.read_text())["epochs"]
        start_epoch = len(history)
        log(f"resumed after epoch {start_epoch}")
    total = epochs * steps_per_epoch
    for epoch in range(start_epoch, epochs):
        rng = np.random.default_rng([seed, 9, epoch])
        model.train()
        t_epoch, losses = time.time(), []
        bar = tqdm(range(steps_per_epoch), desc=f"clip epoch {epoch + 1}/{epochs}", disable=not progress,
                   mininterval=10)
        for i in bar:
            step = epoch * steps_per_epoch + i
            for group in opt.param_groups:
                group["lr"] = cosine_lr(step, total, warmup, lr)
            idx = rng.choice(pool, batch_size, replace=False)
            x = to_tensor(images[idx])
            tokens = tokenizer([describe_fn(scenes[j], rng) for j in idx])
            img_f, txt_f, scale = model(x, tokens)[:3]
            logits = scale * img_f @ txt_f.T
            labels = torch.arange(batch_size)
            loss = 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(float(loss.detach()))
            if i % 20 == 0:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}")
        entry = {"epoch": epoch + 1, "step": (epoch + 1) * steps_per_epoch, "loss": round(float(np.mean(losses)), 5),
                 "seconds": round(time.time() - t_epoch, 1),
                 "heldout": clip_eval(model, tokenizer, eval_images, evals, tags)}
        history.append(entry)
        save_state(ckpt, model.state_dict(), {"epoch": epoch + 1})
        save_optim(optim_path, opt, {"epoch": epoch + 1})
        _write_json(hist_path, {"epochs": history})
        export_clip(out / "model", model)
        summary = " ".join(f"{k}={v['text']:.2f}/{v['group']:.2f}" for k, v in entry["heldout"].items() if "/" not in k)
        log(f"clip epoch {epoch + 1}/{epochs} loss {entry['loss']:.4f} ({entry['seconds']:.0f} s) "
            f"held-out text/group {summary}")
        prev = json.loads((out / "recipe.json").read_text()) if (out / "recipe.json").exists() else {}
        _write_json(out / "recipe.json", {
            "model": "winodigits-clip", "format": "open_clip local-dir (open_clip_config.json + safetensors)",
            "model_cfg": CLIP_CFG, "preprocess_cfg": CLIP_PREPROCESS, "params": n_params(model),
            "data": DATA_TEXT[grammar], "learning_curve_subset": curve_text(hparams),
            "objective": "symmetric InfoNCE, learned temperature, in-batch negatives only (no hard negatives)",
            "hyperparameters": hparams, "command": prev.get("command") or command, "epochs_done": len(history),
            "train_seconds": round(sum(h["seconds"] for h in history), 1), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "date": datetime.date.today().isoformat(), "history": history})
    return {"history": history}


# --- shipping -----------------------------------------------------------------------------------
SHIP_LIMIT_BYTES = 20 * 1024 * 1024  # all shipped WinoDigits weights together


def float16_copy(src: Path, dest: Path) -> int:
    """Copy a model folder, with every floating-point tensor of its safetensors files cast to float16.
    Returns the bytes of weights written."""
    import shutil

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from winoeval.storage import publish, temporary_path

    src, dest = Path(src), Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    shutil.copytree(src, dest)
    total = 0
    for f in sorted(dest.rglob("*.safetensors")):
        with safe_open(str(f), "pt") as handle:
            meta = handle.metadata() or {}
        tensors = {k: (v.half() if v.is_floating_point() else v).contiguous() for k, v in load_file(str(f)).items()}
        tmp = temporary_path(f)
        save_file(tensors, str(tmp), metadata=meta or {"format": "pt"})
        publish(tmp, f)  # shipped files are 0644, not safetensors' 0600
        total += f.stat().st_size
    return total


def ship(sd_run: Path, clip_run: Path, sd_dest: Path, clip_dest: Path) -> dict:
    """Copy the EMA pipeline of an SD run and the model of a CLIP run into the package, in float16,
    with their recipes; refuses (and removes them again) when together they exceed 20 MB."""
    import shutil

    sizes = {"winodigits-sd": float16_copy(Path(sd_run) / "pipeline", sd_dest),
             "winodigits-clip": float16_copy(Path(clip_run) / "model", clip_dest)}
    shutil.copy(Path(sd_run) / "recipe.json", Path(sd_dest) / "recipe.json")
    shutil.copy(Path(clip_run) / "recipe.json", Path(clip_dest) / "recipe.json")
    if sum(sizes.values()) > SHIP_LIMIT_BYTES:
        shutil.rmtree(sd_dest)
        shutil.rmtree(clip_dest)
        raise ValueError(f"shipped weights would be {sum(sizes.values()) / 2**20:.1f} MB > 20 MB: {sizes}")
    return sizes
