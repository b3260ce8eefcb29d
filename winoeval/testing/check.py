"""A conformance checker for model and task plugins: does a plugin keep the contract of CONTRIBUTING.md?

``check_model`` and ``check_task`` return a list of failures, one line each, ``"RULE: what is wrong —
fix: what to do"``; an empty list means the plugin passes. Use them in a plugin's own tests::

    from winoeval.testing import check_model, check_task

    def test_my_plugin_keeps_the_contract():
        assert check_task("my-task") == []
        assert check_model("my-model", task="my-task") == []

``winoeval check-plugin NAME`` runs the same checks from the command line. A model is checked on the
images and texts of the first examples of a task (the model must be able to read them): the one given,
else the only task that the model's own plugin registers.

Nothing heavy is imported at module level.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Iterable

import click

from ..records import resolve_images

MODEL_RULES = {
    "load": "the loader returns a model",
    "kind": "`kind` is 'denoiser' or 'matcher'",
    "protocol": "the kind's attributes and methods exist",
    "alphas_cumprod": "a 1-D float tensor in (0, 1], strictly decreasing, at least 2 steps (flow: sigmas, "
                      "strictly increasing)",
    "objective": "`objective`, when set, is 'epsilon', 'v_prediction' or 'flow'",
    "encode_images": "(B, C, H, W) finite float tensor, B = number of images",
    "encode_texts": "first dimension = number of texts, finite",
    "unconditional": "encode_texts(['']) works (the unconditional condition of normalisation)",
    "predict_noise": "ε̂ of x_t's shape, finite, on the model's device, for t = 0 and t = T − 1",
    "dtype_device": "inputs in the model's dtype/device (as the scorer sends them) are accepted",
    "deterministic": "the same inputs give the same outputs (encode_*, predict_noise, similarity)",
    "batch_independent": "an item's output does not depend on what else is in the batch",
    "similarity": "(n_images, n_texts) finite tensor",
    "embeddings": "a matcher with encode_images/encode_texts: their dot products equal similarity",
}

TASK_RULES = {
    "load": "the loader returns a winoeval.api.TaskData",
    "metric": "`metric` is 'winoground', 'classification' or 'choice'",
    "examples": "`examples` is a zero-argument callable yielding winoeval.api.Example",
    "size": "`size` equals the number of examples",
    "ids": "ids are unique strings",
    "stable": "two iterations give the same ids in the same order and the same images",
    "images": "`images` is a non-empty list, or a zero-argument callable returning one",
    "texts": "`texts` is a non-empty list of non-empty strings ('' is the unconditional text)",
    "winoground": "a winoground example has exactly 2 images, 2 texts and label None",
    "label": "a classification label is an int indexing texts; texts equal TaskData.texts",
    "choice": "a choice example has one image, at least 2 texts of its own and a label indexing them",
    "class_names": "one class name per shared text",
    "meta": "`meta` is a JSON-serialisable dict",
    "defaults": "`defaults` are scorer settings (ScorerConfig fields or normalize)",
    "breakdowns": "`breakdowns` are strings",
}


class _Failures(list):
    def add(self, rule: str, problem: str, fix: str) -> None:
        self.append(f"{rule}: {problem} — fix: {fix}")


def _config(*, model: str = "-", task: str = "-"):
    from winoeval.config import RunConfig

    return RunConfig(model=model, task=task, device="cpu")


def load_model(name: str, config: Any = None):
    """The model that ``--model NAME`` would run (on the CPU unless ``config`` says otherwise)."""
    from winoeval import registry

    entry, argument = registry.resolve("model", name)
    return entry.loader(argument, config if config is not None else _config(model=name))


def load_task(name: str, config: Any = None):
    """The TaskData that ``--task NAME`` would run."""
    from winoeval import registry

    entry, argument = registry.resolve("task", name)
    return entry.loader(argument, config if config is not None else _config(task=name))


def _image_key(image: Any) -> Any:
    """Something equal for equal images (PIL pixels, arrays, or plain values)."""
    if hasattr(image, "tobytes") and hasattr(image, "mode") and hasattr(image, "size"):
        return ("PIL", image.mode, image.size, image.tobytes())
    try:
        import numpy as np

        array = np.asarray(image)
        if array.dtype != object:
            return ("array", array.shape, str(array.dtype), array.tobytes())
    except Exception:  # not array-like: compare the value itself
        pass
    return ("value", repr(image))


def _close(a, b) -> bool:
    """Equal up to float kernel differences (batch composition may pick other kernels)."""
    import torch

    half = a.dtype in (torch.float16, torch.bfloat16) or b.dtype in (torch.float16, torch.bfloat16)
    a, b = a.detach().double().cpu(), b.detach().double().cpu()
    if a.shape != b.shape:
        return False
    scale = 1.0 + float(max(a.abs().max(), b.abs().max())) if a.numel() else 1.0
    tol = 1e-2 if half else 1e-4
    return bool(((a - b).abs() <= tol * scale).all())


def _is_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor)


def _finite(x) -> bool:
    import torch

    return bool(torch.isfinite(x.detach().float()).all())


def _inputs(task: Any, n_examples: int) -> tuple[list, list[str], list[tuple[int, int]]]:
    """Images and texts of the first examples, and where each example's images start/end."""
    images, texts, spans = [], [], []
    for example in task.examples():
        start = len(images)
        images += resolve_images(example)
        spans.append((start, len(images)))
        texts += [t for t in example.texts if t not in texts]
        if len(spans) >= n_examples:
            break
    return images, texts, spans


def check_model(model: Any, task: Any = None, *, config: Any = None, n_examples: int = 3) -> list[str]:
    """Check a model (an object, or a registered name) against the Denoiser/Matcher contract.

    ``task`` (a TaskData or a registered task name) supplies images and texts the model can read: the
    first ``n_examples`` examples. Returns one line per failure; ``[]`` means the model passes."""
    failures = _Failures()
    name = model if isinstance(model, str) else type(model).__name__
    if isinstance(model, str):
        try:
            model = load_model(model, config)
        except Exception as exc:
            failures.add("load", f"loading model {name!r} raised {type(exc).__name__}: {exc}",
                         "make the loader return the model (heavy imports inside it), or fix the name/options")
            return failures
    if model is None:
        failures.add("load", f"the loader of {name!r} returned None", "return a Denoiser or a Matcher object")
        return failures
    if isinstance(task, str):
        task = load_task(task, config)
    kind = getattr(model, "kind", None)
    if kind not in ("denoiser", "matcher"):
        failures.add("kind", f"{name} has kind {kind!r}", "set the class attribute kind = 'denoiser' or 'matcher'")
        return failures
    objective = getattr(model, "objective", None) or "epsilon"
    if kind == "denoiser" and objective not in ("epsilon", "v_prediction", "flow"):
        failures.add("objective", f"{name} has objective {objective!r}",
                     "set objective = 'epsilon' (default), 'v_prediction' or 'flow' (see winoeval.scoring.objectives)")
        return failures
    grid_name = "sigmas" if objective == "flow" else "alphas_cumprod"
    needed = ([grid_name, "device", "dtype", "encode_images", "encode_texts", "predict_noise"]
              if kind == "denoiser" else ["similarity"])
    missing = [a for a in needed if not hasattr(model, a)]
    missing += [a for a in ("encode_images", "encode_texts", "predict_noise", "similarity")
                if a in needed and a not in missing and not callable(getattr(model, a))]
    if missing:
        failures.add("protocol", f"{kind} {name} lacks {', '.join(missing)}",
                     f"implement them as winoeval.api.{kind.capitalize()} describes")
        return failures
    if task is None:
        failures.add("load", "no task to take example images and texts from",
                     "pass task= (a task whose images this model reads), or --task on the command line")
        return failures
    images, texts, spans = _inputs(task, n_examples)
    import torch

    with torch.inference_mode():
        if kind == "denoiser":
            _check_denoiser(model, name, images, texts, spans, failures)
        else:
            _check_matcher(model, name, images, texts, spans, failures)
    return failures


def _call(failures: _Failures, rule: str, what: str, fix: str, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except Exception as exc:
        failures.add(rule, f"{what} raised {type(exc).__name__}: {exc}", fix)
        return None


def _check_alphas(model, failures: _Failures) -> int | None:
    import torch

    if getattr(model, "objective", None) == "flow":
        return _check_sigmas(model, failures)
    abar = model.alphas_cumprod
    fix = "set alphas_cumprod = torch.cumprod(1 - betas, 0), a (T,) float tensor (the scheduler's)"
    if not _is_tensor(abar) or abar.dim() != 1 or not abar.is_floating_point() or len(abar) < 2:
        failures.add("alphas_cumprod", f"got {type(abar).__name__} "
                     f"{tuple(abar.shape) if _is_tensor(abar) else ''}, not a 1-D float tensor of length ≥ 2", fix)
        return None
    a = abar.detach().double().cpu()
    if not bool(((a > 0) & (a <= 1)).all()):
        failures.add("alphas_cumprod", f"values outside (0, 1]: min {float(a.min()):.3g}, max {float(a.max()):.3g}",
                     fix)
    if not bool((a[1:] < a[:-1]).all()):
        k = int(torch.nonzero(a[1:] >= a[:-1])[0])
        failures.add("alphas_cumprod", f"not strictly decreasing (step {k}: {float(a[k]):.6g} → {float(a[k + 1]):.6g})",
                     "alphas_cumprod[t] must fall with t (more noise at larger t); index it by the training timestep")
    return len(a)


def _check_sigmas(model, failures: _Failures) -> int | None:
    import torch

    sig = model.sigmas
    fix = ("set sigmas to the (T,) σ grid of the training timesteps, shift applied "
           "(winoeval.scoring.objectives.flow_sigmas)")
    if not _is_tensor(sig) or sig.dim() != 1 or not sig.is_floating_point() or len(sig) < 2:
        failures.add("alphas_cumprod", f"sigmas: got {type(sig).__name__}, not a 1-D float tensor of length ≥ 2", fix)
        return None
    s = sig.detach().double().cpu()
    if not bool(((s > 0) & (s <= 1)).all()):
        failures.add("alphas_cumprod", f"sigmas outside (0, 1]: min {float(s.min()):.3g}, "
                                       f"max {float(s.max()):.3g}", fix)
    if not bool((s[1:] > s[:-1]).all()):
        k = int(torch.nonzero(s[1:] <= s[:-1])[0])
        failures.add("alphas_cumprod", f"sigmas not strictly increasing (step {k})",
                     "sigmas[t] must rise with t (more noise at larger t); index it by the training timestep")
    return len(s)


def _noised(model, z0, t, eps):
    """x_t as the scorer builds it for the model's objective."""
    from winoeval.scoring.objectives import noise_grid, noised_and_target, objective_of

    objective = objective_of(model)
    return noised_and_target(objective, noise_grid(model, objective), z0, t, eps)[0]


def _check_denoiser(model, name, images, texts, spans, failures: _Failures) -> None:
    import torch

    T = _check_alphas(model, failures)
    latents = _call(failures, "encode_images", f"encode_images({len(images)} images)",
                    "make encode_images(list of the task's images) return a (B, C, H, W) tensor",
                    lambda: model.encode_images(list(images)))
    if latents is not None:
        if not _is_tensor(latents) or latents.dim() != 4 or latents.shape[0] != len(images) \
                or not latents.is_floating_point():
            shape = tuple(latents.shape) if _is_tensor(latents) else type(latents).__name__
            failures.add("encode_images", f"returned {shape} for {len(images)} images",
                         "return clean latents z0 as a float tensor of shape (len(images), C, H, W)")
            latents = None
        elif not _finite(latents):
            failures.add("encode_images", "returned NaN or inf", "return finite latents")
            latents = None
    conds = _call(failures, "encode_texts", f"encode_texts({len(texts)} texts)",
                  "make encode_texts(list of str) return a tensor whose first dimension indexes the texts",
                  lambda: model.encode_texts(list(texts)))
    if conds is not None and (not _is_tensor(conds) or conds.shape[0] != len(texts)):
        shape = tuple(conds.shape) if _is_tensor(conds) else type(conds).__name__
        failures.add("encode_texts", f"returned {shape} for {len(texts)} texts",
                     "return a tensor of shape (len(texts), ...), one row per text")
        conds = None
    uncond = _call(failures, "unconditional", "encode_texts([''])",
                   "accept '' as the unconditional (null) condition, e.g. a null class or the empty prompt",
                   lambda: model.encode_texts([""]))
    if uncond is not None and conds is not None and (not _is_tensor(uncond) or uncond.shape[1:] != conds.shape[1:]):
        failures.add("unconditional", f"encode_texts(['']) has shape {tuple(getattr(uncond, 'shape', ()))}, the "
                     f"texts {tuple(conds.shape[1:])} per row", "give '' a condition of the same shape as the others")
    # determinism and batch independence of the encoders
    if latents is not None:
        again = _call(failures, "deterministic", "a second encode_images", "make encode_images deterministic",
                      lambda: model.encode_images(list(images)))
        if again is not None and not torch.equal(again, latents):
            failures.add("deterministic", "encode_images gave different latents for the same images",
                         "call .eval() (no dropout), and use the latent mean (not a sample) or a fixed generator")
        start, stop = spans[-1]
        alone = _call(failures, "batch_independent", "encode_images of one example's images", "see the rule",
                      lambda: model.encode_images(list(images[start:stop])))
        if alone is not None and not _close(alone, latents[start:stop]):
            failures.add("batch_independent", "an image's latent changes when other images share the batch",
                         "encode each image on its own terms (no batch statistics, no padding to the batch); the "
                         "scorer batches images of several examples")
    if conds is not None:
        again = _call(failures, "deterministic", "a second encode_texts", "make encode_texts deterministic",
                      lambda: model.encode_texts(list(texts)))
        if again is not None and not torch.equal(again, conds):
            failures.add("deterministic", "encode_texts gave different conditions for the same texts",
                         "call .eval() on the text encoder (no dropout)")
        alone = _call(failures, "batch_independent", "encode_texts of one text", "see the rule",
                      lambda: model.encode_texts([texts[-1]]))
        if alone is not None and not _close(alone[0], conds[-1]):
            failures.add("batch_independent",
                         f"the condition of {texts[-1]!r} changes with the other texts in the call",
                         "pad to a fixed length (or per text), not to the longest text of the call; the scorer "
                         "encodes texts of several examples at once and caches each text's row")
    if latents is None or conds is None or T is None:
        return
    device, dtype = getattr(model, "device", None), getattr(model, "dtype", None)
    if not isinstance(device, torch.device) or not isinstance(dtype, torch.dtype):
        failures.add("dtype_device", f"device {device!r} / dtype {dtype!r}",
                     "set model.device to a torch.device and model.dtype to a torch.dtype")
        return
    # what the scorer sends: x_t built in float32 on the CPU, then cast to the model's dtype and device
    n = min(len(images), 2)
    k = torch.arange(n) % len(texts)
    z0 = latents[:n].float().cpu()
    gen = torch.Generator().manual_seed(0)
    eps = torch.randn(z0.shape, generator=gen)
    for t_value in (0, T - 1):
        t = torch.full((n,), t_value, dtype=torch.long)
        x_t = _noised(model, z0, t, eps).to(device=device, dtype=dtype)
        cond = conds[k].to(device)
        pred = _call(failures, "predict_noise", f"predict_noise at t = {t_value}",
                     "accept x_t (B, C, H, W) in model.dtype on model.device, t (B,) long, cond (B, ...)",
                     lambda: model.predict_noise(x_t, t.to(device), cond))
        if pred is None:
            return
        if not _is_tensor(pred) or tuple(pred.shape) != tuple(x_t.shape):
            failures.add("predict_noise", f"returned {tuple(getattr(pred, 'shape', ()))} for x_t {tuple(x_t.shape)}",
                         "return ε̂ with exactly x_t's shape")
            return
        if not _finite(pred):
            failures.add("predict_noise", f"NaN or inf at t = {t_value}",
                         "keep ε̂ finite at every timestep (e.g. compute the schedule in float32)")
        if pred.device.type != device.type:
            failures.add("dtype_device", f"predict_noise returned a tensor on {pred.device}, the model says {device}",
                         "return ε̂ on model.device (the scorer computes the loss there)")
        again = model.predict_noise(x_t, t.to(device), cond)
        if not torch.equal(again, pred):
            failures.add("deterministic", f"predict_noise gave different ε̂ for the same inputs (t = {t_value})",
                         "call .eval() (no dropout) and draw no random numbers inside predict_noise")
        if n > 1:
            single = model.predict_noise(x_t[:1], t[:1].to(device), cond[:1])
            if not _close(single[0], pred[0]):
                failures.add("batch_independent", "ε̂ of an item changes with the rest of the batch",
                             "no batch statistics in predict_noise (eval-mode norms only); the scorer batches "
                             "(image, text, t) items of several examples")
    uncond = model.encode_texts([""]) if not any(f.startswith("unconditional") for f in failures) else None
    if uncond is not None:
        t = torch.full((1,), T // 2, dtype=torch.long)
        x_t = _noised(model, z0[:1], t, eps[:1]).to(device=device, dtype=dtype)
        pred = _call(failures, "unconditional", "predict_noise with the condition of ''",
                     "make predict_noise accept the condition encode_texts(['']) returns",
                     lambda: model.predict_noise(x_t, t.to(device), uncond.to(device)))
        if pred is not None and (not _is_tensor(pred) or not _finite(pred)):
            failures.add("unconditional", "predict_noise with '' gave NaN/inf or no tensor",
                         "return a finite ε̂ for the unconditional condition")


def _check_matcher(model, name, images, texts, spans, failures: _Failures) -> None:
    import torch

    sims = _call(failures, "similarity", f"similarity({len(images)} images, {len(texts)} texts)",
                 "make similarity(list of the task's images, list of str) return a (n_images, n_texts) tensor",
                 lambda: model.similarity(list(images), list(texts)))
    if sims is None:
        return
    if not _is_tensor(sims) or tuple(sims.shape) != (len(images), len(texts)):
        failures.add("similarity", f"returned {tuple(getattr(sims, 'shape', ())) or type(sims).__name__} for "
                     f"{len(images)} images × {len(texts)} texts", "return a tensor of shape (len(images), len(texts))")
        return
    if not _finite(sims):
        failures.add("similarity", "NaN or inf", "return finite similarities")
    again = model.similarity(list(images), list(texts))
    if not torch.equal(again, sims):
        failures.add("deterministic", "similarity gave different scores for the same inputs",
                     "call .eval() (no dropout)")
    if callable(getattr(model, "encode_images", None)) and callable(getattr(model, "encode_texts", None)):
        product = _call(failures, "embeddings", "encode_images(...) @ encode_texts(...).T",
                        "return (n, D) embedding tensors from both encoders",
                        lambda: model.encode_images(list(images)) @ model.encode_texts(list(texts)).T)
        if product is not None and not _close(product, sims):
            failures.add("embeddings", "encode_images(...) @ encode_texts(...).T differs from similarity(...)",
                         "normalise the embeddings and fold any logit scale into the encoders, or drop the "
                         "encoders: the scorer uses their product instead of similarity when both exist")
    start, stop = spans[-1]
    part = model.similarity(list(images[start:stop]), list(texts[-1:]))
    if not _close(part, sims[start:stop, -1:]):
        failures.add("batch_independent", "an (image, text) similarity changes with the other images/texts of the call",
                     "score every pair on its own terms (no softmax over the call's texts, no batch statistics); "
                     "the scorer calls similarity with images and texts of several examples")


def check_task(task: Any, *, config: Any = None, n_pixels: int = 3) -> list[str]:
    """Check a task (a TaskData, or a registered name) against the TaskData/Example contract.

    Every example is iterated twice (ids, texts, labels, meta); the images of the first ``n_pixels``
    are decoded both times and compared. Returns one line per failure; ``[]`` means the task passes."""
    from winoeval.api import TaskData

    failures = _Failures()
    name = task if isinstance(task, str) else getattr(task, "name", type(task).__name__)
    if isinstance(task, str):
        try:
            task = load_task(task, config)
        except Exception as exc:
            failures.add("load", f"loading task {name!r} raised {type(exc).__name__}: {exc}",
                         "make the loader return a TaskData (or fix the name/options/--data-dir)")
            return failures
    if not isinstance(task, TaskData):
        failures.add("load", f"the loader of {name!r} returned {type(task).__name__}",
                     "return winoeval.api.TaskData(name, metric, examples, size, ...)")
        return failures
    if task.metric not in ("winoground", "classification", "choice"):
        failures.add("metric", f"metric {task.metric!r}", "use 'winoground', 'classification' or 'choice'")
        return failures
    if not callable(task.examples):
        failures.add("examples", f"examples is a {type(task.examples).__name__}",
                     "pass a zero-argument function that yields Example objects (a generator function)")
        return failures
    _check_defaults(task, failures)
    if not all(isinstance(b, str) for b in task.breakdowns):
        failures.add("breakdowns", f"breakdowns {task.breakdowns!r}", "list meta keys as strings")
    if task.metric == "classification" and task.texts is not None and task.class_names is not None \
            and len(task.class_names) != len(task.texts):
        failures.add("class_names", f"{len(task.class_names)} class names for {len(task.texts)} texts",
                     "give one class name per shared text, in the same order")

    first = _walk(task, failures, n_pixels)
    if first is None:
        return failures
    second = _walk(task, _Failures(), n_pixels)
    if second is None or [i for i, _ in first] != [i for i, _ in second]:
        failures.add("stable", "a second iteration gave other ids or another order",
                     "derive examples from fixed data in a fixed order (no unseeded shuffling); the noise of an "
                     "example is derived from (seed, id)")
    elif [k for _, k in first] != [k for _, k in second]:
        bad = next(i for (i, a), (_, b) in zip(first, second) if a != b)
        failures.add("stable", f"example {bad!r} has other images on a second iteration",
                     "make images depend only on the example (seed any randomness by the id)")
    ids = [i for i, _ in first]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        failures.add("ids", f"id {dup!r} occurs {ids.count(dup)} times", "give every example its own id")
    if len(ids) != task.size:
        failures.add("size", f"size is {task.size} but examples() yields {len(ids)}",
                     "set size to the number of examples examples() yields")
    return failures


def _check_defaults(task, failures: _Failures) -> None:
    import dataclasses

    from winoeval.config import ScorerConfig

    fields = {f.name for f in dataclasses.fields(ScorerConfig)}
    unknown = [k for k in task.defaults if k not in fields]
    if unknown:
        failures.add("defaults", f"unknown scorer setting(s) {', '.join(map(repr, unknown))}",
                     f"use ScorerConfig fields: {', '.join(sorted(fields))}")
        return
    try:
        ScorerConfig(**{k: v for k, v in task.defaults.items() if k != "normalize"})
    except Exception as exc:
        failures.add("defaults", str(exc), "give preset values the CLI flags would accept")


def _walk(task, failures: _Failures, n_pixels: int) -> list[tuple[str, Any]] | None:
    """(id, key) per example, checking each example's shape; key = image content for the first n_pixels."""
    from winoeval.api import Example

    out = []
    try:
        for position, example in enumerate(task.examples()):
            if not isinstance(example, Example):
                failures.add("examples", f"item {position} is a {type(example).__name__}",
                             "yield winoeval.api.Example(id, images, texts, label, meta)")
                return None
            eid = example.id
            if not isinstance(eid, str) or not eid:
                failures.add("ids", f"example {position} has id {eid!r}", "use a non-empty str id, stable across runs")
            key = None
            images = example.images
            if not (callable(images) or isinstance(images, (list, tuple))):
                failures.add("images", f"example {eid!r}: images is a {type(images).__name__}",
                             "give a list of images, or a zero-argument callable returning one")
            elif position < n_pixels or not callable(images):
                try:
                    resolved = resolve_images(example)
                except Exception as exc:
                    failures.add("images", f"example {eid!r}: reading its images raised {type(exc).__name__}: {exc}",
                                 "make the images readable (or let a bad one raise OSError/ValueError: the runner "
                                 "names the example)")
                    resolved = None
                if resolved is not None:
                    if not resolved:
                        failures.add("images", f"example {eid!r} has no images", "give at least one image")
                    if task.metric == "choice" and len(resolved) != 1:
                        failures.add("choice", f"example {eid!r} has {len(resolved)} images", "give exactly 1 image")
                    if task.metric == "winoground" and len(resolved) != 2:
                        failures.add("winoground", f"example {eid!r} has {len(resolved)} images",
                                     "give exactly 2 images; image i matches text i")
                    if position < n_pixels:
                        key = [_image_key(im) for im in resolved]
            _check_example_texts(task, example, failures)
            try:
                json.dumps(example.meta, allow_nan=False)
                if not isinstance(example.meta, dict):
                    raise TypeError(f"meta is a {type(example.meta).__name__}")
            except (TypeError, ValueError) as exc:
                failures.add("meta", f"example {eid!r}: {exc}",
                             "keep meta a dict of JSON values (str, int, float, bool, None, lists, dicts)")
            out.append((eid, key))
    except Exception as exc:
        failures.add("examples", f"iterating the examples raised {type(exc).__name__}: {exc}",
                     "make examples() yield every example without raising")
        return None
    return out


def _check_example_texts(task, example, failures: _Failures) -> None:
    eid, texts, label = example.id, example.texts, example.label
    if not isinstance(texts, (list, tuple)) or not texts or not all(isinstance(t, str) and t.strip() for t in texts):
        failures.add("texts", f"example {eid!r} has texts {texts!r}",
                     "give a non-empty list of non-empty strings ('' is reserved for the unconditional text)")
        return
    if task.metric == "winoground":
        if len(texts) != 2:
            failures.add("winoground", f"example {eid!r} has {len(texts)} texts", "give exactly 2 texts")
        if label is not None:
            failures.add("winoground", f"example {eid!r} has label {label!r}",
                         "leave label None: image i matches text i")
        return
    if task.metric == "choice" and len(texts) < 2:
        failures.add("choice", f"example {eid!r} has {len(texts)} text", "give the true text and at least one other")
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(texts):
        failures.add("label", f"example {eid!r} has label {label!r} for {len(texts)} texts",
                     "give the index of the true text in texts (an int)")
    if task.texts is not None and list(texts) != list(task.texts):
        failures.add("label", f"example {eid!r} has texts other than TaskData.texts",
                     "give every example the shared candidate texts, in the same order")


def iter_rules() -> Iterable[tuple[str, str, str]]:
    """(kind, rule, what it checks) for every rule, for documentation."""
    for rule, what in MODEL_RULES.items():
        yield "model", rule, what
    for rule, what in TASK_RULES.items():
        yield "task", rule, what


def _check_declared(entry: Any, given: dict, flag: str) -> None:
    """Refuse option keys the plugin did not declare, as ``winoeval run`` does."""
    check = getattr(entry, "check_options", None)
    if check is not None:
        check(given, flag)


def _check_plugin_command() -> click.Command:
    @click.command(name="check-plugin")
    @click.argument("name")
    @click.option("--task", "-t", "task_name", metavar="TASK",
                  help="For a model: the task whose first examples it is checked on [the task its own plugin "
                       "registers].")
    @click.option("--model-arg", multiple=True, metavar="KEY=VALUE", help="Model option (repeatable).")
    @click.option("--task-arg", multiple=True, metavar="KEY=VALUE", help="Task option (repeatable).")
    @click.option("--data-dir", type=click.Path(), help="Local dataset folder for the task.")
    @click.option("--device", default="cpu", show_default=True, help="auto, cpu, cuda or cuda:N.")
    @click.option("--dtype", default="auto", show_default=True,
                  type=click.Choice(["auto", "float32", "float16", "bfloat16"]))
    @click.pass_context
    def check_plugin(ctx, name, task_name, model_arg, task_arg, data_dir, device, dtype) -> None:
        """Check that model or task NAME keeps the plugin contract (CONTRIBUTING.md).

        Prints one line per broken rule, naming the rule and the fix, and exits with status 1 if any;
        `ok` lines otherwise. A model is checked on the images and texts of a task's first examples."""
        from winoeval import registry
        from winoeval.options import key_values
        from winoeval.config import ConfigError, RunConfig

        models, tasks = registry.models(), registry.tasks()
        base = name.partition(":")[0]
        as_model = name in models or base in models
        as_task = name in tasks or base in tasks
        if not (as_model or as_task):
            known = sorted({*models, *tasks})
            import difflib

            close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise click.UsageError(f"no model or task {name!r}{hint} (`winoeval list` shows them all)")
        if as_model and task_name is None:
            plugin = registry.resolve("model", name)[0].plugin
            own = sorted(n for n, e in tasks.items() if e.plugin == plugin)
            if as_task:
                task_name = name
            elif own:
                task_name = own[0]
            else:
                raise click.UsageError(f"model {name!r}: pass --task TASK, a task whose images it reads (its plugin "
                                       f"{plugin!r} registers none), e.g. --task colors for analytic")
        try:
            config = RunConfig(model=name if as_model else "-", task=task_name or name, device=device, dtype=dtype,
                               data_dir=data_dir, model_args=key_values(model_arg, "--model-arg"),
                               task_args=key_values(task_arg, "--task-arg"))
            if as_model:
                _check_declared(registry.resolve("model", name)[0], config.model_args, "--model-arg")
            if task_name:
                _check_declared(registry.resolve("task", task_name)[0], config.task_args, "--task-arg")
        except (ConfigError, registry.UnknownNameError) as exc:
            raise click.UsageError(str(exc)) from None
        failed = False
        if as_task:
            lines = check_task(name, config=config)
            failed |= bool(lines)
            click.echo("\n".join(f"task {name}: {line}" for line in lines) or
                       f"task {name}: ok ({len(TASK_RULES)} rules)")
        if as_model:
            try:
                task = load_task(task_name, config)
            except Exception as exc:
                raise click.UsageError(f"--task {task_name}: could not load it ({type(exc).__name__}: {exc})") from None
            lines = check_model(name, task, config=config)
            failed |= bool(lines)
            click.echo("\n".join(f"model {name}: {line}" for line in lines) or
                       f"model {name}: ok ({len(MODEL_RULES)} rules, on the first examples of {task_name})")
        if failed:
            ctx.exit(1)

    return check_plugin


check_plugin_command = _check_plugin_command()
