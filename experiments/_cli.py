"""What every experiment script shares: flags made from config fields, the device line, one-sentence exits.

A script builds its parser with ``parser(...)``, adds its config's flags with
``add_config_flags(parser, Config)`` (name, type, help and default come from the config's fields,
so each default is written once, in ``jaxgan.configs``), turns the parsed flags into a config
with ``config_from_args`` and calls one library function. ``run(main)`` turns the project's
errors into one line and an exit status: bad input 2, SIGINT 130, SIGTERM 143.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import dataclasses
import logging
import os
import sys
import textwrap
import typing
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from jaxgan.configs.base import MAX_SEED, SEED_NOTE, flag_of, spec_of
from jaxgan.errors import UserError
from jaxgan.runtime.signals import Interrupted


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are the project's one sentence (a UserError naming the help command)."""

    def error(self, message: str):
        """Raises UserError instead of printing the usage and exiting."""
        raise UserError(f"{message} (see {self.prog} --help)")


CACHE_ENV = "JAXGAN_COMPILATION_CACHE"  # a folder for compiled programs, or 0 to keep none
_CACHE_OFF = ("0", "off", "no", "false")
_CACHE_EPILOG = (f"Compiled programs are kept in a per-user cache folder ({{cache}}), so a second run of the "
                 f"same settings starts training sooner; --no-compile-cache or {CACHE_ENV}=0 turns it off, "
                 f"{CACHE_ENV}=DIR moves it.")


def parser(prog: str, doc: str, *, compiles: bool = True) -> Parser:
    """The parser of ``python -m experiments.PROG``: its help is the script's docstring, and it takes
    ``--debug`` and, for a script that compiles JAX programs (``compiles``), ``--no-compile-cache``
    (``run`` acts on both before parsing)."""
    epilog = None
    if compiles:
        epilog = textwrap.fill(_CACHE_EPILOG.format(cache=compilation_cache_dir() or "off"), 79,
                               break_on_hyphens=False)
    made = Parser(prog=f"python -m experiments.{prog}", description=doc, epilog=epilog,
                  formatter_class=argparse.RawDescriptionHelpFormatter)
    made.add_argument("--debug", action="store_true",
                      help="on bad input, raise the error with its full traceback instead of one line")
    if compiles:
        made.add_argument("--no-compile-cache", action="store_true",
                          help="do not keep compiled programs between runs (see below)")
    return made


def compilation_cache_dir() -> str | None:
    """Where the scripts keep JAX's compiled programs: $JAXGAN_COMPILATION_CACHE, or the user's cache
    folder ($XDG_CACHE_HOME or ~/.cache, then jaxgan/jax-compilation); None when the variable is 0."""
    value = os.environ.get(CACHE_ENV, "").strip()
    if value.lower() in _CACHE_OFF:
        return None
    if value:
        return os.path.expanduser(value)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jaxgan", "jax-compilation")


def use_compilation_cache() -> str | None:
    """Turns on JAX's persistent compilation cache in ``compilation_cache_dir()`` for this process;
    returns the folder, or None when it is off or the environment already chose one
    (``JAX_COMPILATION_CACHE_DIR``). Every program is kept, however quick its compile: the study's
    are many and small, and a rerun pays for all of them."""
    directory = compilation_cache_dir()
    if directory is None or os.environ.get("JAX_COMPILATION_CACHE_DIR"):
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return directory


def integer(text: str) -> int:
    """argparse type: an integer (its range is the config's to check)."""
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid int value: {text!r}") from None


def number(text: str) -> float:
    """argparse type: a number (its range is the config's to check)."""
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def int_at_least(minimum: int):
    """argparse type factory for a flag that is no config field: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        value = integer(text)
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} is below the minimum of {minimum}")
        return value

    return parse


def int_between(minimum: int, maximum: int, note: str):
    """argparse type factory for a flag that is no config field: an integer in ``minimum`` .. ``maximum``,
    ``note`` saying why the maximum is what it is."""
    at_least = int_at_least(minimum)

    def parse(text: str) -> int:
        value = at_least(text)
        if value > maximum:
            raise argparse.ArgumentTypeError(f"{value} is above {maximum}: {note}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def seed(text: str) -> int:
    """argparse type for a seed that is no config field: 0 .. MAX_SEED, as a JAX key holds it."""
    value = non_negative_int(text)
    if value > MAX_SEED:
        raise argparse.ArgumentTypeError(f"{value} is above {MAX_SEED}: {SEED_NOTE}")
    return value


def lengths(text: str) -> list[int] | range:
    """argparse type: one integer, or an inclusive range START:STOP[:STEP] (``5:60:5`` is 5, 10, ..., 60).

    A range stays a ``range`` (its ends known, its numbers not made): the config checks its ends
    before it is expanded.
    """
    parts = text.split(":")
    numbers = [integer(part) for part in parts]
    if len(numbers) == 1:
        return numbers
    if len(numbers) > 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not a length or a range START:STOP[:STEP]")
    start, stop, step = (*numbers, 1) if len(numbers) == 2 else numbers
    if step < 1 or stop < start:
        raise argparse.ArgumentTypeError(f"the range {text!r} is empty: it needs START <= STOP and a "
                                         f"STEP of at least 1")
    return range(start, stop + 1, step)


_TYPES = {"lengths": lengths}


def _shown(value: Any, field: dataclasses.Field) -> str:
    """A field default as the help shows it."""
    if isinstance(value, bool):
        return flag_of(field) if value else "--no-" + flag_of(field)[2:]
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return f"{value}"


def add_config_flags(parser: argparse.ArgumentParser, cls: type, *, exclude: Sequence[str] = (),
                     group: str | None = None) -> None:
    """One flag per field of the config class ``cls`` that has one (see ``jaxgan.configs.base.setting``).

    Every flag defaults to None, meaning "the config's own default", which the help shows; the
    config checks the values (``validate``), so a bad value reads the same from every script.
    """
    target = parser if group is None else parser.add_argument_group(group)
    hints = typing.get_type_hints(cls)
    for field in dataclasses.fields(cls):
        flag, spec = flag_of(field), spec_of(field)
        if flag is None or field.name in exclude:
            continue
        kwargs: dict[str, Any] = {"dest": field.name, "default": None,
                                  "help": f"{spec.help} (default: {_shown(field.default, field)})"}
        hint = hints[field.name]
        element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else hint
        if hint is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        else:
            kwargs["type"] = {int: integer, float: number}.get(element, str)
            if typing.get_origin(hint) is tuple:
                kwargs["nargs"] = "+"
            if spec.choices is not None:
                kwargs["choices"] = list(spec.choices)
            if "choices" not in kwargs:
                kwargs["metavar"] = flag[2:].upper().replace("-", "_")
        extra = dict(spec.cli or {})
        if isinstance(extra.get("type"), str):
            extra["type"] = _TYPES[extra["type"]]
        kwargs.update(extra)
        kwargs = {key: value for key, value in kwargs.items() if value is not None or key == "default"}
        target.add_argument(flag, *spec.aliases, **kwargs)


def config_from_args(cls: type, args: argparse.Namespace, base: Any = None, **values) -> Any:
    """The config of class ``cls`` (``base``, or its defaults) with every flag given and ``values`` set."""
    for field in dataclasses.fields(cls):
        given = getattr(args, field.name, None) if flag_of(field) else None
        if given is None or field.name in values:
            continue
        spec = spec_of(field)
        if spec.parse is not None:
            given = spec.parse(given)
        elif isinstance(given, list):
            given = tuple(given)
        values[field.name] = given
    return dataclasses.replace(cls() if base is None else base, **values)


def add_run_flags(parser: argparse.ArgumentParser, name: str, writes: str) -> None:
    """--workdir, --checkpoint-dir and --restart: the run's folder, with the same meaning in every trainer.

    ``name`` is the default folder under runs/; ``writes`` lists what the run writes there.
    """
    group = parser.add_argument_group("the run's folder")
    group.add_argument("--workdir", default=f"runs/{name}",
                       help=f"the run's folder: {writes}, TensorBoard events and the checkpoints (in its "
                            f"checkpoints/ folder). A folder that holds this run (the same settings) resumes "
                            f"it; one that holds another run is refused (default: %(default)s)")
    group.add_argument("--checkpoint-dir", default=None,
                       help="keep the checkpoints in this directory instead of WORKDIR/checkpoints (the run "
                            "folder records where they are)")
    group.add_argument("--restart", action="store_true",
                       help="start this run over: what --workdir (and --checkpoint-dir) held is moved "
                            "aside to a folder beside it named WORKDIR.replaced-<UTC time>, never deleted")


@contextlib.contextmanager
def progress_bars() -> Iterator[Callable]:
    """A ``loop.Progress`` callback that shows a tqdm bar per run label (closed when the block ends)."""
    from tqdm import tqdm

    bars: dict[str, Any] = {}

    def shown(value: Any) -> str:
        """A metric for the bar: ints as they are, floats to 4 significant digits."""
        return f"{value}" if isinstance(value, int) else f"{value:.4g}"

    def on_progress(event) -> None:
        """Opens, moves and closes the bars; other events become lines above them."""
        if event.event == "start":
            if event.resumed:
                tqdm.write(f"{event.label}: resuming at {event.unit} {event.done} of {event.total}"
                           + (f" ({event.text})" if event.text else ""))
            bars[event.label] = tqdm(total=event.total, initial=event.done, desc=event.label, unit=event.unit,
                                     dynamic_ncols=True)
        elif event.event == "chunk" and event.label in bars:
            bar = bars[event.label]
            bar.update(event.done - bar.n)
            bar.set_postfix({k: shown(v) for k, v in event.metrics.items()})
            if event.done >= event.total:
                bar.close()
        elif event.event == "scores":
            tqdm.write(event.text or f"{event.label} {event.unit} {event.done} scores: "
                       + ", ".join(f"{k} {shown(v)}" for k, v in event.metrics.items()))
        elif event.text:
            tqdm.write(event.text)

    try:
        yield on_progress
    finally:
        for bar in bars.values():
            bar.close()


def add_generator_flags(parser: argparse.ArgumentParser) -> None:
    """--gan-dir, --step and --weights: which trained generator a script restores."""
    parser.add_argument("--gan-dir", "--checkpoint-dir", dest="gan_dir", default="runs/gan",
                        help="a GAN run folder (experiments.train_gan's --workdir) or its checkpoint "
                             "directory (default: %(default)s)")
    parser.add_argument("--step", type=non_negative_int, default=None,
                        help="which saved step to load (default: the newest)")
    parser.add_argument("--weights", default=None, choices=("ema", "raw"),
                        help="the EMA of the generator's weights or the raw ones (default: ema when "
                             "the checkpoint keeps an EMA, else raw)")


def add_image_flags(parser: argparse.ArgumentParser, split_help: str) -> None:
    """The image-source flags every image experiment shares: --dataset, --split, --data-dir."""
    parser.add_argument("--dataset", default="auto",
                        help="image source: mnist (tfds), idx:DIR (raw IDX files), digits (sklearn, "
                             "offline) or auto (mnist if prepared, else digits) (default: %(default)s)")
    parser.add_argument("--split", default="train", choices=("train", "test"),
                        help=f"{split_help} (default: %(default)s)")
    parser.add_argument("--data-dir", default=None,
                        help="tfds data directory for mnist/auto (default: tfds's own)")


def load_image_flags(args: argparse.Namespace):
    """Loads the images the image flags name and prints what was loaded; returns the ImageSet."""
    from jaxgan.data.images import load_images

    image_set = load_images(args.dataset, split=args.split, data_dir=args.data_dir)
    print(f"images: {image_set.source}")
    return image_set


def output_files(outputs: Sequence[tuple[str, str]]) -> None:
    """Checks files a script will write, before any work: ``outputs`` is (what, path) pairs, ``what``
    naming the path in messages (``--out``). Raises one UserError when a path is a folder, two
    outputs are one file, or a parent folder cannot be made or written; creates nothing."""
    from jaxgan.runtime.workdir import checkable_parent  # Orbax with it: not for --help's sake

    seen: dict[str, str] = {}
    for what, path in outputs:
        if os.path.isdir(path):
            raise UserError(f"{what} {path} is a folder; name a file")
        real = os.path.realpath(path)
        if real in seen:
            raise UserError(f"{seen[real]} and {what} both name {path}; give each output a file of its own")
        seen[real] = what
        checkable_parent(os.path.dirname(os.path.abspath(path)), "folder")


def add_distributed_flags(parser: argparse.ArgumentParser) -> None:
    """The multi-process flags: --coordinator-address, --num-processes, --process-id (all or none),
    or --auto-distributed; ``initialize_distributed`` acts on them."""
    group = parser.add_argument_group(
        "multi-process (several hosts, or one process per GPU)",
        "give all three of the first flags, each process its own --process-id, or --auto-distributed; "
        "without them the run uses this process's devices only")
    group.add_argument("--coordinator-address", default=None, metavar="HOST:PORT",
                       help="address of process 0, which every process connects to (e.g. 10.0.0.2:1234)")
    group.add_argument("--num-processes", type=positive_int, default=None,
                       help="how many processes take part in the run")
    group.add_argument("--process-id", type=non_negative_int, default=None,
                       help="this process's index, 0 .. --num-processes - 1")
    group.add_argument("--auto-distributed", action="store_true",
                       help="let JAX read all three from the cluster (Cloud TPU pod slices, SLURM, "
                            "Open MPI) instead of giving them")


def initialize_distributed(args: argparse.Namespace) -> bool:
    """Calls ``jax.distributed.initialize`` when the distributed flags ask for it; True if it did.

    Must run before anything else touches JAX's devices. CPU processes exchange data over
    gloo (TCP), so a multi-process run works without accelerators too.
    """
    given = {"--coordinator-address": args.coordinator_address, "--num-processes": args.num_processes,
             "--process-id": args.process_id}
    missing = [flag for flag, value in given.items() if value is None]
    if args.auto_distributed and len(missing) < len(given):
        raise UserError("--auto-distributed reads the coordinator address, process count and process id "
                        "from the cluster, so give none of them with it")
    if missing and len(missing) < len(given):
        raise UserError(f"a multi-process run needs --coordinator-address, --num-processes and "
                        f"--process-id together, but {' and '.join(missing)} "
                        f"{'is' if len(missing) == 1 else 'are'} missing")
    if not args.auto_distributed and missing:
        return False
    if not args.auto_distributed:
        host, _, port = args.coordinator_address.rpartition(":")
        if not host or not port.isdigit():
            raise UserError(f"--coordinator-address must be HOST:PORT, not {args.coordinator_address!r}")
        if args.process_id >= args.num_processes:
            raise UserError(f"--process-id {args.process_id} is out of range for --num-processes "
                            f"{args.num_processes} (ids run from 0 to {args.num_processes - 1})")
    import jax

    # gloo is JAX 0.10's default for cross-process collectives on CPU; older versions had none,
    # so set it unless the environment chose another (JAX_CPU_COLLECTIVES_IMPLEMENTATION=mpi).
    if not os.environ.get("JAX_CPU_COLLECTIVES_IMPLEMENTATION"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if args.auto_distributed:
        jax.distributed.initialize()
    else:
        jax.distributed.initialize(coordinator_address=args.coordinator_address,
                                   num_processes=args.num_processes, process_id=args.process_id)
    return True


def describe_devices() -> str:
    """One line naming the JAX backend and its devices (all processes'), and this process's place."""
    import jax

    devices = jax.devices()
    line = f"JAX {jax.__version__} on {jax.default_backend()}: {len(devices)} x {devices[0].device_kind}"
    if jax.process_count() > 1:
        line += (f" over {jax.process_count()} processes (this is process {jax.process_index()}, "
                 f"with {jax.local_device_count()})")
    return line


def use_every_core() -> int | None:
    """Gives JAX's CPU platform one device per core this process may use; returns that count.

    On a CPU the study's products are small (a batch of 128 by 128 hidden units), so one run
    barely uses a second core; as devices, two cores train two runs of the sweep side by side
    (``benchmarks/benchmark.py`` measures it). Accelerators are unaffected: this shapes only the
    CPU platform. Returns None, changing nothing, where the environment already chose
    (``JAX_NUM_CPU_DEVICES``, or XLA_FLAGS' ``--xla_force_host_platform_device_count``) or
    JAX's devices are already in use.
    """
    if "JAX_NUM_CPU_DEVICES" in os.environ or "xla_force_host_platform_device_count" in os.environ.get(
            "XLA_FLAGS", ""):
        return None
    import jax

    count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:  # devices already created (a script called from a running program)
        return None
    return count


def _one_line_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Shows a warning as one ``warning: ...`` line on stderr, without the source location."""
    print(f"warning: {message}", file=sys.stderr if file is None else file)


@contextlib.contextmanager
def _script_output() -> Iterator[None]:
    """While a script runs: warnings as one line each, Orbax's and absl's chatter off; put back after."""
    absl = logging.getLogger("absl")
    level = absl.level
    absl.setLevel(logging.ERROR)  # Orbax logs every save at INFO/WARNING level
    try:
        with warnings.catch_warnings():
            warnings.showwarning = _one_line_warning  # a damaged checkpoint is news, not a stack location
            yield
    finally:
        absl.setLevel(level)


def _quiet_abandoned_writes() -> None:
    """At a command's exit: the writes a failed Orbax save abandoned are finalised as the interpreter
    ends, each logged by asyncio as "Task exception was never retrieved" with a traceback after the
    run's one sentence; that sentence said it all, so they are dropped (only if checkpoints were used)."""
    checkpoint = sys.modules.get("jaxgan.runtime.checkpoint")
    if checkpoint is not None:
        logging.getLogger("asyncio").addFilter(checkpoint.drop_unretrieved)


def run(main: Callable[[Sequence[str] | None], None], argv: Sequence[str] | None = None) -> None:
    """Runs ``main``; bad input ends in one sentence on stderr and exit 2 (``--debug`` re-raises),
    a run stopped by SIGINT or SIGTERM (after its checkpoint) in one line and exit 128 + signal.

    From the command line (``argv`` None) JAX's CPU platform first gets one device per core
    (``use_every_core``) and compiled programs are kept between runs (``use_compilation_cache``,
    unless ``--no-compile-cache``); a caller passing ``argv`` keeps the devices and settings it has.
    """
    if argv is None:
        use_every_core()
        if "--no-compile-cache" not in sys.argv[1:]:
            use_compilation_cache()
        atexit.register(_quiet_abandoned_writes)
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    argv = [a for a in argv if a != "--debug"]
    with _script_output():
        try:
            from jaxgan.runtime.precision import require_32bit

            require_32bit()  # before any work: 64-bit defaults would give other numbers silently
            main(argv)
        except UserError as err:
            if debug:
                raise
            print(f"error: {err}", file=sys.stderr)
            sys.exit(2)
        except Interrupted as stop:
            print(f"stopped: {stop}", file=sys.stderr)
            sys.exit(128 + stop.signum)  # the shell's convention: 130 for SIGINT, 143 for SIGTERM
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
