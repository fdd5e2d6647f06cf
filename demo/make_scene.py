"""Render a test scene with Blender Cycles into nerfstudio-data format: the embedded demo scene, or the
second scene of the ablation benchmark.

Run headless (Debian's ``blender`` package, Cycles on CPU)::

    blender -b --python demo/make_scene.py -- --out demo/scene
    blender -b --python demo/make_scene.py -- --layout still-life --views 80 --out outputs/scenes/still-life

``--layout room`` (the demo): a small furnished room, a textured floor and walls, a marble-like sphere,
a glossy torus, a checkered box, Suzanne and a wooden pedestal, lit by a sun and an area light. Cameras
orbit the objects at two heights, looking at the centre, so every pixel sees geometry (no empty
background), as in an indoor Mip-NeRF360 capture.

``--layout still-life`` (ablation scene 2, different in every respect): a still life on a table in front
of a curved backdrop under a graded sky dome: a mirror-like chrome ball and a brushed-metal cone (strong
view dependence), a row of thin coloured pencils and raised lettering (fine structure), a glossy ceramic
vase, a stone-tile floor (Voronoi), a hard-shadowed sun. Cameras follow a forward-facing spiral over the
front half only (two turns, varying height and distance), as in an LLFF capture.

Outputs in ``--out``:
  images/frame_XXXXX.png   RGB, ``--width`` x ``--height`` pixels
  transforms.json          exact pinhole intrinsics, camera-to-world matrices (OpenGL convention,
                           as nerfstudio expects), explicit train/eval split (every 8th view is
                           eval, like the Mip-NeRF360 protocol), ``ply_file_path``
  sparse_pc.ply            points sampled on visible surfaces, coloured from the renders: the
                           stand-in for a COLMAP sparse cloud that splatfacto initialises from
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
from pathlib import Path

import bpy  # type: ignore[import-not-found]
from mathutils import Vector  # type: ignore[import-not-found]


def parse_args() -> argparse.Namespace:
    argv = sys.argv[sys.argv.index("--") + 1 :] if "--" in sys.argv else []
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--layout", choices=sorted(LAYOUTS), default="room", help="which scene")
    parser.add_argument("--views", type=int, default=104, help="number of cameras")
    parser.add_argument("--width", type=int, default=160, help="image width in pixels")
    parser.add_argument("--height", type=int, default=120, help="image height in pixels")
    parser.add_argument("--samples", type=int, default=64, help="Cycles samples per pixel")
    parser.add_argument("--points", type=int, default=6000, help="sparse points to sample")
    parser.add_argument("--seed", type=int, default=7)
    return parser.parse_args(argv)


def material(name: str, build) -> bpy.types.Material:
    """A node material; ``build(nodes, links, bsdf)`` adds textures to a Principled BSDF."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    build(nodes, links, bsdf)
    return mat


def checker(color1, color2, scale):
    def build(nodes, links, bsdf):
        tex = nodes.new("ShaderNodeTexChecker")
        tex.inputs["Color1"].default_value = (*color1, 1)
        tex.inputs["Color2"].default_value = (*color2, 1)
        tex.inputs["Scale"].default_value = scale
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = 0.6

    return build


def ramped(kind, output, color1, color2, roughness, metallic=0.0, **inputs):
    """A texture node ``kind`` (its ``inputs`` set) whose ``output`` picks the base colour on a two-colour
    ramp from ``color1`` to ``color2``."""

    def build(nodes, links, bsdf):
        tex = nodes.new(kind)
        for name, value in inputs.items():
            tex.inputs[name].default_value = value
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color = (*color1, 1)
        ramp.color_ramp.elements[1].color = (*color2, 1)
        links.new(tex.outputs[output], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = metallic

    return build


def noise(color1, color2, scale, roughness, metallic=0.0):
    return ramped("ShaderNodeTexNoise", "Fac", color1, color2, roughness, metallic, Scale=scale, Detail=8.0)


def wood(scale):
    return ramped("ShaderNodeTexWave", "Fac", (0.25, 0.12, 0.05), (0.6, 0.38, 0.2), 0.45, Scale=scale, Distortion=4.0)


def bricks():
    def build(nodes, links, bsdf):
        tex = nodes.new("ShaderNodeTexBrick")
        tex.inputs["Color1"].default_value = (0.55, 0.2, 0.15, 1)
        tex.inputs["Color2"].default_value = (0.42, 0.16, 0.12, 1)
        tex.inputs["Mortar"].default_value = (0.8, 0.78, 0.72, 1)
        tex.inputs["Scale"].default_value = 3.0
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
        bsdf.inputs["Roughness"].default_value = 0.9

    return build


def tiles(scale):
    return ramped("ShaderNodeTexVoronoi", "Distance", (0.08, 0.07, 0.06), (0.45, 0.4, 0.32), 0.7, Scale=scale)


def stripes(color1, color2, scale):
    return ramped("ShaderNodeTexWave", "Fac", color1, color2, 0.85, Scale=scale)


def plain(color, roughness, metallic=0.0):
    def build(nodes, links, bsdf):
        bsdf.inputs["Base Color"].default_value = (*color, 1)
        bsdf.inputs["Roughness"].default_value = roughness
        bsdf.inputs["Metallic"].default_value = metallic

    return build


def sky(nodes, links, bsdf):
    """An emissive gradient, pale at the horizon, blue at the zenith (the dome's inside)."""
    coords = nodes.new("ShaderNodeTexCoord")
    separate = nodes.new("ShaderNodeSeparateXYZ")
    ramp = nodes.new("ShaderNodeValToRGB")
    ramp.color_ramp.elements[0].color = (0.85, 0.82, 0.75, 1)
    ramp.color_ramp.elements[1].color = (0.15, 0.3, 0.7, 1)
    ramp.color_ramp.elements[1].position = 0.6
    links.new(coords.outputs["Generated"], separate.inputs["Vector"])
    links.new(separate.outputs["Z"], ramp.inputs["Fac"])
    links.new(ramp.outputs["Color"], bsdf.inputs["Emission"])
    bsdf.inputs["Emission Strength"].default_value = 0.6
    bsdf.inputs["Base Color"].default_value = (0, 0, 0, 1)


def add(obj_op, mat, **kwargs) -> bpy.types.Object:
    obj_op(**kwargs)
    obj = bpy.context.active_object
    obj.data.materials.append(mat)
    return obj


def build_room() -> list[bpy.types.Object]:
    mesh = bpy.ops.mesh
    objects = [
        add(mesh.primitive_plane_add, material("floor", wood(2.0)), size=8.0),
        add(mesh.primitive_plane_add, material("wall_n", bricks()), size=8.0,
            location=(0, 4, 2), rotation=(math.pi / 2, 0, 0)),
        add(mesh.primitive_plane_add, material("wall_s", noise((0.2, 0.35, 0.5), (0.7, 0.75, 0.8), 6, 0.8)),
            size=8.0, location=(0, -4, 2), rotation=(math.pi / 2, 0, 0)),
        add(mesh.primitive_plane_add, material("wall_e", checker((0.8, 0.75, 0.6), (0.3, 0.45, 0.3), 6)),
            size=8.0, location=(4, 0, 2), rotation=(0, math.pi / 2, 0)),
        add(mesh.primitive_plane_add, material("wall_w", bricks()), size=8.0,
            location=(-4, 0, 2), rotation=(0, math.pi / 2, 0)),
        add(mesh.primitive_cylinder_add, material("pedestal", wood(5.0)), radius=0.5, depth=0.5,
            location=(0, 0, 0.25)),
        add(mesh.primitive_uv_sphere_add, material("marble", noise((0.9, 0.9, 0.88), (0.3, 0.3, 0.35), 3, 0.15)),
            radius=0.35, location=(0, 0, 0.85), segments=48, ring_count=24),
        add(mesh.primitive_torus_add, material("gold", noise((0.8, 0.6, 0.2), (0.5, 0.35, 0.1), 10, 0.3, 1.0)),
            location=(1.1, 0.4, 0.25), major_radius=0.35, minor_radius=0.12,
            rotation=(math.pi / 3, 0, 0.4)),
        add(mesh.primitive_cube_add, material("box", checker((0.85, 0.1, 0.1), (0.95, 0.95, 0.9), 4)),
            size=0.5, location=(-1.0, 0.6, 0.25), rotation=(0, 0, 0.5)),
        add(mesh.primitive_monkey_add, material("suzanne", noise((0.1, 0.4, 0.8), (0.05, 0.15, 0.4), 5, 0.4)),
            size=0.6, location=(0.3, -1.1, 0.3), rotation=(0.3, 0, 2.6)),
    ]
    bpy.context.active_object.modifiers.new("smooth", "SUBSURF").levels = 1
    for obj in objects[-5:]:
        for poly in obj.data.polygons:
            poly.use_smooth = True

    bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.3, 0.8))
    bpy.context.active_object.data.energy = 3.0
    bpy.ops.object.light_add(type="AREA", location=(0, 0, 3.9))
    bpy.context.active_object.data.energy = 400.0
    bpy.context.active_object.data.size = 3.0
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.3, 0.3, 0.32, 1)
    bpy.context.scene.world = world
    return objects


def build_still_life() -> list[bpy.types.Object]:
    mesh = bpy.ops.mesh
    dome = add(mesh.primitive_uv_sphere_add, material("sky", sky), radius=9.0, segments=32, ring_count=16)
    dome.visible_shadow = False  # the sun shines through it
    objects = [
        dome,
        add(mesh.primitive_plane_add, material("floor", tiles(15.0)), size=10.0),
        add(mesh.primitive_plane_add, material("backdrop", stripes((0.55, 0.15, 0.2), (0.85, 0.7, 0.6), 2.5)),
            size=5.0, location=(0, 2.2, 2.0), rotation=(math.pi / 2, 0, 0)),
        add(mesh.primitive_plane_add, material("screen", stripes((0.2, 0.4, 0.25), (0.7, 0.8, 0.6), 4.0)),
            size=3.0, location=(-2.2, 1.0, 1.5), rotation=(math.pi / 2, 0, 1.0)),
        add(mesh.primitive_cube_add, material("table", wood(3.0)), size=1.0, location=(0, 0, 0.72),
            scale=(1.6, 0.9, 0.06)),
        add(mesh.primitive_uv_sphere_add, material("chrome", plain((0.9, 0.9, 0.92), 0.05, 1.0)), radius=0.18,
            location=(-0.5, 0.1, 0.93), segments=48, ring_count=24),
        add(mesh.primitive_cone_add, material("copper", plain((0.85, 0.45, 0.3), 0.35, 1.0)), radius1=0.15,
            depth=0.4, location=(0.55, 0.2, 0.95)),
        add(mesh.primitive_uv_sphere_add, material("ceramic", plain((0.1, 0.5, 0.55), 0.08)), radius=1.0,
            location=(0.15, -0.05, 0.97), scale=(0.12, 0.12, 0.22), segments=48, ring_count=24),
    ]
    for i in range(9):  # pencils lying side by side
        colour = [0.5 + 0.45 * math.cos(2 * math.pi * (i / 9 + k / 3)) for k in range(3)]
        objects.append(add(mesh.primitive_cylinder_add, material(f"pencil{i}", plain(colour, 0.5)), radius=0.015,
                           depth=0.35, location=(-0.1 + 0.035 * i, -0.3, 0.765), rotation=(0, math.pi / 2, 0.2)))
    bpy.ops.object.text_add(location=(0, 0.3, 0.75), rotation=(math.pi / 2, 0, 0))
    text = bpy.context.active_object
    text.data.body, text.data.size, text.data.extrude, text.data.align_x = "TRIM", 0.22, 0.02, "CENTER"
    text.data.materials.append(material("letters", plain((0.95, 0.75, 0.1), 0.4)))
    objects.append(text)
    for obj in objects[5:8]:
        for poly in obj.data.polygons:
            poly.use_smooth = True

    bpy.ops.object.light_add(type="SUN", rotation=(0.7, -0.4, 2.4))
    bpy.context.active_object.data.energy = 2.5
    bpy.context.active_object.data.angle = 0.02  # hard shadows
    world = bpy.data.worlds.new("world")
    world.use_nodes = True
    world.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.05, 0.06, 1)
    bpy.context.scene.world = world
    return objects


def room_cameras(n: int, rng: random.Random) -> list[Vector]:
    """Two orbits (low and high) around the pedestal with a little jitter."""
    positions = []
    for i in range(n):
        high = i % 2
        angle = 2 * math.pi * i / n + rng.uniform(-0.05, 0.05)
        radius = (2.6 if high else 3.0) + rng.uniform(-0.15, 0.15)
        height = (2.2 if high else 1.0) + rng.uniform(-0.1, 0.1)
        positions.append(Vector((radius * math.cos(angle), radius * math.sin(angle), height)))
    return positions


def still_life_cameras(n: int, rng: random.Random) -> list[Vector]:
    """A forward-facing sweep over the front half: two turns of azimuth within +-50 degrees of the front,
    heights and distances varying at other rates, a little jitter."""
    positions = []
    for i in range(n):
        t = i / n
        angle = -math.pi / 2 + 0.85 * math.sin(4 * math.pi * t) + rng.uniform(-0.03, 0.03)
        radius = 1.75 + 0.25 * math.sin(10 * math.pi * t) + rng.uniform(-0.05, 0.05)
        height = 1.35 + 0.35 * math.cos(6 * math.pi * t) + rng.uniform(-0.05, 0.05)
        positions.append(Vector((radius * math.cos(angle), radius * math.sin(angle), height)))
    return positions


# layout: (build the objects, camera positions, the point the cameras look at)
LAYOUTS = {
    "room": (build_room, room_cameras, (0.0, 0.0, 0.5)),
    "still-life": (build_still_life, still_life_cameras, (0.0, 0.05, 0.9)),
}


def look_at(cam: bpy.types.Object, target: Vector) -> None:
    direction = target - cam.location
    cam.rotation_euler = direction.to_track_quat("-Z", "Y").to_euler()


def sample_surface_points(objects, count: int, rng: random.Random) -> list[Vector]:
    """Area-weighted random points on every object's evaluated mesh, in world space."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    triangles = []
    for obj in objects:
        evaluated = obj.evaluated_get(depsgraph)
        mesh = evaluated.to_mesh()
        mesh.calc_loop_triangles()
        world = obj.matrix_world
        for tri in mesh.loop_triangles:
            verts = [world @ mesh.vertices[v].co for v in tri.vertices]
            area = ((verts[1] - verts[0]).cross(verts[2] - verts[0])).length / 2
            triangles.append((area, verts))
        evaluated.to_mesh_clear()
    weights = [t[0] for t in triangles]
    points = []
    for area, (a, b, c) in rng.choices(triangles, weights=weights, k=count):
        u, v = rng.random(), rng.random()
        if u + v > 1:
            u, v = 1 - u, 1 - v
        points.append(a + u * (b - a) + v * (c - a))
    return points


def colour_points(points, cameras, images, width, height):
    """Colour each point from the first camera that sees it unoccluded; drop unseen points."""
    scene = bpy.context.scene
    depsgraph = bpy.context.evaluated_depsgraph_get()
    coloured = []
    for p in points:
        for cam, pixels in zip(cameras, images):
            local = cam.matrix_world.inverted() @ p
            if local.z >= -1e-3:
                continue
            f = cam.data.lens / cam.data.sensor_width * width
            u = width / 2 + f * local.x / -local.z
            v = height / 2 - f * local.y / -local.z
            if not (0 <= u < width and 0 <= v < height):
                continue
            origin = cam.matrix_world.translation
            direction = (p - origin)
            hit, location, *_ = scene.ray_cast(depsgraph, origin, direction.normalized())
            if not hit or (location - p).length > 1e-2:
                continue
            row = height - 1 - int(v)  # Blender image pixels start at the bottom row
            idx = 4 * (row * width + int(u))
            coloured.append((p, [round(255 * min(1.0, max(0.0, c))) for c in pixels[idx : idx + 3]]))
            break
    return coloured


def write_ply(path: Path, coloured) -> None:
    lines = [
        "ply", "format ascii 1.0", f"element vertex {len(coloured)}",
        "property float x", "property float y", "property float z",
        "property uchar red", "property uchar green", "property uchar blue", "end_header",
    ]
    lines += [f"{p.x:.6f} {p.y:.6f} {p.z:.6f} {c[0]} {c[1]} {c[2]}" for p, c in coloured]
    path.write_text("\n".join(lines) + "\n")


def main() -> None:
    args = parse_args()
    rng = random.Random(args.seed)
    out = args.out.resolve()
    (out / "images").mkdir(parents=True, exist_ok=True)
    build, cameras_of, target = LAYOUTS[args.layout]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    objects = build()

    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = args.samples
    scene.cycles.use_denoising = False
    scene.cycles.seed = args.seed
    scene.render.resolution_x, scene.render.resolution_y = args.width, args.height
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.view_settings.view_transform = "Standard"

    bpy.ops.object.camera_add()
    cam = bpy.context.active_object
    cam.data.lens, cam.data.sensor_width, cam.data.sensor_fit = 24.0, 32.0, "HORIZONTAL"
    scene.camera = cam
    focal = cam.data.lens / cam.data.sensor_width * args.width

    frames, cameras, names = [], [], []
    for i, position in enumerate(cameras_of(args.views, rng)):
        cam.location = position
        look_at(cam, Vector(target))
        bpy.context.view_layer.update()
        name = f"images/frame_{i:05d}.png"
        scene.render.filepath = str(out / name)
        bpy.ops.render.render(write_still=True)
        matrix = [list(row) for row in cam.matrix_world]
        frames.append({"file_path": name, "transform_matrix": matrix})
        snapshot = bpy.data.objects.new(f"cam{i}", cam.data)
        snapshot.matrix_world = cam.matrix_world.copy()
        cameras.append(snapshot)
        names.append(name)
        print(f"rendered {i + 1}/{args.views}", flush=True)

    eval_names = names[::8]
    transforms = {
        "camera_model": "OPENCV",
        "fl_x": focal, "fl_y": focal, "cx": args.width / 2, "cy": args.height / 2,
        "w": args.width, "h": args.height,
        "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
        "frames": frames,
        "train_filenames": [n for n in names if n not in eval_names],
        "val_filenames": eval_names,
        "test_filenames": eval_names,
        "ply_file_path": "sparse_pc.ply",
    }
    (out / "transforms.json").write_text(json.dumps(transforms, indent=1))

    images = []
    for name in names:
        img = bpy.data.images.load(str(out / name))
        images.append(list(img.pixels))
    points = sample_surface_points(objects, args.points, rng)
    coloured = colour_points(points, cameras, images, args.width, args.height)
    write_ply(out / "sparse_pc.ply", coloured)
    print(f"wrote {len(frames)} views and {len(coloured)} points to {out}")


main()
