"""Reading a run's config.yml without running what it names.

nerfstudio writes config.yml with ``yaml.dump`` and reads it with PyYAML's unrestricted ``yaml.Loader``,
which calls any function a file names (``!!python/object/apply:os.system [...]``). ``ConfigLoader`` builds
only what nerfstudio configs hold, from YAML's plain types and these tags:

- ``!!python/object:M.C``: an instance of a dataclass C defined in ``nerfstudio`` or ``nerfstudio_trim``,
  created without calling ``__init__`` and given the mapping as its state (as ``yaml.Loader`` does);
- ``!!python/object/apply:M.C [args]``: ``C(*args)`` for a ``pathlib`` path class, or an ``enum.Enum``
  subclass defined in ``nerfstudio`` or ``nerfstudio_trim``;
- ``!!python/name:M.C``: a class (not a function) defined in ``nerfstudio``, ``nerfstudio_trim`` or
  ``torch.optim`` (e.g. a config's ``_target``);
- ``!!python/tuple``.

Modules are imported only from those packages (and ``pathlib``). Any other tag is refused.
"""

from __future__ import annotations

import dataclasses
import enum
import importlib
import pathlib
from pathlib import Path
from typing import Any, Iterator, Sequence

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import Node, ScalarNode, SequenceNode

from nerfstudio_trim.errors import TrimError

CONFIG_PACKAGES = ("nerfstudio", "nerfstudio_trim")
"""Packages whose dataclasses and enums a config may hold."""
CLASS_PACKAGES = (*CONFIG_PACKAGES, "torch.optim")
"""Packages whose classes a config may name (``!!python/name:``)."""
_YAML_TAG = "tag:yaml.org,2002:"


class RefusedTag(ConstructorError):
    """A tag, or the object it names, that a nerfstudio config does not hold."""

    def __init__(self, node: Node, reason: str):
        self.tag = node.tag.replace(_YAML_TAG, "!!", 1)
        self.line = node.start_mark.line + 1
        self.reason = reason
        super().__init__(None, None, f"{self.tag}: {reason}", node.start_mark)


def _in_packages(module: str, packages: Sequence[str]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


class ConfigConstructor(yaml.constructor.SafeConstructor):
    """YAML's plain types (as ``yaml.SafeLoader``) and the Python tags of nerfstudio configs."""

    yaml_constructors = dict(yaml.constructor.SafeConstructor.yaml_constructors)
    yaml_multi_constructors = dict(yaml.constructor.SafeConstructor.yaml_multi_constructors)

    def find_class(self, name: str, node: Node, packages: Sequence[str]) -> Any:
        """The object ``name`` (``module.attribute``) names, imported only from ``packages``."""
        module, _, attribute = name.rpartition(".")
        if not _in_packages(module, packages):
            raise RefusedTag(node, f"only names from {', '.join(packages)} are loaded")
        try:
            found = getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError):
            raise RefusedTag(node, "no such class") from None
        if not isinstance(found, type) or not _in_packages(found.__module__, packages):
            raise RefusedTag(node, f"not a class defined in {', '.join(packages)}")
        return found

    def construct_undefined(self, node: Node) -> Any:
        raise RefusedTag(node, "not a tag nerfstudio configs use")

    def construct_class_name(self, suffix: str, node: Node) -> type:
        """``!!python/name:M.C ''``: the class itself."""
        if not isinstance(node, ScalarNode) or node.value:
            raise RefusedTag(node, "expected an empty value")
        return self.find_class(suffix, node, CLASS_PACKAGES)

    def construct_config_object(self, suffix: str, node: Node) -> Iterator[Any]:
        """``!!python/object:M.C {field: value, ...}``: a config dataclass, its fields set from the mapping."""
        cls = self.find_class(suffix, node, CONFIG_PACKAGES)
        if not dataclasses.is_dataclass(cls):
            raise RefusedTag(node, "not a dataclass")
        instance = cls.__new__(cls)
        yield instance  # created first, filled afterwards: the mapping may refer back to it
        state = self.construct_mapping(node, deep=hasattr(instance, "__setstate__"))
        if any(not isinstance(key, str) or key.startswith("__") for key in state):
            raise RefusedTag(node, "field names must be plain strings")
        if hasattr(instance, "__setstate__"):
            instance.__setstate__(state)
        else:
            vars(instance).update(state)

    def construct_applied_class(self, suffix: str, node: Node) -> Any:
        """``!!python/object/apply:M.C [arg, ...]``: ``C(*args)`` of a pathlib path or a config enum."""
        cls = self.find_class(suffix, node, (*CONFIG_PACKAGES, "pathlib"))
        path = cls.__module__ == "pathlib" and issubclass(cls, pathlib.PurePath)
        if not (path or (issubclass(cls, enum.Enum) and _in_packages(cls.__module__, CONFIG_PACKAGES))):
            raise RefusedTag(node, "only pathlib paths and nerfstudio enums are constructed")
        if not isinstance(node, SequenceNode):
            raise RefusedTag(node, "expected a list of arguments")
        return cls(*self.construct_sequence(node, deep=True))

    def construct_tuple(self, node: Node) -> tuple:
        return tuple(self.construct_sequence(node))


ConfigConstructor.add_constructor(None, ConfigConstructor.construct_undefined)  # every tag not registered below
ConfigConstructor.add_constructor(f"{_YAML_TAG}python/tuple", ConfigConstructor.construct_tuple)
for _prefix, _construct in (
    ("python/name:", ConfigConstructor.construct_class_name),
    ("python/object:", ConfigConstructor.construct_config_object),
    ("python/object/apply:", ConfigConstructor.construct_applied_class),
):
    ConfigConstructor.add_multi_constructor(_YAML_TAG + _prefix, _construct)


class ConfigLoader(
    yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser, yaml.composer.Composer,
    ConfigConstructor, yaml.resolver.Resolver,
):  # fmt: skip
    """``yaml.load(text, Loader=ConfigLoader)``: a nerfstudio config.yml, refusing everything else."""

    def __init__(self, stream: Any):
        yaml.reader.Reader.__init__(self, stream)
        yaml.scanner.Scanner.__init__(self)
        yaml.parser.Parser.__init__(self)
        yaml.composer.Composer.__init__(self)
        ConfigConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)


def load_config(path: Path) -> Any:
    """The object a config.yml holds (a nerfstudio ``TrainerConfig`` for a run), read with ``ConfigLoader``.

    Raises:
        TrimError: the file cannot be read, is not YAML, holds a tag or an object a nerfstudio config
            does not (named, with its line), or its objects cannot be built.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise TrimError(f"cannot read config {path}: {exc.strerror or exc}") from None
    try:
        return yaml.load(data, Loader=ConfigLoader)
    except RefusedTag as exc:
        raise TrimError(f"{path}, line {exc.line}: refused {exc.tag} ({exc.reason})") from None
    except Exception as exc:  # a config whose objects cannot be built is unreadable, whatever the cause
        raise TrimError(f"{path} is not a readable nerfstudio config ({exc.__class__.__name__})") from None
