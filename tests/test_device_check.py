"""The CUDA check before a run writes anything: a GPU, and gsplat's CUDA kernels, which gsplat compiles on
first use. A machine whose gsplat cannot build them is simulated (this one may have no GPU)."""

import importlib.util
from importlib.metadata import version
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio import checks

BACKEND = "gsplat.cuda._backend"


def loader(extension=None, error=None):
    """A stand-in for importing gsplat's backend: a module whose ``_C`` is ``extension``, or ``error`` raised."""

    def load(name):
        assert name == BACKEND
        if error is not None:
            raise error
        return SimpleNamespace(_C=extension)

    return load


@pytest.fixture
def cuda_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)


def test_the_loaded_module_is_gsplats_backend_holding_the_extension():
    spec = importlib.util.find_spec(BACKEND)
    assert spec is not None and "\n_C = None" in Path(spec.origin).read_text()  # None unless the kernels load


def test_without_nvcc_it_stops_with_one_line_naming_the_package(cuda_machine, monkeypatch, capsys):
    monkeypatch.setattr(checks, "import_module", loader(extension=None))
    with pytest.raises(TrimError) as error:
        checks.check_device("cuda")
    message = str(error.value)
    assert "\n" not in message and "no CUDA compiler (nvcc)" in message and "PATH" in message
    assert f"pip install 'cuda-toolkit[nvcc,cccl]=={version('cuda-toolkit')}'" in message
    assert "a few minutes" in capsys.readouterr().out  # said before loading, which may compile


def test_a_failed_build_stops_with_one_short_line(cuda_machine, monkeypatch):
    mismatch = RuntimeError(  # as torch's cpp_extension raises it: a format string and its values
        "\nThe detected CUDA version ({0}) mismatches the version that was used to compile\n"
        "PyTorch ({1}). Please make sure to use the same CUDA versions.\n", "12.4", "13.0",
    )  # fmt: skip
    monkeypatch.setattr(checks, "import_module", loader(error=mismatch))
    with pytest.raises(TrimError, match=r"The detected CUDA version \(12.4\) mismatches .* PyTorch \(13.0\)") as error:
        checks.check_device("cuda")
    assert "\n" not in str(error.value)
    compiler_output = RuntimeError("Error building extension 'gsplat_cuda': " + "[1/24] nvcc ...\n" * 2000)
    monkeypatch.setattr(checks, "import_module", loader(error=compiler_output))
    with pytest.raises(TrimError, match="Error building extension 'gsplat_cuda'") as error:
        checks.check_device("cuda")
    assert "\n" not in str(error.value) and len(str(error.value)) < 600


def test_loaded_kernels_pass_and_the_cpu_needs_none(cuda_machine, monkeypatch):
    monkeypatch.setattr(checks, "import_module", loader(extension=object()))
    checks.check_device("cuda")
    monkeypatch.setattr(checks, "import_module", loader(error=AssertionError("the CPU loads no kernels")))
    checks.check_device("cpu")


def test_no_gpu_names_the_commands_cpu_option(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(TrimError, match="no CUDA GPU is available on this machine; add --device cpu"):
        checks.check_device("cuda", cpu_option="--device cpu")
