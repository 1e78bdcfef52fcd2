"""HDFNet: X3D with a DAM after each of its 4 stages (docs/method.md §1)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from hdf_lightning.layers.dam import DAM
from hdf_lightning.models.x3d import X3D, WeightsSkip


class HDFNet(X3D):
    """X3D with DAMs: ``stem -> stage1 -> DAM -> ... -> stage4 -> DAM -> head``.

    With the defaults (16 frames, 7 classes, 2048-d head) it has 2,989,017 + 4 x 4,237 = 3,005,965
    parameters. X3D never strides time, so every DAM sees ``T == num_frames`` and the input clip
    must have exactly ``num_frames`` frames.

    Args:
        dam_stages: the stages (1..4) followed by a DAM; ``()`` gives the plain X3D baseline.
        weights: X3D weights loaded into the backbone: a name of
            :data:`~hdf_lightning.models.x3d.X3D_WEIGHTS` (``kinetics400``: pytorchvideo's
            X3D-S, downloaded once into torch.hub's cache) or a local pytorchvideo checkpoint or
            X3D state dict; the DAMs keep their init and are listed as such in ``load_report``.
        weights_skip: what of the checkpoint's head is not loaded.
        **x3d: the arguments of :class:`~hdf_lightning.models.x3d.X3D` (``num_classes``,
            ``num_frames`` (DAM's ``K``), ``width_factor``, ``depth_factor``,
            ``bottleneck_factor``, ``se_ratio``, ``head_dim``, ``dropout``), with its defaults.

    Attributes:
        dams: ``ModuleDict`` from stage number (``"1"``..``"4"``) to its DAM.

    Shape:
        input ``(B, 3, num_frames, H, W)``;
        output ``(logits (B, num_classes), feature (B, head_dim))``.
    """

    def __init__(
        self,
        *,
        dam_stages: Sequence[int] = (1, 2, 3, 4),
        weights: str | None = None,
        weights_skip: WeightsSkip = "classifier",
        **x3d: Any,
    ) -> None:
        super().__init__(**x3d)  # the weights are loaded once the DAMs exist
        stages = tuple(dam_stages)
        num_stages = len(self.stages)
        if any(s not in range(1, num_stages + 1) for s in stages) or len(set(stages)) != len(
            stages
        ):
            raise ValueError(
                f"dam_stages must be distinct stage numbers in 1..{num_stages}, got {stages}"
            )
        self.dam_stages: tuple[int, ...] = tuple(sorted(stages))
        self.dams = nn.ModuleDict(
            {str(s): DAM(self.stage_channels[s - 1], self.num_frames) for s in self.dam_stages}
        )
        if weights is not None:
            self.load_weights(weights, skip=weights_skip)

    def forward_stages(self, x: Tensor) -> list[Tensor]:
        """The output of each stage, after its DAM when it has one.

        Args:
            x: clips ``(B, 3, num_frames, H, W)``.

        Returns:
            4 tensors ``(B, stage_channels[s], T, H_s, W_s)``.

        Raises:
            ValueError: the clip does not have ``num_frames`` frames (while DAMs are present).
        """
        self.check_input(x)
        if self.dam_stages and x.shape[2] != self.num_frames:
            raise ValueError(
                f"HDFNet was built for num_frames={self.num_frames}, got T={x.shape[2]} "
                f"in input of shape {tuple(x.shape)} (expected (B, 3, T, H, W))"
            )
        x = self.stem(x)
        outputs = []
        for index, stage in enumerate(self.stages, start=1):
            x = stage(x)
            key = str(index)
            if key in self.dams:
                x = self.dams[key](x)
            outputs.append(x)
        return outputs
