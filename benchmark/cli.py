"""python -m benchmark ... : data stats/convert/download, sids, run (methods + tables), tables,
users, score, methods, bench, backbone rehearsal. Argument parsing and printing only; the work
is in pipeline.py, plan.py and bench/."""
import argparse
import json
import logging
import sys

from protocol.errors import BenchmarkError


def _common(p, profile=True):
    p.add_argument("--data-dir", help="folder holding DATASET/ (default: $LASAR_DATA_DIR, "
                                      "else datasets/data/)")
    if profile:
        p.add_argument("--profile", default="cpu", help="smoke | cpu | cpu-full | smol | paper")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a configuration key (repeatable)")


def _config(args):
    import methods
    from protocol.config import Config
    backbone = [f"lm.backbone={args.backbone}"] if getattr(args, "backbone", None) else []
    return Config(args.profile, backbone + args.overrides, methods.all_default_configs(),
                  methods.default_files())


def cmd_data_stats(args):
    from recdata import load_dataset, make_split
    ds = load_dataset(args.dataset, args.data_dir)
    sp = make_split(ds, args.window)
    stats = {"users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions,
             "train_examples": len(sp.train), "valid_examples": len(sp.valid),
             "test_examples": len(sp.test)}
    if args.json:
        print(json.dumps(stats))
        return
    width = max(map(len, stats))
    print(f"{args.dataset} ({ds.root})")
    for k, v in stats.items():
        print(f"  {k:<{width}}  {v:,}")


def cmd_data_convert(args):
    from recdata.amazon_raw import convert
    users, items, inter = convert(args.reviews, args.meta, args.to, args.k)
    print(f"wrote {args.to}: {users:,} users, {items:,} items, {inter:,} interactions "
          f"({args.k}-core)")


def cmd_data_download(args):
    from recdata.download import download
    r = download(args.dataset, args.to, args.base_url)
    u, i = r["table6"]
    print(f"wrote {args.to}/{args.dataset}: {r['users']:,} users, {r['items']:,} items, "
          f"{r['interactions']:,} interactions (5-core) from {', '.join(r['files'])}")
    print(f"Table 6 of the paper: {u:,} users, {i:,} items: "
          + ("the same" if r["matches_table6"] else
             "different (the paper's copy was filtered further than the raw 5-core file; "
             "../shared/datasets/README.md says where the prepared copies come from)"))
    print(f"use it with --data-dir {args.to}")


def cmd_sids(args):
    from recdata import load_dataset

    from .plan import results_root
    from protocol.sids import build_or_load
    settings = _config(args).settings
    ds = load_dataset(args.dataset, args.data_dir)
    table = build_or_load(ds, settings.sids, results_root(args.out) / args.dataset / "_cache")
    report = table.report()
    if args.json:
        print(json.dumps(report))
        return
    print(f"{args.dataset}: {report['items']:,} items, {report['distinct_sids']:,} distinct "
          f"SIDs, {report['moved']} moved to break collisions, codes used per level "
          f"{report['codes_per_level']}, {report['seconds']:.1f} s ({table.source})")


def parse_seeds(text):
    """--seeds '42,43,44' -> [42, 43, 44]; anything else is one line saying what to give."""
    if text is None:
        return None
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0 or max(seeds) >= 2 ** 32:
        raise BenchmarkError(f"--seeds {text!r}: give distinct non-negative integers separated "
                             "by commas, e.g. --seeds 42,43,44")
    return seeds


def _request(args):
    from .plan import RunRequest
    overrides = ([f"lm.backbone={args.backbone}"] if getattr(args, "backbone", None) else [])
    methods = ([m.strip() for m in args.methods.split(",") if m.strip()]
               if getattr(args, "methods", None) else None)
    if getattr(args, "micro", False):
        from .rehearsal import micro_overrides
        overrides = micro_overrides() + overrides
    return RunRequest(args.dataset, args.profile, methods, args.data_dir, args.out,
                      overrides + list(args.overrides),
                      seeds=parse_seeds(getattr(args, "seeds", None)))


def cmd_run(args):
    from .pipeline import run_pipeline
    if args.dry_run:
        from .pipeline import dry_run
        return dry_run(_request(args))
    return run_pipeline(_request(args), only_reports=args.only_reports)


def _write_reports(root, eval_cfg):
    """Every report of the results folder `root`, read once; prints what it wrote."""
    from reports.build import write_reports
    from reports.results import load_results
    for p in write_reports(load_results(root, eval_cfg)):
        print(f"wrote {p}")


def cmd_tables(args):
    from .pipeline import check_seeds_folder
    from .plan import profile_folder, results_root
    cfg = _config(args)
    root = results_root(args.out) / args.dataset / profile_folder(cfg)
    check_seeds_folder(root=root)
    _write_reports(root, cfg.settings.eval)


def _plan(args, methods):
    from .plan import Plan
    return Plan(_request(args), methods)


def _lines(name):
    from .bench import text
    return getattr(text, f"{name}_text")


def _print(args, res, text):
    """The result as one JSON object (--json), else as the lines `text(res)` gives; by the
    main process only under `accelerate launch` (the others decoded their share with it)."""
    from protocol.dist import is_main_process
    if is_main_process():
        print(json.dumps(res) if args.json else "\n".join(text(res)))


def cmd_bench_beam(args):
    from methods.lm.bench.beam import bench_beam
    _print(args, bench_beam(args), _lines("beam"))


def cmd_bench_sft(args):
    from methods.lm.bench.sft import bench_sft
    res = bench_sft(args)
    if args.epoch_of:
        from .bench import sft_epoch
        res["epoch"] = sft_epoch(args, res["tokens_per_s"])
    _print(args, res, _lines("sft"))


def cmd_bench_lasar(args):
    from .bench.lasar import bench_lasar
    _print(args, bench_lasar(_plan(args, ["lasar", "latentr3"]), args.users, args.repeats),
           _lines("lasar"))


def cmd_bench_cot(args):
    from .bench.cot import bench_cot
    res, _ = bench_cot(_plan(args, ["lasar", "cot_gream", "latentr3"]), args.users,
                       args.repeats, refresh=True)
    _print(args, res, _lines("cot"))


def cmd_users(args):
    from .external import export_users, folder_of
    f = folder_of(_config(args), args.dataset, args.data_dir, args.out)
    n, sids = export_users(f, args.split, args.to)
    print(f"wrote {args.to}: {n:,} {args.split} examples of {args.dataset} ({args.profile}), "
          "history as item ids" + (" and SIDs" if sids else
                                   " (no SID table built yet for this profile: no SIDs)"))


def cmd_score(args):
    from .external import folder_of, score
    f = folder_of(_config(args), args.dataset, args.data_dir, args.out)
    folder, metrics = score(f, args.dataset, args.predictions, args.name, args.allow_short)
    print(f"wrote {folder}: " + "  ".join(f"{k} {v:.4f}" for k, v in metrics.items()
                                          if k != "n_users"))
    _write_reports(f.root, f.cfg.settings.eval)


def cmd_methods(args):
    import methods
    for n in methods.names():
        s = methods.spec(n)
        print(f"{n:<12} {s.display_name:<20} {s.kind}")


def cmd_doctor(args):
    from .doctor import doctor
    return doctor(_request(args), micro=not args.no_micro_run)


def cmd_backbone_rehearsal(args):
    from methods.lm.rehearsal import write_rehearsal_backbone
    folder, n = write_rehearsal_backbone(args.out, args.layers, args.seed, args.hidden)
    print(f"wrote {folder}: a random Qwen3 at Qwen3-0.6B's shape ({args.layers} layers, "
          f"{n:,} parameters) with the real Qwen tokenizer; run a profile on it with "
          f"--backbone {folder}")


def parser():
    ap = argparse.ArgumentParser(prog="python -m benchmark", description=__doc__)
    sub = ap.add_subparsers(dest="cmd", required=True)

    data = sub.add_parser("data", help="dataset statistics and conversion")
    dsub = data.add_subparsers(dest="data_cmd", required=True)
    st = dsub.add_parser("stats", help="users, items, interactions and split sizes")
    st.add_argument("dataset")
    st.add_argument("--json", action="store_true", help="one JSON object")
    st.add_argument("--window", type=int, default=20)
    _common(st, profile=False)
    st.set_defaults(func=cmd_data_stats)
    cv = dsub.add_parser("convert", help="raw Amazon reviews + metadata -> prepared format")
    cv.add_argument("--reviews", required=True, help="reviews_*.json.gz (2014) or *.json.gz (2018)")
    cv.add_argument("--meta", help="meta_*.json.gz")
    cv.add_argument("--to", required=True, help="the dataset's folder to write, e.g. "
                                                "datasets/data/sports")
    cv.add_argument("--k", type=int, default=5, help="k-core threshold (default 5)")
    cv.set_defaults(func=cmd_data_convert)
    dl = dsub.add_parser("download", help="fetch the public raw Amazon files, then convert")
    dl.add_argument("dataset", choices=("sports", "beauty", "instruments"))
    dl.add_argument("--to", required=True, help="folder for raw/ and <dataset>/ (--data-dir)")
    dl.add_argument("--base-url", help="a mirror holding the same file names")
    dl.set_defaults(func=cmd_data_download)

    r = sub.add_parser("run", help="what ./run_all.sh DATASET runs: train and evaluate the "
                                   "methods, Table 5's and Table 4's runs, then every report")
    r.add_argument("dataset")
    r.add_argument("--methods", help="comma-separated method names (default: the profile's)")
    r.add_argument("--out", help="results root (default: results/)")
    r.add_argument("--only-reports", action="store_true",
                   help="train nothing: rewrite the tables, figures and report from results/")
    r.add_argument("--dry-run", action="store_true",
                   help="train and write nothing: print each stage's status, examples, tokens, "
                        "estimated peak memory and time (a short calibration on this device)")
    r.add_argument("--micro", action="store_true",
                   help="micro settings: a few users, one or two optimizer steps per stage "
                        "(rehearse a profile's path and shape; benchmark/rehearsal.py)")
    r.add_argument("--backbone", help="generative methods' backbone: a local Hugging Face "
                                      "causal-LM folder, 'smollm2' or 'random' "
                                      "(= --set lm.backbone=...)")
    r.add_argument("--seeds", help="train every method once per seed, e.g. 42,43,44, in "
                                   "<profile>/seed-<s>/, scored on the same users; Table 1 as "
                                   "mean +- std and seed-pooled claims in <profile>/")
    _common(r)
    r.set_defaults(func=cmd_run)

    s = sub.add_parser("sids", help="build (or load the cached) semantic-ID table")
    s.add_argument("dataset")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--out", help="results root (default: results/)")
    _common(s)
    s.set_defaults(func=cmd_sids)

    t = sub.add_parser("tables", help="write the tables, figures and report from results/ only")
    t.add_argument("dataset")
    t.add_argument("--out", help="results root (default: results/)")
    t.add_argument("--backbone", help="the run's --backbone (its results folder is "
                                      "<profile>@<backbone name>)")
    _common(t)
    t.set_defaults(func=cmd_tables)

    b = sub.add_parser("bench", help="speed benchmarks")
    bsub = b.add_subparsers(dest="bench_cmd", required=True)
    from . import bench
    for name, add, func, hlp, common in (
            ("beam", bench.add_beam_arguments, cmd_bench_beam,
             "beam search vs HF generate vs bare forward passes", False),
            ("sft", bench.add_sft_arguments, cmd_bench_sft,
             "one SFT step: tokens/s, samples/s, MFU on a GPU", False),
            ("lasar", bench.add_lasar_arguments, cmd_bench_lasar,
             "LASAR decoding time vs plain decoding, same users", True),
            ("cot", bench.add_cot_arguments, cmd_bench_cot,
             "CoT generation vs direct vs LASAR vs plain, same users", True)):
        bp = bsub.add_parser(name, help=hlp)
        add(bp)
        if common:
            _common(bp)
        bp.set_defaults(func=func)

    u = sub.add_parser("users", help="export a split's examples as every method sees them")
    u.add_argument("dataset")
    u.add_argument("--split", choices=("train", "valid", "test"), default="test")
    u.add_argument("--to", required=True, help="JSONL file to write")
    u.add_argument("--out", help="results root whose SID table to use (default: results/)")
    _common(u)
    u.set_defaults(func=cmd_users)

    sc = sub.add_parser("score", help="score predictions made elsewhere against every row")
    sc.add_argument("dataset")
    sc.add_argument("--predictions", required=True,
                    help='JSONL, one {"user", "target", "topk"} per test user, best first')
    sc.add_argument("--name", required=True, help="the row's name in the tables")
    sc.add_argument("--allow-short", action="store_true",
                    help="accept top-k lists shorter than the protocol's k (a target past the "
                         "list counts as a miss)")
    sc.add_argument("--out", help="results root (default: results/)")
    _common(sc)
    sc.set_defaults(func=cmd_score)

    m = sub.add_parser("methods", help="list registered methods")
    m.set_defaults(func=cmd_methods)

    dr = sub.add_parser("doctor", help="preflight: what this machine can run (torch, CUDA, GPUs, "
                                       "collectives, data, backbone, disk, a micro-run)")
    dr.add_argument("dataset", nargs="?", default="sports",
                    help="the dataset the run will use (default: sports)")
    dr.add_argument("--backbone", help="the run's --backbone")
    dr.add_argument("--out", help="results root (default: results/)")
    dr.add_argument("--no-micro-run", action="store_true",
                    help="skip the one-minute MiniOneRec run on this device")
    dr.set_defaults(func=cmd_doctor, methods=None, seeds=None)
    _common(dr)

    bb = sub.add_parser("backbone", help="backbone folders")
    bbsub = bb.add_subparsers(dest="backbone_cmd", required=True)
    rh = bbsub.add_parser("rehearsal", help="a random-weight folder at Qwen3-0.6B's shape with the "
                                            "real Qwen tokenizer (rehearse `paper` on a CPU)")
    rh.add_argument("--out", required=True, help="the folder to write")
    rh.add_argument("--layers", type=int, default=28, help="depth (Qwen3-0.6B: 28)")
    rh.add_argument("--hidden", type=int, help="a narrower model (Qwen3-0.6B: 1024); the "
                                               "vocabulary, tokenizer and tying are kept")
    rh.add_argument("--seed", type=int, default=0)
    rh.set_defaults(func=cmd_backbone_rehearsal)
    return ap


def setup_logging():
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    logging.getLogger("fontTools").setLevel(logging.WARNING)    # PDF font subsetting chatter


def main(argv=None):
    args = parser().parse_args(argv)
    setup_logging()
    try:
        return args.func(args) or 0
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
