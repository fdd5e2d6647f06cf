"""ns-eval of a splatfacto-trim run: Gaussians, exported file size and a render FPS without metric time."""

import time

import torch

from nerfstudio_trim.core.codec.nstrim import encode
from nerfstudio_trim.nerfstudio.export import scene_of
from nerfstudio_trim.nerfstudio.pipeline import TrimPipeline
from tests.test_model import trainer_from

SLOW_METRIC_S = 3.0


def test_render_fps_excludes_metric_time_and_counts_are_reported(trained_run, tmp_path):
    pipeline = trainer_from(trained_run.config, trained_run.checkpoint, tmp_path).pipeline
    assert isinstance(pipeline, TrimPipeline)
    model = pipeline.model
    metrics_of = model.get_image_metrics_and_images

    def slow_metrics(outputs, batch):
        time.sleep(SLOW_METRIC_S)  # a deliberately slow metric (LPIPS on a big image, say)
        return metrics_of(outputs, batch)

    model.get_image_metrics_and_images = slow_metrics
    metrics = pipeline.get_average_eval_image_metrics(get_std=True)
    assert metrics["fps"] < 1 / SLOW_METRIC_S  # nerfstudio's own figure includes the metric
    assert 1 / metrics["render_fps"] < SLOW_METRIC_S / 2  # ours times the render alone
    assert metrics["gaussians"] == model.num_points > 0
    expected = len(encode(scene_of(pipeline, step=None, warn_unquantized=False))) / 1e6
    assert metrics["file_size_mb"] == expected > 0
    assert "get_outputs_for_camera" not in vars(model)  # the timing wrapper is gone afterwards
    del model.get_image_metrics_and_images
    assert "file_size_mb" not in pipeline.get_average_eval_image_metrics(step=5)  # not encoded during training
    assert torch.isfinite(torch.tensor(metrics["psnr"]))
