"""The ns-export hook adds trimmed-splat to a union of the expected shape and leaves anything else alone."""

import typing
from dataclasses import dataclass
from typing import Union

import tyro
from typing_extensions import Annotated

from nerfstudio_trim.nerfstudio.ns_export import with_trimmed_splat


@dataclass
class First:
    x: int = 0


@dataclass
class Second:
    y: int = 0


def subcommand_names(commands) -> list:
    union = typing.get_args(commands)[0]
    return [typing.get_args(member)[1].name for member in typing.get_args(union)]


def test_adds_trimmed_splat_once_and_keeps_the_markers():
    commands = tyro.conf.FlagConversionOff[
        Union[Annotated[First, tyro.conf.subcommand(name="first")], Annotated[Second, tyro.conf.subcommand(name="second")]]
    ]
    extended = with_trimmed_splat(commands)
    assert subcommand_names(extended) == ["first", "second", "trimmed-splat"]
    assert typing.get_args(extended)[1:] == typing.get_args(commands)[1:]
    assert with_trimmed_splat(extended) is extended


def test_other_shapes_are_returned_unchanged():
    plain = Union[First, Second]
    assert with_trimmed_splat(plain) is plain
    assert with_trimmed_splat(First) is First
    single = Annotated[First, "marker"]
    assert with_trimmed_splat(single) is single
