"""Checks of the user's inputs, run before ``ns-train`` (or an ``ns-trim`` command) writes anything.

Each failure is a ``TrimError`` naming the problem, which the plugin prints as one line.
"""

from __future__ import annotations

import copy
from importlib import import_module
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from nerfstudio.data.datamanagers.base_datamanager import DataManagerConfig
from nerfstudio.utils.rich_utils import CONSOLE

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.checkpoints import gaussian_state, load_checkpoint


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{exc.__class__.__name__}: {text}" if text else exc.__class__.__name__


GPU_SETUP = "README, 'GPU set-up'"


def check_device(device_type: str, cpu_option: str = "--machine.device-type cpu") -> None:
    """A CUDA run needs a CUDA GPU and gsplat's CUDA kernels (built on first use); ``cpu_option`` is the
    command's way to the CPU instead, named in the error."""
    if device_type != "cuda":
        return
    if not torch.cuda.is_available():
        raise TrimError(f"no CUDA GPU is available on this machine; add {cpu_option}")
    load_gsplat_kernels()


def load_gsplat_kernels() -> None:
    """Load gsplat's CUDA kernels, which gsplat 1.4.0 compiles the first time (minutes, then cached).

    Compiling needs ``nvcc`` of torch's CUDA version on PATH, the CUDA headers and ``libcudart.so``. Without
    nvcc gsplat leaves its extension (``gsplat.cuda._backend._C``) None, and only the first render fails,
    after the run has started writing; a failed compile raises. Either stops here with one line."""
    CONSOLE.print("gsplat: loading its CUDA kernels (the first time, it compiles them: a few minutes)")
    try:
        backend = import_module("gsplat.cuda._backend")
    except Exception as exc:  # a compiler error, a CUDA version other than torch's, no ninja
        raise TrimError(
            f"gsplat could not build its CUDA kernels ({_build_error(exc)}); they need nvcc of CUDA "
            f"{torch.version.cuda} (torch's), the CUDA headers and libcudart.so: {nvcc_install()} ({GPU_SETUP}; "
            "the compiler's output: python -c 'import gsplat.cuda._backend')"
        ) from None
    if backend._C is None:
        raise TrimError(
            f"gsplat found no CUDA compiler (nvcc) on PATH to build its kernels; install CUDA "
            f"{torch.version.cuda}'s: {nvcc_install()}, then put its bin/ on PATH ({GPU_SETUP})"
        )


def nvcc_install() -> str:
    """How to get nvcc for torch's CUDA: pip's ``cuda-toolkit`` (which torch's CUDA libraries came with) at
    the installed version, with its compiler and C++ headers."""
    try:
        return f"pip install 'cuda-toolkit[nvcc,cccl]=={version('cuda-toolkit')}'"
    except PackageNotFoundError:
        return f"install the CUDA {torch.version.cuda} toolkit"


def _build_error(exc: BaseException, limit: int = 160) -> str:
    """At most ``limit`` characters on one line from an extension build error. torch raises some as
    (format string, values...) and appends the compiler's whole output to others."""
    args = exc.args
    text = args[0].format(*args[1:]) if len(args) > 1 and isinstance(args[0], str) else str(exc)
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


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


def check_data(datamanager: DataManagerConfig) -> Any:
    """The dataset parses and every training image it lists exists; returns its training split's dataparser
    outputs (the normalisation of its cameras)."""
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
    return outputs
