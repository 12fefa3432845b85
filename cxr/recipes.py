"""The four models of the article: each one's network, and its recipe (schedule, sampler,
augmentation) from its own section of params.yaml, named after the model."""

from __future__ import annotations

from pathlib import Path

from dvclive import Live

from cxr.inputs import load_split
from cxr.models import ResNet34, build_model, pretrain, save_checkpoint
from cxr.prepared import read_preprocess
from cxr.train import Phase, fit, resolve_precision, seed_everything, select_device
from cxr.unet import read_segmenter

ARCHS = {"baseline": "cnn8", "balanced": "cnn8", "cnn11": "cnn11", "resnet34": "resnet34"}


def sampler_of(name: str, params: dict) -> str:
    """The baseline's sampler is the top-level `sampler` (the article's `dvc exp run -S
    sampler=weighted`, which re-runs only the baseline); the others carry their own."""
    return params["sampler"] if name == "baseline" else params[name]["sampler"]


def _phases(name: str, cfg: dict, model) -> list[Phase]:
    """ResNet34's frozen phase trains the head alone: every backbone weight (BatchNorm's affine
    parameters too) stays fixed, while BatchNorm's running statistics update, since the model
    is in train mode, adapting the normalisation to X-rays (fastai's `train_bn`;
    tests/test_train.py checks both)."""
    if name == "resnet34":
        return [Phase("frozen", cfg["frozen"]["epochs"], cfg["frozen"]["max_lr"],
                      model.head_parameters()),
                Phase("unfrozen", cfg["unfrozen"]["epochs"], cfg["unfrozen"]["max_lr"])]
    return [Phase("train", cfg["epochs"], cfg["lr"])]


def train_model(name: str, params: dict, data_dir: str | Path, model_path: str | Path,
                live_dir: str | Path, lungs_dir: str | Path, segmenter: str | Path) -> None:
    """Train one model on the cache, in the lung region `prepare.roi` (the masks in `lungs_dir`,
    written by the segmenter at `segmenter`, which the checkpoint then carries for
    `cxr-predict`)."""
    arch, cfg = ARCHS[name], params[name]
    generator = seed_everything(params["seed"])
    device = select_device(params["device"])
    precision = resolve_precision(params["precision"], device)
    roi = {k: params["prepare"][k] for k in ("roi", "roi_margin")}
    masks = None if roi["roi"] == "full" else lungs_dir
    train, val = (load_split(data_dir, split, cfg["image_size"], masks, roi["roi"],
                             roi["roi_margin"]) for split in ("train", "val"))
    image_size = int(train.images.shape[-1])  # input_side: never above the cache's side
    if image_size < cfg["image_size"]:
        print(f"{name}: input {image_size} px, the cache's side ({name}.image_size "
              f"{cfg['image_size']}; inputs are never upsampled)")
    config = {k: cfg[k] for k in ("width", "dropout") if k in cfg}
    model = build_model(arch, **config)
    info = {}
    if isinstance(model, ResNet34):
        pretrain(model, cfg["weights"])
        info["weights"] = cfg["weights"]
    phases, sampler = _phases(name, cfg, model), sampler_of(name, params)
    augment = cfg.get("augment")

    with Live(str(live_dir), save_dvc_exp=False, dvcyaml=None, report=None) as live:
        live.log_params({"model": name, "arch": arch, "sampler": sampler, "device": device.type,
                         "precision": precision, "seed": params["seed"],
                         "cache_size": train.cache_size, **roi, **cfg, "input_size": image_size,
                         "train_images": len(train),
                         "val_images": len(val)})
        lrs = fit(model, train, val, phases, batch_size=cfg["batch_size"],
                  weight_decay=cfg["weight_decay"], label_smoothing=cfg["label_smoothing"],
                  sampler=sampler, augment=augment, generator=generator, device=device,
                  live=live, precision=precision)
        live.log_plot("lr", [{"step": i, "lr": lr} for i, lr in enumerate(lrs)], x="step",
                      y="lr", template="linear", title=f"{name}: learning rate per step")
        live.summary.update(info)
    save_checkpoint(model_path, model.cpu(), arch, config, image_size, train.cache_size, info,
                    trained_hflip=(augment or {}).get("hflip", 0.0),
                    preprocess=read_preprocess(data_dir) | roi,
                    segmenter=None if masks is None else read_segmenter(segmenter))
