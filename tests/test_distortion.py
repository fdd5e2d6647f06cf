"""Datasets taken through a lens with distortion (OPENCV k1, k2, p1, p2): nerfstudio undistorts and crops each
image when it first reads it and then rewrites its camera's intrinsics and size, so whatever renders a view
must read the images before it takes the cameras."""

import json
from pathlib import Path

import pytest
import torch
import yaml
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from nerfstudio_trim.core.codec.nstrim import read_file
from nerfstudio_trim.nerfstudio.evaluate import evaluate_scene
from nerfstudio_trim.nerfstudio.trimming import ModelHost, TrainingViews
from tests.conftest import REPO, ns
from tests.test_model import trainer_from

CPU = torch.device("cpu")


def test_the_trimmers_views_pair_each_undistorted_image_with_its_camera(distorted_scene):
    config = FullImageDatamanagerConfig(dataparser=NerfstudioDataParserConfig(data=distorted_scene))
    views = TrainingViews(config.setup(device=CPU), CPU)
    pairs = [views[0]]  # first, before anything has read the images
    pairs += [views[index] for index in range(1, len(views))]
    sizes = []
    for index, (camera, batch) in enumerate(pairs):
        height, width = batch["image"].shape[:2]
        assert (height, width) == (int(camera.height), int(camera.width)), f"view {index}"
        sizes.append((height, width))
    meta = json.loads((distorted_scene / "transforms.json").read_text())
    assert all(h <= meta["h"] and w <= meta["w"] for h, w in sizes) and (meta["h"], meta["w"]) not in sizes


@pytest.fixture(scope="module")
def baseline_file(tmp_path_factory) -> Path:
    """The committed demo baseline (trained on the demo scene's pinhole images) as a .nstrim file."""
    out = tmp_path_factory.mktemp("baseline") / "export"
    config = "demo/baseline/splatfacto-trim/config.yml"  # names its data relative to the repository
    result = ns("ns-trim", "export", "--load-config", config, "--output-dir", str(out), cwd=REPO, cpu_only=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return out / "scene.nstrim"


@pytest.mark.slow
def test_ns_trim_eval_of_a_file_on_a_distorted_dataset(baseline_file, tiny_scene, distorted_scene, tmp_path):
    output = tmp_path / "eval.json"
    result = ns("ns-trim", "eval", str(baseline_file), "--data", str(distorted_scene), "--device", "cpu",
                "--output-path", str(output), cwd=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    distorted = json.loads(output.read_text())["results"]
    pinhole = evaluate_scene(read_file(baseline_file), tiny_scene, CPU)  # the same views without the lens
    assert distorted["images"] == pinhole["images"] > 0
    # Undistortion resamples the images once more (slightly blurred): about 1 dB lower here. Rendered with the
    # lens ignored, the file scores about 8 dB lower than on the pinhole images.
    assert pinhole["psnr"] - 2.0 < distorted["psnr"] < pinhole["psnr"] + 0.5


@pytest.mark.slow
def test_a_run_evaluates_and_scores_on_a_distorted_dataset(trained_run, distorted_scene, tmp_path):
    """The trained run on the distorted views: evaluated as ns-eval does (the pipeline's averaged metrics),
    and the Trimmer's training-view PSNR and score pass."""
    config = yaml.load(trained_run.config.read_text(), Loader=yaml.Loader)
    config.data = config.pipeline.datamanager.data = config.pipeline.datamanager.dataparser.data = distorted_scene
    (tmp_path / "config.yml").write_text(yaml.dump(config))
    pipeline = trainer_from(tmp_path / "config.yml", trained_run.checkpoint, tmp_path).pipeline
    metrics = pipeline.get_average_eval_image_metrics()
    assert 5.0 < metrics["psnr"] < 60.0 and metrics["gaussians"] == pipeline.model.num_points
    heights = {int(view["image"].shape[0]) for view in pipeline.datamanager.cached_eval}
    assert max(heights) < json.loads((distorted_scene / "transforms.json").read_text())["h"]  # undistorted, cropped
    model, views = pipeline.model, TrainingViews(pipeline.datamanager, pipeline.model.device)
    host = ModelHost(model, model.trimmer, views, pause=lambda: None)
    assert 5.0 < host.training_psnr() < 60.0
    scores = host.scores().values
    assert scores.shape == (model.num_points,) and bool(torch.isfinite(scores).all()) and float(scores.max()) > 0
