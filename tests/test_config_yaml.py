"""config.yml is read with a loader that builds nerfstudio configs and nothing else: a config naming a
command to run is refused, with one line naming the tag, and the command never runs."""

from pathlib import Path

import pytest
import yaml

from nerfstudio_trim.errors import TrimError
from nerfstudio_trim.nerfstudio.config_yaml import load_config
from tests.conftest import REPO

DEMO_CONFIG = REPO / "demo" / "baseline" / "splatfacto-trim" / "config.yml"


def test_the_demo_baseline_config_loads_as_pyyaml_loads_it():
    ours = load_config(DEMO_CONFIG)
    assert ours == yaml.load(DEMO_CONFIG.read_text(), Loader=yaml.Loader)  # our own file: the full loader is safe
    assert type(ours).__name__ == "TrimTrainerConfig" and ours.pipeline.model.trim.enabled
    assert ours.data == Path("demo/scene") and ours.optimizers["means"]["optimizer"]._target.__name__ == "Adam"


@pytest.mark.slow
def test_a_freshly_trained_runs_config_loads_as_pyyaml_loads_it(trained_run):
    assert load_config(trained_run.config) == yaml.load(trained_run.config.read_text(), Loader=yaml.Loader)


def _command(marker: Path) -> str:
    return f'!!python/object/apply:os.system ["touch {marker}"]'


def test_a_command_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    config = tmp_path / "config.yml"
    config.write_text(_command(marker) + "\n")
    with pytest.raises(TrimError, match=r"config\.yml, line 1: refused !!python/object/apply:os\.system \("):
        load_config(config)
    assert not marker.exists()


def test_a_command_deep_inside_a_valid_config_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    text = DEMO_CONFIG.read_text()
    anchor = "    eval_image_indices: !!python/tuple\n    - 0\n"
    assert anchor in text
    line = text[: text.index(anchor)].count("\n") + 3
    config = tmp_path / "config.yml"
    config.write_text(text.replace(anchor, anchor + f"    - {_command(marker)}\n"))
    with pytest.raises(TrimError, match=rf"line {line}: refused !!python/object/apply:os\.system"):
        load_config(config)
    assert not marker.exists()


@pytest.mark.parametrize(
    "document, reason",
    [
        ("!!python/name:os.system ''", "only names from"),
        ("!!python/object/apply:builtins.eval ['1']", "only names from"),
        ("a: [!!python/object/apply:subprocess.call [[touch, x]]]", "only names from"),
        ("!!python/object/new:os.system ['x']", "not a tag nerfstudio configs use"),
        ("!!python/module:os ''", "not a tag nerfstudio configs use"),
        ("!!python/name:nerfstudio.utils.eval_utils.eval_setup ''", "not a class"),
        ("!!python/name:nerfstudio_trim.nerfstudio.export.torch ''", "not a class"),
        ("!!python/name:nerfstudio.engine.trainer.Path ''", "not a class defined in"),  # imported there
        ("!!python/name:nerfstudio.engine.trainer.os ''", "not a class"),
        ("!!python/object:nerfstudio.engine.trainer.Trainer {}", "not a dataclass"),
        ("!!python/object/apply:nerfstudio.configs.base_config.MachineConfig []", "only pathlib paths and nerfstudio enums"),
        ("!!python/object/apply:pathlib.PosixPath {args: [a], state: {}}", "expected a list of arguments"),
        ("!!python/object:nerfstudio.configs.base_config.MachineConfig {__class__: x}", "field names"),
        ("!!python/name:nerfstudio_evil.module.Class ''", "only names from"),
    ],
)  # fmt: skip
def test_other_objects_are_refused(tmp_path, document, reason):
    config = tmp_path / "config.yml"
    config.write_text(document)
    with pytest.raises(TrimError, match="refused") as caught:
        load_config(config)
    assert reason in str(caught.value) and "\n" not in str(caught.value)


def test_plain_yaml_and_broken_files_are_one_line_errors(tmp_path):
    config = tmp_path / "config.yml"
    config.write_text("a: [1, 2\n")
    with pytest.raises(TrimError, match="is not a readable nerfstudio config"):
        load_config(config)
    with pytest.raises(TrimError, match="cannot read config"):
        load_config(tmp_path / "missing.yml")
    config.write_text("a: [1, 2.5, null, text]\n")
    assert load_config(config) == {"a": [1, 2.5, None, "text"]}


def test_export_and_bench_refuse_a_hostile_config_before_any_work(tmp_path):
    from nerfstudio_trim.bench import Bench
    from nerfstudio_trim.nerfstudio.export import ExportTrimmedSplat

    marker = tmp_path / "pwned"
    config = tmp_path / "config.yml"
    config.write_text(DEMO_CONFIG.read_text().replace("method_name: splatfacto-trim", f"method_name: {_command(marker)}"))
    with pytest.raises(TrimError, match="refused !!python/object/apply:os.system"):
        ExportTrimmedSplat(load_config=config, output_dir=tmp_path / "export").main()
    with pytest.raises(TrimError, match="refused !!python/object/apply:os.system"):
        Bench(baseline=config, data=tmp_path, output_dir=tmp_path / "bench", device="cpu").main()
    assert not marker.exists() and not (tmp_path / "export").exists() and not (tmp_path / "bench").exists()


def test_export_refuses_to_write_over_its_config(tmp_path):
    from nerfstudio_trim.nerfstudio.export import ExportTrimmedSplat

    (tmp_path / "scene.nstrim").symlink_to(DEMO_CONFIG)
    with pytest.raises(TrimError, match="it is the input"):
        ExportTrimmedSplat(load_config=DEMO_CONFIG, output_dir=tmp_path).main()
    assert load_config(DEMO_CONFIG).method_name == "splatfacto-trim"
