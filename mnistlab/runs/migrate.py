"""Bring a store written by an older mnistlab (run format 2) up to today's format (3).

For each old run folder: its configuration is resolved with the sizes it really trained
with (read from its stored split, so no data is loaded) and re-keyed to the resolved id,
keeping the old id as an alias (old links still open). Its ``model.keras`` becomes
``weights.npz`` by building the architecture and loading only the weights into it
(``Model.load_weights``: never ``load_model``, so no model configuration is deserialized).
Its numbers are relabelled to describe the one model it keeps: with early stopping that is
the epoch of lowest validation loss (Keras restores it), otherwise the last epoch.

Two old runs that resolve to the same id were the same training: the newer is kept, the
older moves to ``.duplicates/`` (reported by ``doctor``, never deleted). Each run is written
whole into ``.tmp/`` and renamed into place before its old folder goes, so a migration
killed half-way is finished by the next one.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mnistlab.runs import records
from mnistlab.runs.config import RunConfig, canonical_json, id_of

if TYPE_CHECKING:
    from mnistlab.runs.store import RunStore

DUPLICATES = ".duplicates"


def _old_run(folder: Path) -> dict[str, Any] | None:
    """The old format's documents, or None if ``folder`` is not an old-format run."""
    try:
        config_doc = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        if not isinstance(config_doc, dict) or config_doc.get("format") == records.FORMAT:
            return None
        if not isinstance(config_doc.get("canonical"), dict):
            return None
        return {
            "config": config_doc,
            "history": json.loads((folder / "history.json").read_text(encoding="utf-8")),
            "metrics": json.loads((folder / "metrics.json").read_text(encoding="utf-8")),
        }
    except (OSError, ValueError, RecursionError):
        return None


def _explicit(config: RunConfig, split: dict[str, Any]) -> RunConfig:
    """The configuration with the sizes the old run really trained with."""
    fit, val = int(split["fit_images"]), int(split["validation_images"])
    if config.validation == "holdout":
        return config.replace(validation_size=val, train_size=fit)
    if config.validation == "fraction":
        return config.replace(validation_size=float(config.effective_validation_size), train_size=fit + val)
    return config.replace(train_size=fit)


def _kept(config: RunConfig, history: list[dict]) -> tuple[int, str]:
    if config.patience is not None:
        losses = [(h.get("val_loss"), i) for i, h in enumerate(history) if h.get("val_loss") is not None]
        if losses:
            return min(losses)[1] + 1, "best_val_loss"
    return len(history), "last"


def _weights_from_keras_file(path: Path, arch: str, task: str) -> list[np.ndarray]:
    """Weights of an old ``model.keras``: the architecture is built here, only weights are read."""
    from mnistlab.models.architectures import build_model

    model = build_model(arch, task)
    model.load_weights(path)  # a .keras file: reads model.weights.h5 only, no deserialization
    return [np.asarray(w, dtype=np.float32) for w in model.get_weights()]


def convert(store: "RunStore", folder: Path) -> tuple[str, str] | None:
    """Convert one old-format run folder; returns (old id, new id), or None if it is not old."""
    old = _old_run(folder)
    if old is None:
        return None
    old_id = folder.name
    config = RunConfig.from_dict(old["config"]["config"])
    history = [h for h in old["history"] if isinstance(h, dict)]
    metrics = old["metrics"]
    fingerprint = metrics["data"]["fingerprint"]
    explicit = _explicit(config, metrics["split"])
    form = explicit.canonical(fingerprint)
    new_id = id_of(canonical_json(form))
    target = store.root / new_id

    if target.is_dir() and not (target / "config.json").is_file():
        shutil.rmtree(target, ignore_errors=True)
    carried: list[str] = []  # aliases of a duplicate this run replaces
    if (target / "config.json").is_file() and target != folder:
        existing = _old_run(target)
        if existing is None:  # already converted (by an earlier, interrupted migration, or a duplicate)
            doc = json.loads((target / "config.json").read_text(encoding="utf-8"))
            if old_id in doc.get("aliases", []):
                shutil.rmtree(folder, ignore_errors=True)
                return old_id, new_id
            newer = metrics.get("created", "") > json.loads((target / "metrics.json").read_text())["created"]
            if not newer:  # the same training, stored earlier: the newer one stays, this one's id points to it
                doc["aliases"] = [*doc.get("aliases", []), old_id][-records.MAX_ALIASES:]
                _replace_text(target / "config.json", records.json_text(doc))
                _set_aside(store, folder)
                return old_id, new_id
            carried = list(doc.get("aliases", []))
            _set_aside(store, target)

    kept_epoch, kept_reason = _kept(config, history)
    kept = history[kept_epoch - 1] if history else {}
    weights = _weights_from_keras_file(folder / "model.keras", config.arch, config.task)
    with np.load(folder / "predictions.npz", allow_pickle=False) as npz:
        probabilities, labels, digits = npz["probabilities"], npz["labels"], npz["digits"]

    aliases = [*carried, *([old_id] if old_id != new_id else [])][-records.MAX_ALIASES:]
    tmp = store.tmp_dir(f"migrate-{new_id}")
    config_doc = {"format": records.FORMAT, "run_id": new_id, "config": config.to_dict(),
                  "canonical": canonical_json(form), "aliases": aliases}
    history_doc = {"run_id": new_id, "epochs": records.clean(
        [{k: h.get(k) for k in ("epoch", *records.HISTORY_KEYS, "seconds", "elapsed") if k in h} for h in history])}
    new_metrics = records.clean({
        "run_id": new_id,
        "status": "finished",
        "kept_epoch": kept_epoch,
        "kept_reason": kept_reason,
        "epochs_run": len(history),
        "test_loss": metrics["test_loss"],
        "test_accuracy": metrics["test_accuracy"],
        "val_loss": kept.get("val_loss"),
        "val_accuracy": kept.get("val_accuracy"),
        "params": metrics["params"],
        "split": metrics["split"],
        "timings": metrics["timings"],
        "versions": metrics.get("versions", {}),
        "data": {k: str(metrics["data"].get(k, ""))[:2000] for k in ("kind", "title", "fingerprint", "reason")},
        "n_test": int(len(probabilities)),
        "created": metrics["created"],
        "message": "converted from an earlier mnistlab; test metrics as that version computed them",
        "migrated_from": old_id,
    })
    records.check_files(new_id, config_doc, history_doc, new_metrics)
    records.save_predictions(tmp / "predictions.npz", new_id, probabilities, labels, digits)
    records.save_weights(tmp / "weights.npz", new_id, config.arch, weights)
    for name, doc in (("config.json", config_doc), ("history.json", history_doc), ("metrics.json", new_metrics)):
        (tmp / name).write_text(records.json_text(doc), encoding="utf-8")
    if folder == target:  # the id did not change: replace the folder in one step
        aside = store.root / ".tmp" / f"old-{old_id}-{uuid.uuid4().hex[:6]}"
        os.rename(folder, aside)
        os.rename(tmp, target)
        shutil.rmtree(aside, ignore_errors=True)
    else:
        os.rename(tmp, target)
        shutil.rmtree(folder, ignore_errors=True)
    return old_id, new_id


def _replace_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def _set_aside(store: "RunStore", folder: Path) -> None:
    aside = store.root / DUPLICATES / f"{folder.name}-{uuid.uuid4().hex[:6]}"
    aside.parent.mkdir(parents=True, exist_ok=True)
    os.rename(folder, aside)


def migrate_store(store: "RunStore") -> list[tuple[str, str]]:
    """Convert every old-format run of ``store``; a run that cannot be converted stays as it is
    (and is listed as broken with the reason)."""
    done = []
    for folder in sorted(store.root.iterdir()):
        if folder.name.startswith(".") or not folder.is_dir() or not records.RUN_ID.match(folder.name):
            continue
        try:
            pair = convert(store, folder)
        except Exception:  # noqa: BLE001 - a run that cannot be converted stays, listed as broken
            continue
        if pair is not None:
            done.append(pair)
    for folder in (".locks", ".progress"):  # the older version's live state, now in SQLite
        shutil.rmtree(store.root / folder, ignore_errors=True)
    return done


def migrated_pairs(store: "RunStore") -> list[tuple[str, str]]:
    """(old id, new id) of every run that carries an alias."""
    return sorted((alias, new) for alias, new in store.list_runs().aliases().items())


def duplicates(store: "RunStore") -> list[tuple[str, str]]:
    """Folders set aside as duplicates: (the run id they duplicated, where they are now)."""
    folder = store.root / DUPLICATES
    if not folder.is_dir():
        return []
    return sorted((entry.name.split("-")[0], str(entry)) for entry in folder.iterdir())
