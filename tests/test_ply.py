"""The PLY reader and writer: inverse of each other, tolerant of other writers' layouts (property order, types,
extra properties, +-inf opacities, Mip-Splatting's 3D filter, SH degree 0's colour convention), strict and
clear about anything that is not a Gaussian-splat PLY."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfstudio_trim.core.codec.ply import SH_C0, PlyError, ply_bytes, read_ply


def random_params(count: int, degree: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return {
        "means": torch.randn(count, 3, generator=g), "scales": torch.randn(count, 3, generator=g),
        "quats": torch.randn(count, 4, generator=g), "opacities": torch.randn(count, 1, generator=g),
        "features_dc": torch.randn(count, 3, generator=g), "features_rest": torch.randn(count, k, 3, generator=g),
    }  # fmt: skip


@pytest.mark.parametrize("degree", [0, 1, 3])
@pytest.mark.parametrize("count", [0, 57])
def test_read_inverts_write(tmp_path, degree, count):
    params = random_params(count, degree)
    path = tmp_path / "s.ply"
    path.write_bytes(ply_bytes(params, degree))
    read = read_ply(path)
    assert read.sh_degree == degree and read.notes == []
    for name, value in params.items():
        if degree == 0 and name == "features_dc":  # through the PLY convention and back: float rounding
            torch.testing.assert_close(read.params[name], value, atol=1e-4, rtol=1e-4)
        else:
            assert torch.equal(read.params[name], value), name


def test_degree_0_colours_follow_the_ply_convention(tmp_path):
    """Another viewer shows 0.5 + C0 * f_dc; splatfacto renders sigmoid(features_dc): the same colour."""
    params = random_params(20, 0)
    path = tmp_path / "s.ply"
    path.write_bytes(ply_bytes(params, 0))
    header_size = path.read_bytes().index(b"end_header\n") + len(b"end_header\n")
    table = np.frombuffer(path.read_bytes()[header_size:], dtype="<f4").reshape(20, -1)
    torch.testing.assert_close(torch.from_numpy(0.5 + SH_C0 * table[:, 6:9]), torch.sigmoid(params["features_dc"]))


def write_table(path, columns: dict, extra_header=(), types=None) -> None:
    names = list(columns)
    types = types or {}
    table = np.zeros(len(next(iter(columns.values()))), dtype=[(name, types.get(name, "<f4")) for name in names])
    for name in names:
        table[name] = np.asarray(columns[name])
    kind = {"<f4": "float", "<f8": "double", "u1": "uchar"}
    header = ["ply", "format binary_little_endian 1.0", "comment from elsewhere", f"element vertex {len(table)}"]
    header += [f"property {kind[types.get(n, '<f4')]} {n}" for n in names] + list(extra_header) + ["end_header"]
    path.write_bytes(("\n".join(header) + "\n").encode() + table.tobytes())


def inria_columns(params: dict) -> dict:
    count = params["means"].shape[0]
    rest = params["features_rest"].transpose(1, 2).reshape(count, -1)
    columns = {"x": params["means"][:, 0], "y": params["means"][:, 1], "z": params["means"][:, 2],
               "opacity": params["opacities"][:, 0]}  # fmt: skip
    columns |= {f"f_dc_{i}": params["features_dc"][:, i] for i in range(3)}
    columns |= {f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])}
    columns |= {f"scale_{i}": params["scales"][:, i] for i in range(3)}
    columns |= {f"rot_{i}": params["quats"][:, i] for i in range(4)}
    return columns


def test_reads_another_writers_order_types_extra_properties_and_elements(tmp_path):
    """Properties shuffled, doubles, an extra uchar colour and a 'transform' property, a second element."""
    params = random_params(20, 1, seed=1)
    columns = inria_columns(params) | {"red": torch.zeros(20), "transform": torch.zeros(20)}
    names = list(columns)[::-1]
    types = {name: ("u1" if name == "red" else "<f8") for name in names}
    path = tmp_path / "other.ply"
    write_table(path, {n: columns[n].numpy() for n in names}, ["element face 0", "property list uchar int vertex_indices"], types)
    read = read_ply(path)
    assert read.sh_degree == 1 and read.notes == ["ignored per-Gaussian properties: red, transform"]
    for name, value in params.items():
        assert torch.equal(read.params[name], value.float()), name


def test_infinite_opacities_are_clamped_and_counted(tmp_path):
    params = random_params(10, 0)
    params["opacities"][2] = float("inf")
    params["opacities"][5] = float("-inf")
    path = tmp_path / "inf.ply"
    write_table(path, {k: v.numpy() for k, v in inria_columns(params).items()})
    read = read_ply(path)
    assert read.notes[0].startswith("2 opacities of +-inf") and torch.isfinite(read.params["opacities"]).all()
    assert float(read.params["opacities"][2]) > 11 and float(read.params["opacities"][5]) < -11


def test_mip_splatting_3d_filter_is_folded_in(tmp_path):
    params = random_params(30, 0, seed=2)
    filter_3d = torch.rand(30) * 0.05
    path = tmp_path / "mip.ply"
    write_table(path, {**{k: v.numpy() for k, v in inria_columns(params).items()}, "filter_3D": filter_3d.numpy()})
    read = read_ply(path)
    variance = torch.exp(2 * params["scales"]) + filter_3d[:, None] ** 2
    torch.testing.assert_close(torch.exp(2 * read.params["scales"]), variance, rtol=1e-4, atol=1e-7)
    assert bool((torch.sigmoid(read.params["opacities"]) <= torch.sigmoid(params["opacities"]) + 1e-6).all())
    assert "filter_3D folded" in read.notes[0]


@pytest.mark.parametrize(
    "what, change, message",
    [
        ("truncated", lambda d: d[:-7], "truncated"),
        ("ascii", lambda d: d.replace(b"binary_little_endian", b"ascii", 1), "is a ascii PLY"),
        ("no end_header", lambda d: d.split(b"end_header")[0], "complete header"),
        ("not ply", lambda d: b"PK\x03\x04" + d, "is not a PLY file"),
        ("no opacity", lambda d: d.replace(b"property float opacity", b"property float opacitz", 1), "missing opacity"),
        ("incomplete SH", lambda d: d.replace(b"property float f_rest_8\n", b"", 1), "are not an SH degree"),
        ("a list", lambda d: d.replace(b"property float nx", b"property list uchar int nx", 1), "unsupported vertex property"),
        ("faces first", lambda d: d.replace(b"element vertex 10", b"element face 0\nelement vertex 10", 1), "not vertex"),
        ("compressed", lambda d: d.replace(b"element vertex 10", b"element chunk 1\nproperty float min_x\nelement vertex 10\n"
                                           b"property uint packed_position", 1), "PlayCanvas compressed PLY"),
        ("nan", lambda d: d[:-4] + np.array([np.nan], dtype="<f4").tobytes(), "NaN or infinite quats"),
    ],
)  # fmt: skip
def test_refuses_what_is_not_a_usable_splat_ply_in_one_line(tmp_path, what, change, message):
    path = tmp_path / f"{what}.ply"
    path.write_bytes(change(ply_bytes(random_params(10, 1), 1)))
    with pytest.raises(PlyError, match=message) as error:
        read_ply(path)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("degree", [0, 3])
def test_a_scene_of_no_gaussians_decodes_to_an_empty_ply(tmp_path, degree):
    from plyfile import PlyData

    from nerfstudio_trim.cli import Decode
    from nerfstudio_trim.core.codec.nstrim import encode
    from tests.test_codec import scene_of

    scene = tmp_path / "empty.nstrim"
    scene.write_bytes(encode(scene_of(0, degree)))
    ply = tmp_path / "empty.ply"
    Decode(scene, ply).main()
    read = read_ply(ply)
    assert read.sh_degree == degree and all(value.shape[0] == 0 for value in read.params.values())
    assert read.params["features_rest"].shape == (0, (degree + 1) ** 2 - 1, 3)
    vertices = PlyData.read(str(ply))["vertex"]
    assert vertices.count == 0 and len(vertices.properties) == 17 + 3 * ((degree + 1) ** 2 - 1)
