"""The PLY reader: inverse of our writer, tolerant of other writers' property order and types, strict on
anything that is not a Gaussian-splat PLY."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from nerfstudio_trim.core.codec.ply import ply_bytes, read_ply


def random_params(count: int, degree: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    k = (degree + 1) ** 2 - 1
    return {
        "means": torch.randn(count, 3, generator=g), "scales": torch.randn(count, 3, generator=g),
        "quats": torch.randn(count, 4, generator=g), "opacities": torch.randn(count, 1, generator=g),
        "features_dc": torch.randn(count, 3, generator=g), "features_rest": torch.randn(count, k, 3, generator=g),
    }  # fmt: skip


@pytest.mark.parametrize("degree", [0, 1, 3])
def test_read_inverts_write(tmp_path, degree):
    params = random_params(57, degree)
    path = tmp_path / "s.ply"
    path.write_bytes(ply_bytes(params, degree))
    read, read_degree = read_ply(path)
    assert read_degree == degree
    for name, value in params.items():
        assert torch.equal(read[name], value), name


def test_reads_another_writers_order_types_and_extra_elements(tmp_path):
    """Properties shuffled, doubles and a uchar colour added, a second element after the vertices."""
    params = random_params(20, 1, seed=1)
    rest = params["features_rest"].transpose(1, 2).reshape(20, -1)
    columns = {"x": params["means"][:, 0], "y": params["means"][:, 1], "z": params["means"][:, 2],
               "opacity": params["opacities"][:, 0], "red": torch.zeros(20)}  # fmt: skip
    columns |= {f"f_dc_{i}": params["features_dc"][:, i] for i in range(3)}
    columns |= {f"f_rest_{i}": rest[:, i] for i in range(rest.shape[1])}
    columns |= {f"scale_{i}": params["scales"][:, i] for i in range(3)}
    columns |= {f"rot_{i}": params["quats"][:, i] for i in range(4)}
    names = list(columns)[::-1]
    types = {name: ("u1" if name == "red" else "<f8") for name in names}
    table = np.zeros(20, dtype=[(name, types[name]) for name in names])
    for name in names:
        table[name] = columns[name].numpy()
    header = ["ply", "format binary_little_endian 1.0", "comment from elsewhere", "element vertex 20"]
    header += [f"property {'uchar' if types[n] == 'u1' else 'double'} {n}" for n in names]
    header += ["element face 0", "property list uchar int vertex_indices", "end_header"]
    path = tmp_path / "other.ply"
    path.write_bytes(("\n".join(header) + "\n").encode() + table.tobytes())
    read, degree = read_ply(path)
    assert degree == 1
    for name, value in params.items():
        assert torch.equal(read[name], value.float()), name


def test_rejects_what_is_not_a_binary_splat_ply(tmp_path):
    good = ply_bytes(random_params(10, 1), 1)
    cases = {
        "truncated": good[:-7],
        "ascii": good.replace(b"binary_little_endian", b"ascii", 1),
        "no end_header": good.split(b"end_header")[0],
        "not ply": b"PK\x03\x04" + good,
        "no opacity": good.replace(b"property float opacity", b"property float opacitz", 1),
        "incomplete SH": good.replace(b"property float f_rest_8\n", b"", 1),
    }
    for what, data in cases.items():
        path = tmp_path / f"{what}.ply"
        path.write_bytes(data)
        with pytest.raises(ValueError):
            read_ply(path)


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
    params, read_degree = read_ply(ply)
    assert read_degree == degree and all(value.shape[0] == 0 for value in params.values())
    assert params["features_rest"].shape == (0, (degree + 1) ** 2 - 1, 3)
    vertices = PlyData.read(str(ply))["vertex"]
    assert vertices.count == 0 and len(vertices.properties) == 17 + 3 * ((degree + 1) ** 2 - 1)
