"""The command line of the experiment entry points: ``python -m experiments.run NAME ...``.

NAME is ``main`` (the recipe we ship), a family or ``compare``. Flags mirror the settings
(``--n-trials``, ``--backbone``): each entry point takes the shared knobs and its family's,
with ``ENTRY_POINT_DEFAULTS`` over the dataclasses' defaults. MLproject is generated from
these parsers (``posterml.modeling.mlproject``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from posterml.cli_args import parse_bool, parse_whole
from posterml.modeling.families import FAMILIES, family_class
from posterml.modeling.settings import (
    CLI_ONLY,
    ENTRY_POINT_DEFAULTS,
    RECOMMENDED,
    CompareOptions,
    ExperimentConfig,
    FamilyOptions,
    shared_knobs,
)

# MLproject's experiment entry points, in its order: the recipe, each family, the comparison.
ENTRY_POINTS = ("main", *FAMILIES, "compare")


def _add_fields(parser: argparse.ArgumentParser, fields: list[dataclasses.Field]) -> None:
    for field in fields:
        kind = {bool: parse_bool, int: parse_whole, float: float}.get(type(field.default), str)
        parser.add_argument(
            f"--{field.name.replace('_', '-')}", dest=field.name, type=kind, default=field.default
        )


def build_parser(name: str, options_class: type[FamilyOptions]) -> argparse.ArgumentParser:
    """argparse for one entry point: the shared knobs and the family's own."""
    parser = argparse.ArgumentParser(
        prog=f"python -m experiments.run {name}", description=f"posterml {name} experiment"
    )
    cli_only = [f for f in dataclasses.fields(ExperimentConfig) if f.name in CLI_ONLY]
    _add_fields(parser, shared_knobs() + cli_only + list(dataclasses.fields(options_class)))
    return parser


def options_of(entry_point: str) -> type[FamilyOptions]:
    """The options dataclass of an entry point: its family's, or ``compare``'s."""
    if entry_point == "compare":
        return CompareOptions
    return family_class(family_of(entry_point)).options_class


def family_of(entry_point: str) -> str:
    return RECOMMENDED["family"] if entry_point == "main" else entry_point


def entry_point_parser(entry_point: str) -> argparse.ArgumentParser:
    """The parser of one experiment entry point, its defaults applied."""
    parser = build_parser(entry_point, options_of(entry_point))
    parser.set_defaults(**ENTRY_POINT_DEFAULTS.get(entry_point, {}))
    return parser


def parse_config_with(
    name: str,
    options_class: type[FamilyOptions],
    argv: list[str] | None = None,
    defaults: dict | None = None,
) -> ExperimentConfig:
    """A config from command-line arguments: the shared knobs and ``options_class``'s.
    ``name`` becomes the config's family (``compare`` is a name but not a family)."""
    parser = build_parser(name, options_class)
    parser.set_defaults(**(defaults or {}))
    args = vars(parser.parse_args(argv))
    own = {f.name for f in dataclasses.fields(options_class)}
    options = options_class(**{k: v for k, v in args.items() if k in own})
    return ExperimentConfig(
        family=name, options=options, **{k: v for k, v in args.items() if k not in own}
    )


def parse_config(
    family: str, argv: list[str] | None = None, entry_point: str | None = None
) -> ExperimentConfig:
    """The config of one run of ``family`` from command-line arguments.

    ``entry_point`` (default: the family) selects its defaults in ``ENTRY_POINT_DEFAULTS``
    (``main`` is the shipped recipe on the ``resnet_svm`` family)."""
    config = parse_config_with(
        entry_point or family,
        family_class(family).options_class,
        argv,
        ENTRY_POINT_DEFAULTS.get(entry_point or family, {}),
    )
    return dataclasses.replace(config, family=family)


def experiment_config(family: str, **knobs) -> ExperimentConfig:
    """A config for ``family`` from keyword knobs, shared or the family's (for scripts and
    benchmarks): ``experiment_config("resnet_svm", data=..., class_weight="balanced")``."""
    base = ExperimentConfig(family=family, options=family_class(family).options_class())
    return base.replace(**knobs)


def main(family: str, argv: list[str] | None = None, entry_point: str | None = None) -> int:
    """Command-line entry for one family: a user mistake is one clear line, not a traceback.

    An unavailable backbone, an unusable dataset or one too large for this machine's memory
    exits with status 2 and the message; anything else keeps its traceback.
    """
    from posterml.data.dataset import DatasetError
    from posterml.features.backbone_registry import BackboneUnavailableError
    from posterml.modeling.run import run_experiment
    from posterml.modeling.scale import TooLargeError

    name = entry_point or family
    try:
        run_experiment(parse_config(family, argv, entry_point))
    except (BackboneUnavailableError, DatasetError, TooLargeError) as exc:
        print(f"posterml {name}: {exc}", file=sys.stderr)
        return 2
    return 0
