"""Pretrained weights: by name or from a local file, loaded with strict key and shape checks.

A ``weights`` argument is a local path or the name of published weights (``kinetics400``). A name
is looked up in its network's table of :class:`PublishedWeights` (the URL where the network's own
ecosystem publishes the file) and resolved by :func:`fetch_weights` to ``torch.hub``'s cache,
``$TORCH_HOME/hub/checkpoints/<file name>``: downloaded there on first use with torch.hub's
progress bar and, where the file name carries a SHA-256 prefix (torchvision's convention), with
its hash checked; used from there afterwards. :data:`MIRROR_ENV` points the downloads at a mirror.

A load either fills every parameter and buffer it is responsible for, with the exact shape, or
raises :class:`~hdf_lightning.errors.CheckpointError` naming the file and the offending keys. What
was deliberately not loaded (a Kinetics classifier, DAMs, M3DFEL's aggregation layers) is listed in
the returned :class:`LoadReport`, which is also logged. Errors are one line and raised
``from None`` (the original error stays in ``__context__``): ``hdf`` shows the innermost cause of
an error raised while the configured classes are built, which must be the message written here.

This module is architecture-agnostic (names to files, read a state dict, checked load, load
report); the tables and key maps of each architecture live beside its builder, as torchvision
keeps weights beside its models:

* X3D: :data:`hdf_lightning.models.x3d.X3D_WEIGHTS` and
  :func:`hdf_lightning.models.x3d.load_x3d_weights` (pytorchvideo ``create_x3d`` state dicts and
  hub checkpoints such as ``X3D_S.pyth``, or this package's names);
* r3d_18 into M3DFEL's backbone: :data:`hdf_lightning.models.m3dfel.R3D18_WEIGHTS` and
  :func:`hdf_lightning.models.m3dfel.load_r3d18_weights`.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import tempfile
import urllib.error
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import torch
import torch.hub
from torch import Tensor, nn

from hdf_lightning.checkpoints import compare_state_dicts, load_checkpoint_file
from hdf_lightning.errors import CheckpointError

log = logging.getLogger(__name__)

_WRAPPER_KEYS = ("model_state", "state_dict", "model")

MIRROR_ENV = "HDF_WEIGHTS_MIRROR"
"""Environment variable: a URL prefix (``https://host/folder``, ``file:///shared/weights``) that
replaces everything before the file name of every published weights URL (a mirror holding the
same files under the same names)."""


class WeightsNotFoundError(CheckpointError, FileNotFoundError):
    """A ``weights`` value that is neither an existing file nor the name of published weights."""


@dataclass(frozen=True)
class LoadReport:
    """What a checkpoint load did.

    Attributes:
        source: the checkpoint path.
        loaded: model keys filled from the checkpoint.
        skipped: checkpoint keys deliberately not loaded (e.g. ``head.proj.weight``).
        kept_init: model keys left at their initial values (e.g. a new classifier, DAMs).
    """

    source: str
    loaded: tuple[str, ...]
    skipped: tuple[str, ...]
    kept_init: tuple[str, ...]

    def summary(self) -> str:
        """One line: counts, the skipped / kept-at-init keys grouped by module, nothing missing.

        E.g. ``loaded 561 tensors from X3D_S.pyth; skipped 2 checkpoint tensors
        [blocks.5.proj (2)]; kept 90 model tensors at init [head.proj (2), dams.1 (22), ...];
        nothing else missing``. A load that would leave any other tensor unfilled raises instead.
        """
        return (
            f"loaded {len(self.loaded)} tensors from {self.source}; "
            f"skipped {len(self.skipped)} checkpoint tensors {_group(self.skipped, depth=None)}; "
            f"kept {len(self.kept_init)} model tensors at init {_group(self.kept_init)}; "
            "nothing else missing"
        )


@dataclass(frozen=True)
class PublishedWeights:
    """Weights published by a network's own ecosystem, downloaded into ``torch.hub``'s cache.

    Attributes:
        url: where the publisher serves the file.
        description: what the file holds (for messages), e.g. ``pytorchvideo X3D-S, Kinetics-400``.
        check_hash: whether the file name carries a SHA-256 prefix to check
            (``r3d_18-b3b3357e.pth``, torch.hub's ``check_hash`` convention).
    """

    url: str
    description: str
    check_hash: bool = False

    @property
    def file_name(self) -> str:
        """The file name, as in the URL and in the cache."""
        return PurePosixPath(urlsplit(self.url).path).name

    @property
    def hash_prefix(self) -> str | None:
        """The SHA-256 prefix the download must start with, or None when unchecked."""
        if not self.check_hash:
            return None
        match = torch.hub.HASH_REGEX.search(self.file_name)
        if match is None:
            raise ValueError(f"{self.url}: check_hash needs a file name <name>-<sha256 prefix>.ext")
        return match.group(1)

    def download_url(self) -> str:
        """The URL to download from: :attr:`url`, or the same file name under :data:`MIRROR_ENV`."""
        mirror = os.environ.get(MIRROR_ENV, "").strip()
        return f"{mirror.rstrip('/')}/{self.file_name}" if mirror else self.url

    def cache_path(self) -> Path:
        """Where torch.hub keeps the file: ``$TORCH_HOME/hub/checkpoints/<file name>``."""
        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


def resolve_weights(
    weights: str | os.PathLike[str],
    published: Mapping[str, PublishedWeights],
    *,
    network: str,
    progress: bool = True,
) -> Path:
    """The local file of a ``weights`` value: a name of ``published``, or an existing path.

    Args:
        weights: a key of ``published`` (downloaded on first use, see :func:`fetch_weights`) or a
            local path (a file named like a key is reached as ``./<name>``).
        published: the network's table of published weights.
        network: the network's name, for messages.
        progress: show torch.hub's progress bar while downloading.

    Raises:
        WeightsNotFoundError: neither a name nor an existing file.
        CheckpointError: the download failed (see :func:`fetch_weights`).
    """
    if isinstance(weights, str) and weights in published:
        return fetch_weights(published[weights], name=weights, network=network, progress=progress)
    file = Path(weights)
    if not file.is_file():
        names = ", ".join(published)
        raise WeightsNotFoundError(
            f"no checkpoint file at {file}: weights takes a local checkpoint file or one of the "
            f"published weights of {network} ({names})"
        )
    return file


def read_weights(
    weights: str | os.PathLike[str],
    published: Mapping[str, PublishedWeights],
    *,
    network: str,
) -> tuple[dict[str, Tensor], Path]:
    """The state dict of a ``weights`` value (see :func:`resolve_weights`) and its file."""
    file = resolve_weights(weights, published, network=network)
    return read_state_dict(file), file


def fetch_weights(
    weights: PublishedWeights, *, name: str, network: str, progress: bool = True
) -> Path:
    """The cached file of published weights, downloaded with ``torch.hub`` on first use.

    A file already at :meth:`PublishedWeights.cache_path` is used as it is (also one placed there
    by hand, for machines without network). Otherwise the file is downloaded with
    ``torch.hub.download_url_to_file`` (its progress bar) into a temporary folder beside the
    cache, its SHA-256 compared with the prefix in the file name where it carries one
    (:attr:`PublishedWeights.hash_prefix`), read back as a state dict, and only then moved into
    the cache: a refused hash, a cut download or a file that is no checkpoint leaves nothing
    behind.

    Args:
        weights: the table entry.
        name: its name (e.g. ``kinetics400``), for messages.
        network: the network's name, for messages.
        progress: show torch.hub's progress bar.

    Raises:
        CheckpointError: no network or another download failure (naming the URL, the cache path
            to place the file at, and the ``weights: <path>`` alternative), a hash mismatch, or a
            download that is not a checkpoint.
    """
    cached = weights.cache_path()
    if cached.is_file():
        return cached
    url = weights.download_url()
    instead = (
        f"Without network, put that file at {cached} (torch.hub's cache, under $TORCH_HOME) or "
        "set weights: <path of a local copy>"
    )
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        staging = tempfile.TemporaryDirectory(prefix=".download-", dir=cached.parent)
    except OSError as err:
        raise CheckpointError(
            f"cannot write torch.hub's cache folder {cached.parent} ({_reason(err)}): set "
            "TORCH_HOME to a writable folder or weights: <path of a local copy>"
        ) from None
    with staging as folder:
        part = Path(folder) / cached.name
        log.info("%s: downloading the %s weights from %s to %s", network, name, url, cached)
        try:
            torch.hub.download_url_to_file(url, str(part), None, progress=progress)
        except (OSError, http.client.HTTPException) as err:
            why = _reason(err, with_type=isinstance(err, http.client.HTTPException))
            raise CheckpointError(
                f"cannot download the {name} weights of {network} ({weights.description}) from "
                f"{url} ({why}). {instead}"
            ) from None
        prefix = weights.hash_prefix
        if prefix is not None and not (digest := sha256_of(part)).startswith(prefix):
            raise CheckpointError(
                f"refused the {name} weights of {network} downloaded from {url}: "
                f'invalid hash value (expected "{prefix}", got "{digest}") for the SHA-256 prefix '
                f"in the file name; nothing was cached. Download again, or check the mirror "
                f"({MIRROR_ENV})"
            )
        try:
            read_state_dict(part)
        except CheckpointError as err:
            cause = err.__context__
            why = "no state dict" if cause is None else _reason(cause, with_type=True)
            raise CheckpointError(
                f"the {name} weights of {network} downloaded from {url} are not a checkpoint "
                f"({why}): the download was cut or the server sent another file; nothing was "
                f"cached. {instead}"
            ) from None
        os.replace(part, cached)
    log.info("%s: %s weights (%s) cached at %s", network, name, weights.description, cached)
    return cached


def sha256_of(path: str | os.PathLike[str], chunk_bytes: int = 1 << 20) -> str:
    """The SHA-256 hex digest of a file, read in chunks of ``chunk_bytes``."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_bytes):
            digest.update(chunk)
    return digest.hexdigest()


def _reason(err: BaseException, *, with_type: bool = False) -> str:
    """The first sentence of an error's message, on one line: ``[Errno 111] Connection refused``
    (a ``URLError``'s reason), ``HTTP Error 404: Not Found``; ``with_type`` prefixes the type."""
    reason = err.reason if type(err) is urllib.error.URLError else err
    lines = str(reason).strip().splitlines()
    text = lines[0].split(". ")[0] if lines else type(err).__name__
    return f"{type(err).__name__}: {text}" if with_type else text


def read_state_dict(path: str | os.PathLike[str], option: str = "weights") -> dict[str, Tensor]:
    """Read a state dict from a local file, unwrapping ``{"model_state" | "state_dict": sd}``.

    The file is read by :func:`hdf_lightning.checkpoints.load_checkpoint_file` (tensors and plain
    values only).

    Raises:
        WeightsNotFoundError: no such file (a ``FileNotFoundError`` too).
        CheckpointError: the file is truncated or no PyTorch file, holds no mapping of names to
            tensors, or holds objects that a ``weights_only`` load refuses (arbitrary pickled
            Python objects). Every message is one line naming the file and ``option``.
    """
    file = Path(path)
    if not file.is_file():
        raise WeightsNotFoundError(f"no checkpoint file at {file}")
    obj = load_checkpoint_file(file, option)
    if isinstance(obj, Mapping):
        for key in _WRAPPER_KEYS:
            inner = obj.get(key)
            if isinstance(inner, Mapping):
                obj = inner
                break
    if not isinstance(obj, Mapping) or not obj:
        raise CheckpointError(
            f"{file} does not hold a state dict: expected a mapping of names to tensors, "
            f"optionally wrapped as {{'model_state': ...}} or {{'state_dict': ...}}"
        )
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, Tensor)}
    if len(tensors) != len(obj):
        non_tensors = sorted(str(k) for k, v in obj.items() if not isinstance(v, Tensor))
        raise CheckpointError(
            f"{file}: expected only tensors in the state dict, got {non_tensors[:5]}"
        )
    return tensors


def load_checked(
    module: nn.Module,
    state_dict: Mapping[str, Tensor],
    *,
    source: str,
    rename: Callable[[str], str | None] = lambda key: key,
    skip: Callable[[str], bool] = lambda key: False,
    keep_init: Callable[[str], bool] = lambda key: False,
) -> LoadReport:
    """Load ``state_dict`` into ``module`` after renaming, with strict key and shape checks.

    Args:
        module: the destination.
        state_dict: checkpoint tensors by checkpoint key.
        source: where the tensors came from (for messages).
        rename: checkpoint key -> model key, or None for a key that has no counterpart.
        skip: model key (after renaming) -> True to leave it out on purpose.
        keep_init: model key -> True when the model may keep it at its initial value.

    Returns:
        The :class:`LoadReport` (also logged at INFO level).

    Raises:
        CheckpointError: a checkpoint key that is neither mapped nor skipped, a model key that is
            neither provided nor allowed to keep its init, or a shape mismatch (naming the key); a
            ``ValueError`` too.
    """
    expected = module.state_dict()
    mapped: dict[str, Tensor] = {}
    skipped: list[str] = []
    unexpected: list[str] = []
    for ckpt_key, tensor in state_dict.items():
        key = rename(ckpt_key)
        if key is not None and skip(key):
            skipped.append(ckpt_key)
        elif key is None or key not in expected:
            unexpected.append(ckpt_key if key in (None, ckpt_key) else f"{ckpt_key} -> {key}")
        else:
            mapped[key] = tensor
    if unexpected:
        raise CheckpointError(
            f"{source}: {len(unexpected)} checkpoint keys have no place in "
            f"{type(module).__name__}: {_preview(unexpected)}"
        )
    missing = [k for k in expected if k not in mapped and not keep_init(k) and not skip(k)]
    if missing:
        raise CheckpointError(
            f"{source}: {len(missing)} keys of {type(module).__name__} are missing from the "
            f"checkpoint: {_preview(missing)}"
        )
    for key, in_file, in_model in compare_state_dicts(mapped, expected).mismatched:
        raise CheckpointError(
            f"{source}: shape mismatch for {key!r}: checkpoint {in_file}, model {in_model} (was "
            "the model built with the same width/depth/head settings?)"
        )
    module.load_state_dict(mapped, strict=False)
    report = LoadReport(
        source=source,
        loaded=tuple(mapped),
        skipped=tuple(skipped),
        kept_init=tuple(k for k in expected if k not in mapped),
    )
    log.info("%s: %s", type(module).__name__, report.summary())
    return report


def _preview(keys: Iterable[str], limit: int = 8) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - limit} more)" if len(keys) > limit else ""
    return ", ".join(keys[:limit]) + more


def _group(keys: Iterable[str], depth: int | None = 2) -> str:
    """``[head.proj (2), dams.1 (22), lstm (16)]``: keys grouped by the module that holds them
    (the name without its last part), cut to its first ``depth`` parts (None: the whole name)."""
    counts: dict[str, int] = {}
    for key in keys:
        module = key.split(".")[:-1] or [key]
        prefix = ".".join(module[:depth])
        counts[prefix] = counts.get(prefix, 0) + 1
    return "[" + ", ".join(f"{p} ({n})" for p, n in counts.items()) + "]"
