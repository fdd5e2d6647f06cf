"""Checks of the user's inputs, run before ``ns-train`` writes anything.

Each failure is a ``TrimError`` naming the problem, which the plugin prints as one line.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from nerfstudio.data.datamanagers.base_datamanager import DataManagerConfig

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


def check_device(device_type: str) -> None:
    """A CUDA run needs a CUDA GPU."""
    if device_type == "cuda" and not torch.cuda.is_available():
        raise TrimError("no CUDA GPU is available on this machine; add --machine.device-type cpu")


def check_checkpoint(path: Path) -> Dict[str, Any]:
    """``path`` is a checkpoint that torch reads safely, holding splatfacto's Gaussian parameters, all
    finite. Returns its pipeline state."""
    pipeline = load_checkpoint(path)["pipeline"]
    for name, values in gaussian_state(pipeline).items():
        if not torch.isfinite(values).all():
            raise TrimError(f"{path} has non-finite values (NaN or inf) in its Gaussians' {name}")
    return pipeline


def check_load_dir(load_dir: Optional[Path]) -> None:
    """``--load-dir`` (resume) names a folder holding nerfstudio checkpoints."""
    if load_dir is not None and not any(Path(load_dir).glob("step-*.ckpt")):
        raise TrimError(f"{load_dir} holds no nerfstudio checkpoint (step-*.ckpt)")


def check_data(datamanager: DataManagerConfig) -> None:
    """The dataset parses and every training image it lists exists."""
    dataparser = copy.deepcopy(datamanager.dataparser)
    if datamanager.data is not None:
        dataparser.data = datamanager.data
    data = Path(dataparser.data)
    if not data.exists():
        raise TrimError(f"data path {data} does not exist")
    try:
        outputs = dataparser.setup().get_dataparser_outputs(split="train")
    except FileNotFoundError as exc:
        raise TrimError(f"the dataset at {data} is missing {exc.filename or exc}") from None
    except Exception as exc:
        raise TrimError(f"cannot read the dataset at {data} ({_one_line(exc)})") from None
    images = outputs.image_filenames
    if not images:
        raise TrimError(f"the dataset at {data} has no training images")
    missing = [f for f in images if not Path(f).is_file()]
    if missing:
        raise TrimError(f"the dataset at {data} lists {len(missing)} images that do not exist, e.g. {missing[0]}")
