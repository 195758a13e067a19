"""Settings for a hosted instance, from environment variables (or Streamlit secrets).

| variable | meaning |
|---|---|
| ``MNISTLAB_READ_ONLY`` | ``1``/``true``: viewers browse, compare, inspect and play with filters, |
|                        | but cannot train, cancel, delete or import |
| ``MNISTLAB_MAX_EPOCHS`` | the most epochs one run may have |
| ``MNISTLAB_MAX_TRAIN_SIZE`` | the most training images one run may fit on |
| ``MNISTLAB_MAX_TRAININGS`` | how many runs may train at once (``1`` on a shared machine) |

The run store and the job launcher enforce these themselves, so a writing action is
refused also when it is called directly, not only hidden in the page.
"""

from __future__ import annotations

import dataclasses
import os
from typing import TYPE_CHECKING, Any, Mapping

from mnistlab.errors import LimitError, ReadOnlyError

if TYPE_CHECKING:
    from mnistlab.runs.config import RunConfig


@dataclasses.dataclass(frozen=True)
class Settings:
    read_only: bool = False
    max_epochs: int | None = None
    max_train_size: int | None = None
    max_trainings: int | None = None

    def refuse_writes(self, action: str) -> None:
        if self.read_only:
            raise ReadOnlyError(f"{action} is switched off: this mnistlab is read-only (MNISTLAB_READ_ONLY)")

    def check_config(self, config: "RunConfig", n_train: int | None = None) -> None:
        """Raise LimitError if ``config`` is beyond this instance's limits.

        ``n_train``: the training images the run would fit on when it sets no train_size.
        """
        if self.max_epochs is not None and config.epochs > self.max_epochs:
            raise LimitError(f"epochs must be at most {self.max_epochs} on this server (MNISTLAB_MAX_EPOCHS), "
                             f"got {config.epochs}")
        size = config.train_size if config.train_size is not None else n_train
        if self.max_train_size is not None and (size is None or size > self.max_train_size):
            raise LimitError(f"train_size must be at most {self.max_train_size:,} on this server "
                             f"(MNISTLAB_MAX_TRAIN_SIZE), got {'all images' if size is None else f'{size:,}'}")


def _flag(value: Any) -> bool:
    return str(value).strip().lower() in ("1", "true", "yes", "on")


def _limit(name: str, value: Any) -> int | None:
    if value is None or str(value).strip() == "":
        return None
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{name} must be a positive whole number, got {value!r}")
    return number


def load_settings(environ: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None) -> Settings:
    """Settings from ``secrets`` (e.g. ``st.secrets``), then the environment."""
    environ = os.environ if environ is None else environ
    merged = {**environ, **{k: v for k, v in (secrets or {}).items() if k.startswith("MNISTLAB_")}}
    return Settings(
        read_only=_flag(merged.get("MNISTLAB_READ_ONLY", "")),
        max_epochs=_limit("MNISTLAB_MAX_EPOCHS", merged.get("MNISTLAB_MAX_EPOCHS")),
        max_train_size=_limit("MNISTLAB_MAX_TRAIN_SIZE", merged.get("MNISTLAB_MAX_TRAIN_SIZE")),
        max_trainings=_limit("MNISTLAB_MAX_TRAININGS", merged.get("MNISTLAB_MAX_TRAININGS")),
    )
