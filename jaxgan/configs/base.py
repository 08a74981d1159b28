"""What every config shares: fields that carry their own help, flag and bounds, one check, one record.

A config is a frozen dataclass (hashable, so a jitted function can take it as a static
argument) whose fields are made with ``setting(default, help, ...)``. Everything else is
derived from those fields, so each setting is written once:

- the command-line flag (``experiments._cli.add_config_flags``): its name, type, default and help;
- ``check(config)``: bounds, choices and the float32 precision a value is used in, each broken
  rule one ``UserError`` sentence that names the flag;
- ``to_record(config, kind)`` / ``from_record(cls, record)``: the JSON record saved beside every
  checkpoint, and back (a field an older record lacks takes its ``legacy`` value, what the code
  that wrote the record did);
- ``resume_keys(cls)``: the fields a checkpoint must share with a run that resumes it.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from jaxgan.errors import UserError
from jaxgan.runtime.precision import require_32bit

_NO_LEGACY = object()


@dataclasses.dataclass(frozen=True)
class Spec:
    """A field's help text, flag and rules (see ``setting``)."""

    help: str
    flag: str | None
    aliases: tuple[str, ...] = ()  # other names the same flag answers to (``--learning-rate`` for ``--lr``)
    minimum: float | None = None
    maximum: float | None = None
    below: float | None = None  # an exclusive upper bound
    above: float | None = None  # an exclusive lower bound
    choices: tuple | None = None
    item: str | None = None  # for a tuple: what one element is called in messages
    resume: bool = True
    legacy: Any = _NO_LEGACY
    cli: dict | None = None  # extra argparse keyword arguments (type, nargs, choices, metavar)
    parse: Callable[[Any], Any] | None = None  # the parsed flag value -> the field value
    note: str | None = None  # why the upper bound is what it is, added to its range error


def setting(default: Any, help: str, *, flag: str | None = "", aliases: Sequence[str] = (),
            minimum: float | None = None, maximum: float | None = None, below: float | None = None,
            above: float | None = None,
            choices: Sequence | None = None, item: str | None = None, resume: bool = True,
            legacy: Any = _NO_LEGACY, cli: dict | None = None,
            parse: Callable[[Any], Any] | None = None, note: str | None = None) -> Any:
    """A dataclass field with its rules: ``minimum``/``maximum`` (inclusive), ``above``/``below``
    (exclusive, checked in float32 for floats), ``choices``; for tuples every element is checked.

    ``flag`` is the command-line flag (default: ``--`` and the name with dashes; None: no flag);
    ``aliases`` are other names it answers to (the help lists them, messages use ``flag``).
    ``resume=False`` fields may differ between a checkpoint and the run that resumes it.
    ``legacy`` is the value a record written before the field existed stands for; ``note`` says why
    the upper bound is what it is (a message about the upper bound ends with it).
    """
    spec = Spec(help=help, flag=flag, aliases=tuple(aliases), minimum=minimum, maximum=maximum, below=below,
                above=above,
                choices=None if choices is None else tuple(choices), item=item, resume=resume,
                legacy=legacy, cli=cli, parse=parse, note=note)
    return dataclasses.field(default=default, metadata={"spec": spec})


def spec_of(field: dataclasses.Field) -> Spec | None:
    """The field's Spec, or None for a field made without ``setting``."""
    return field.metadata.get("spec")


def flag_of(field: dataclasses.Field) -> str | None:
    """The field's command-line flag (``--batch-size`` for ``batch_size``), or None."""
    spec = spec_of(field)
    if spec is None or spec.flag is None:
        return None
    return spec.flag or "--" + field.name.replace("_", "-")


def flag_names(cls: type) -> dict[str, str]:
    """Each field's name -> its command-line flag (the field's name when it has none), for messages."""
    return {f.name: flag_of(f) or f.name for f in dataclasses.fields(cls)}


def as_float32(value: float) -> float:
    """``value`` as the float32 the device computes with (inf where it overflows)."""
    with np.errstate(over="ignore"):
        return float(np.float32(value))


def _shown_bound(bound: float) -> str:
    """A bound for a message: an int as it is, a float in its shortest form (0, 1, 0.5)."""
    return f"{bound:g}" if isinstance(bound, float) else f"{bound}"


def _check_value(name: str, value: Any, spec: Spec, is_float: bool) -> None:
    """Raises UserError for the first rule ``value`` breaks; ``name`` is how the message calls it.

    A float is checked as given and as float32 rounds it, the precision training uses it in:
    0.99999999 is 1.0 there (an EMA decay or Adam beta of 1 makes the bias correction 0/0), 1e-50
    is 0 (no learning rate), 1e39 is infinite. A rule broken only in float32 is named as such.
    """
    if spec.choices is not None and value not in spec.choices:
        raise UserError(f"unknown {name} {value!r}; choose from {', '.join(map(str, spec.choices))}")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return
    why = f" ({spec.note})" if spec.note else ""
    if is_float and not math.isfinite(value):
        raise UserError(f"{name} must be a finite number, not {value}")
    used = as_float32(value) if is_float else value
    shown = (f"{value}" if used == value
             else f"{value!r}, which is {used!r} in float32, the precision it is used in")
    if not math.isfinite(used):
        raise UserError(f"{name} must be a finite number, not {shown}")
    low, high = spec.minimum, spec.maximum
    if spec.item is not None and low is not None and high is not None and not low <= used <= high:
        raise UserError(f"{name} {value} is out of range: it must be between {_shown_bound(low)} and "
                        f"{_shown_bound(high)}{why}")
    if low is not None and used < low:  # the note explains the upper bound: "at least 1" needs none
        raise UserError(f"{name} must be at least {_shown_bound(low)}, not {shown}")
    if high is not None and used > high:
        raise UserError(f"{name} must be at most {_shown_bound(high)}, not {shown}{why}")
    if spec.above is not None and not used > spec.above:
        raise UserError(f"{name} must be above {_shown_bound(spec.above)}, not {shown}")
    if spec.below is not None and not used < spec.below:
        raise UserError(f"{name} must be below {_shown_bound(spec.below)}, not {shown}{why}")


# The largest seed a JAX key holds: jax.random.PRNGKey keeps 32 bits, so 2**32 draws seed 0's numbers.
MAX_SEED = 2**32 - 1
SEED_NOTE = "a JAX random key keeps 32 bits of its seed, so a larger one would draw a smaller seed's numbers"


# The largest value of an int32, the type every step and epoch counter is held in on the device.
INT32_MAX = 2**31 - 1
STEP_NOTE = "the step counter is an int32, and every epoch takes at least one step"


def check_total_steps(epochs: int, steps_per_epoch: int, what: str) -> None:
    """Raises UserError when ``epochs`` of ``steps_per_epoch`` would pass the int32 step counter.

    Checked before the run starts, so a run is refused up front instead of wrapping its counter
    (and its learning-rate schedule, its sample and checkpoint steps) halfway through. ``what``
    says where the steps per epoch come from, for the message.
    """
    total = epochs * steps_per_epoch
    if total > INT32_MAX:
        raise UserError(f"--epochs {epochs} of {steps_per_epoch} steps each ({what}) make {total} steps, "
                        f"beyond the int32 step counter (at most {INT32_MAX}); ask for at most "
                        f"{INT32_MAX // steps_per_epoch} epochs")


def seed_setting(help: str) -> Any:
    """A seed field: 0 .. MAX_SEED, with the reason for the upper bound."""
    return setting(0, help, minimum=0, maximum=MAX_SEED, note=SEED_NOTE)


def _is_float_field(cls: type, field: dataclasses.Field) -> bool:
    """Whether a field holds floats (so its bounds are checked in float32)."""
    hint = typing.get_type_hints(cls)[field.name]
    return hint is float or float in typing.get_args(hint)


def check(config: Any) -> None:
    """Raises one UserError for the first field of ``config`` that breaks its rules (see ``setting``), or
    when JAX's 64-bit mode would compute them in another precision than float32 and int32."""
    require_32bit()
    for field in dataclasses.fields(config):
        spec = spec_of(field)
        if spec is None:
            continue
        value = getattr(config, field.name)
        name = flag_of(field) or field.name
        is_float = _is_float_field(type(config), field)
        if isinstance(value, tuple) and spec.item is not None:
            if not value:
                raise UserError(f"{name} needs at least one value")
            for element in value:
                _check_value(spec.item, element, spec, is_float)
        else:
            _check_value(name, value, spec, is_float)


def to_record(config: Any, kind: str | None = None) -> dict:
    """The config as JSON-ready fields (tuples as lists), with ``kind`` first when given."""
    fields = {f.name: _jsonable(getattr(config, f.name)) for f in dataclasses.fields(config)}
    return fields if kind is None else {"kind": kind, **fields}


def _jsonable(value: Any) -> Any:
    """Tuples (also nested) as lists."""
    return [_jsonable(v) for v in value] if isinstance(value, tuple | list) else value


def _tupled(value: Any) -> Any:
    """Lists (also nested) as tuples, so a config rebuilt from JSON stays hashable."""
    return tuple(_tupled(v) for v in value) if isinstance(value, list) else value


def from_record(cls: type, record: dict) -> Any:
    """Rebuilds a config from ``to_record`` output; unknown keys are ignored, and a field the record
    lacks takes its ``legacy`` value (or the default when the field has none)."""
    values = {}
    for field in dataclasses.fields(cls):
        if field.name in record:
            values[field.name] = _tupled(record[field.name])
        elif spec_of(field) is not None and spec_of(field).legacy is not _NO_LEGACY:
            values[field.name] = spec_of(field).legacy
    return cls(**values)


def resume_keys(cls: type) -> list[str]:
    """Fields a checkpoint must share with the run that resumes it."""
    return [f.name for f in dataclasses.fields(cls) if spec_of(f) is None or spec_of(f).resume]


def with_legacy(cls: type, record: dict) -> dict:
    """``record`` with every field it lacks filled in with that field's ``legacy`` value (JSON-ready), so
    a record written before a field existed compares equal to a run that has the old behaviour."""
    filled = dict(record)
    for field in dataclasses.fields(cls):
        spec = spec_of(field)
        if field.name not in filled and spec is not None and spec.legacy is not _NO_LEGACY:
            filled[field.name] = _jsonable(spec.legacy)
    return filled
