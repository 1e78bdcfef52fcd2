"""The text of ``hdf --help``: importing it loads nothing (no torch, no Lightning), so the top-level
help answers at once."""

from __future__ import annotations

__all__ = ["EXTRA_COMMANDS_HELP", "TOP_LEVEL_HELP"]

EXTRA_COMMANDS_HELP = """extra commands:
  hdf data synth     write the synthetic DFER dataset (DFEW or FERV39k layout)
  hdf data verify    count clips, frames, missing and unreadable items of a dataset
  hdf data extract   decode videos into DFEW-style frame folders (--faces true: face crops)
  hdf cv             run the DFEW 5-fold protocol and write the results table
  hdf cost           parameters, GFLOPs, peak memory and clips/s of a model
  hdf predict        expression probabilities of your own videos (face crop, sliding windows)
  hdf export         export a checkpoint's network to ONNX / torch.export / TorchScript
  hdf app            a local web page: upload a video, see the face and the expressions over time

Each accepts --help; predict, export, app, data synth and data extract also read their options
from a YAML file (--config, as --print_config writes it).
Quick start: hdf fit --config configs/demo.yaml"""
"""The extra commands, listed under Lightning's subcommands in ``hdf fit --help`` too."""

TOP_LEVEL_HELP = f"""usage: hdf <command> [options]

HDF for dynamic facial expression recognition (hdf-lightning).

training commands (a LightningCLI: --config YAML, --print_config, --ckpt_path):
  hdf fit            train a model (and resume one with --ckpt_path)
  hdf validate       evaluate a checkpoint on the validation split
  hdf test           evaluate a checkpoint on the test split

{EXTRA_COMMANDS_HELP}"""
"""What ``hdf``, ``hdf -h`` and ``hdf --help`` print."""
