"""The one place where this package reaches into Lightning's private API.

Lightning offers no public way to do the three things below; each function or class names the
private attribute it uses and why. :data:`PRIVATE_ATTRIBUTES` lists them, and
``tests/test_lightning_private.py`` fails when the installed Lightning lacks one of them (so an
upgrade breaks a test, not a user) or when a module outside this one uses private Lightning API.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ModelCheckpoint

PRIVATE_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "pytorch_lightning.callbacks.ModelCheckpoint": ("_should_skip_saving_checkpoint",),
    "pytorch_lightning.loops.fit_loop._FitLoop": ("_combined_loader", "_data_fetcher"),
    "pytorch_lightning.loggers.WandbLogger": ("_wandb_init",),
}
"""Private attributes used here, by the class (dotted path) that defines them."""


class RefusableCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose subclasses may refuse to write a checkpoint.

    Reaches into ``ModelCheckpoint._should_skip_saving_checkpoint(trainer)``: the one check
    Lightning makes before each of its saves (after a training batch, a training epoch or a
    validation). No public hook runs there, so a checkpoint of non-finite weights could otherwise
    be written (and ranked as best) before any public hook could stop it.
    """

    def refuses_to_save(self, trainer: pl.Trainer) -> bool:
        """Whether this callback must not save now, besides Lightning's own reasons."""
        return False

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        if super()._should_skip_saving_checkpoint(trainer):
            return True
        return self.refuses_to_save(trainer)


def fit_train_loaders(trainer: pl.Trainer) -> list[Any] | None:
    """The training DataLoaders of the running ``fit`` (flattened), or None before they exist.

    Reaches into ``trainer.fit_loop._combined_loader`` (and checks ``_data_fetcher``): the
    loaders whose samplers :func:`restart_train_iterator` will draw from. The public
    ``trainer.train_dataloader`` gives the user's iterables, not the ones the fit loop iterates.
    """
    loop = trainer.fit_loop
    combined = loop._combined_loader
    if combined is None or loop._data_fetcher is None:
        return None
    return list(combined.flattened)


def restart_train_iterator(trainer: pl.Trainer) -> None:
    """Make the fit loop draw the rest of the epoch from a new iterator of its loaders.

    Reaches into ``trainer.fit_loop._data_fetcher``: when ``fit`` resumes inside an epoch,
    Lightning has already created the epoch's iterator before ``on_train_start``; a sampler told
    to skip the batches already seen takes effect only in an iterator created after that.
    """
    fetcher = trainer.fit_loop._data_fetcher
    if fetcher is not None:
        iter(fetcher)


def drop_unset_wandb_anonymous(trainer: pl.Trainer) -> None:
    """Leave wandb's ``anonymous`` setting out of ``wandb.init`` when the user did not set it.

    Reaches into ``WandbLogger._wandb_init``, the keyword arguments the logger passes to
    ``wandb.init``: Lightning always passes ``anonymous=None``, which makes wandb warn that the
    (deprecated) setting has no effect, and offers no public way to leave it out.
    """
    for logger in trainer.loggers:
        init = getattr(logger, "_wandb_init", None)
        if isinstance(init, dict) and init.get("anonymous", "set") is None:
            del init["anonymous"]
