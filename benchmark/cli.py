"""python -m benchmark ... : data stats/convert, sids, run (methods + tables), tables, methods."""
import argparse
import json
import logging
import sys

from .errors import BenchmarkError


def _common(p, profile=True):
    p.add_argument("--data-dir", help="folder holding DATASET/ (default: $LASAR_DATA_DIR, "
                                      "else datasets/data/)")
    if profile:
        p.add_argument("--profile", default="cpu", help="smoke | cpu | smol | paper")
        p.add_argument("--set", dest="overrides", action="append", default=[],
                       metavar="KEY=VALUE", help="override a configuration key (repeatable)")


def cmd_data_stats(args):
    from recdata import load_dataset, make_split
    ds = load_dataset(args.dataset, args.data_dir)
    sp = make_split(ds, args.window)
    stats = {"users": ds.n_users, "items": ds.n_items, "interactions": ds.n_interactions,
             "train_examples": len(sp.train), "valid_examples": len(sp.valid),
             "test_examples": len(sp.test)}
    if args.json:
        print(json.dumps(stats))
    else:
        width = max(map(len, stats))
        print(f"{args.dataset} ({ds.root})")
        for k, v in stats.items():
            print(f"  {k:<{width}}  {v:,}")


def cmd_data_convert(args):
    from recdata.amazon_raw import convert
    users, items, inter = convert(args.reviews, args.meta, args.out, args.k)
    print(f"wrote {args.out}: {users:,} users, {items:,} items, {inter:,} interactions "
          f"({args.k}-core)")


def cmd_sids(args):
    from recdata import load_dataset

    from .config import Config
    from .runner import results_root
    from .sids import build_or_load
    cfg = Config(args.profile, args.overrides).shared
    ds = load_dataset(args.dataset, args.data_dir)
    table = build_or_load(ds, cfg["sids"], results_root(args.out) / args.dataset / "_cache")
    report = table.report()
    if args.json:
        print(json.dumps(report))
    else:
        print(f"{args.dataset}: {report['items']:,} items, {report['distinct_sids']:,} distinct "
              f"SIDs, {report['moved']} moved to break collisions, codes used per level "
              f"{report['codes_per_level']}, {report['seconds']:.1f} s ({table.source})")


def _child_argv(args, scaling):
    """argv of one method's own process in a parallel run (benchmark/schedule.py)."""
    def argv(method, threads):
        a = [sys.executable, "-m", "benchmark", "run", args.dataset, "--profile", args.profile,
             "--methods", method, "--no-reports"]
        a += ["--data-dir", args.data_dir] if args.data_dir else []
        a += ["--out", args.out] if args.out else []
        a += ["--scaling"] if scaling else []
        for o in args.overrides:
            a += ["--set", o]
        return a + ["--set", "jobs=1", "--set", f"threads={threads}"]
    return argv


def _execute(plans, args):
    """Train plans = [(plan, scaling)]: one queue of children when the profile's jobs > 1 (Table
    5's larger-backbone runs start as soon as a core is free), else one plan after the other in
    this process. Returns one {method: metrics or None} per plan."""
    from .runner import run
    from .schedule import run_parallel
    plan0 = plans[0][0]
    jobs = plan0.cfg.shared["jobs"]
    if jobs > 1 and sum(len(p.methods) for p, _ in plans) > 1:
        import methods as registry
        gen = [m for m in plan0.methods if registry.get(m).kind == "generative"]
        if gen:          # the SID table once, here with every core, not in two children at once
            plan0.context(gen[0]).sids()
        tags = [p.cfg.shared["scaling"]["label"] if s else "" for p, s in plans]
        res = run_parallel([(p, _child_argv(args, s), tag) for (p, s), tag in zip(plans, tags)],
                           jobs)
        return [{m: res[(tag, m)] for m in p.methods} for (p, _), tag in zip(plans, tags)]
    return [run(p) for p, _ in plans]


def _bench_cot(plan, args, results):
    """Table 4's timing (bench cot) once LASAR and Explicit CoT have results; skipped when
    bench/cot.json already records the same key."""
    bc = plan.cfg.shared["bench_cot"]
    if not bc["enabled"] or not {"lasar", "cot_gream"} <= set(plan.methods):
        return
    if not (results.get("lasar") and results.get("cot_gream")):
        print("bench cot: skipped (LASAR or Explicit CoT has no results); Table 4 will say so",
              file=sys.stderr)
        return
    from .bench_cot import bench_key
    from .bench_cot import run as bench
    path = plan.results_dir / "bench" / "cot.json"
    key = bench_key(plan, bc["users"], bc["repeats"])
    if path.is_file() and json.loads(path.read_text()).get("key") == key:
        print(f"bench cot: up to date ({path}), skipped", file=sys.stderr)
        return
    import argparse
    res = bench(argparse.Namespace(dataset=args.dataset, profile=args.profile,
                                   users=bc["users"], repeats=bc["repeats"], out=args.out,
                                   data_dir=args.data_dir, overrides=args.overrides))
    print(f"bench cot: {res['users']} users, ms/user {res['ms_per_user']}; CoT generation / "
          f"LASAR {res['cot_generation_over_lasar']:.2f}x", file=sys.stderr)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def _write_reports(plan, report_md=True):
    from reports.build import write_reports
    for p in write_reports(plan.profile_dir, plan.cfg.shared, report_md):
        print(f"wrote {p}")


def cmd_run(args):
    """Methods (in parallel when the profile's jobs > 1), Table 5's larger-backbone runs, Table
    4's timing, then every report. Each step skips what is already up to date."""
    import signal
    import time

    from .runner import Plan, is_main_process
    if args.backbone:
        args.overrides = [f"lm.backbone={args.backbone}", *args.overrides]
    t0 = time.time()
    plan = Plan(args.dataset, args.profile, _methods(args), args.data_dir, args.out,
                args.overrides, scaling=args.scaling)
    if args.only_reports:
        _write_reports(plan)
        return 0
    if args.no_reports:                  # one method's own process in a parallel run
        results, = _execute([(plan, args.scaling)], args)
        return 1 if any(r is None for r in results.values()) else 0
    failed, completed = [], False
    # SIGTERM unwinds like Ctrl-C: parallel children are stopped and the wall time is logged
    old_handler = signal.signal(signal.SIGTERM, _raise_interrupt)
    try:
        plans = [(plan, args.scaling)]
        sc = plan.cfg.shared["scaling"]
        if not args.scaling and sc["enabled"] and set(sc["methods"]) & set(plan.methods):
            splan = Plan(args.dataset, args.profile, plan.methods, args.data_dir, args.out,
                         args.overrides, scaling=True)
            print(f"[run] Table 5: {', '.join(splan.methods)} also on the larger backbone "
                  f"({splan.results_dir})", file=sys.stderr)
            plans.append((splan, True))
        results, *sres = _execute(plans, args)
        if not is_main_process():
            completed = True
            return 0
        failed = [m for m, r in results.items() if r is None]
        failed += [f"{m} (larger backbone)" for r in sres for m, x in r.items() if x is None]
        _bench_cot(plan, args, results)
        _write_reports(plan, report_md=False)      # report.md after run_log.jsonl, below
        completed = True
    finally:
        signal.signal(signal.SIGTERM, old_handler)
        if is_main_process():
            _log_run(plan, t0, failed, completed)
            from reports.build import write_report_md
            from reports.results_io import method_dirs
            if completed and method_dirs(plan.profile_dir):    # with this run's own wall time
                print(f"wrote {write_report_md(plan.profile_dir)}")
    if failed:
        print(f"error: method(s) failed: {', '.join(failed)} (see the log above); "
              "their rows are missing from the tables", file=sys.stderr)
        return 1
    return 0


def _log_run(plan, t0, failed, completed):
    """Append this invocation's wall time to results/<ds>/<profile>/run_log.jsonl, also when it
    was interrupted (Ctrl-C, SIGTERM; not SIGKILL): a resumed run's time is the sum of its
    lines."""
    import time
    from .manifest import hardware
    line = {"started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(t0)),
            "wall_s": round(time.time() - t0, 1), "completed": completed,
            "command": sys.argv, "methods": plan.methods, "failed": failed,
            "hardware": hardware()}
    plan.profile_dir.mkdir(parents=True, exist_ok=True)
    with open(plan.profile_dir / "run_log.jsonl", "a") as f:
        f.write(json.dumps(line) + "\n")


def cmd_tables(args):
    from .config import Config
    from .runner import results_root
    from reports.build import write_reports
    cfg = Config(args.profile, args.overrides).shared
    root = results_root(args.out) / args.dataset / args.profile
    for p in write_reports(root, cfg):
        print(f"wrote {p}")


def cmd_bench_beam(args):
    from .bench_beam import run
    res = run(args)
    if args.json:
        print(json.dumps(res))
        return
    su = res["setup"]
    print(f"beam search, width {su['beam_width']}, {su['prompts']} prompts of {su['prompt_tokens']}"
          f" tokens ({su['head_tokens']} shared), {su['items']:,} items, "
          f"{su['model_parameters']:,}-parameter Qwen3 ({su['preset']}, vocab {su['vocab']:,}), "
          f"{su['device']} {su['dtype']}, {su['threads']} threads")
    print(f"  HF generate + prefix_allowed_tokens_fn  {res['generate_samples_per_s']:8.2f} samples/s")
    print(f"  ours (tensor trie, shared KV cache)     {res['ours_samples_per_s']:8.2f} samples/s")
    print(f"  bare forward passes (prompt + 3 steps)  {res['bare_forward_samples_per_s']:8.2f} samples/s")
    print(f"  bare forward passes (prompt + 4 steps)  "
          f"{res['bare_forward_4steps_samples_per_s']:8.2f} samples/s")
    print(f"  speedup vs generate {res['speedup_vs_generate']:.1f}x; "
          f"time / bare forward {res['ratio_to_bare_forward']:.2f}x")


def cmd_bench_lasar(args):
    from .bench_lasar import run
    res = run(args)
    if args.json:
        print(json.dumps(res))
        return
    print(f"{res['users']} test users, {res['repeats']} repeats (median), {res['device']}, "
          f"{res['threads']} threads, mean latent steps {res['mean_latent_steps']:.2f}")
    print(f"  plain decoding (MiniOneRec's)  {res['plain_ms_per_user']:8.3f} ms/user")
    print(f"  LASAR (latent loop + beam)     {res['lasar_ms_per_user']:8.3f} ms/user")
    print(f"  LASAR / plain                  {res['lasar_over_plain']:8.3f}x")


def cmd_bench_cot(args):
    from .bench_cot import run
    res = run(args)
    if args.json:
        print(json.dumps(res))
        return
    ms = res["ms_per_user"]
    print(f"{res['users']} test users of {res['dataset']} ({res['profile']}), {res['repeats']} "
          f"repeat(s) (median), {res['device']}, {res['threads']} threads; mean latent steps "
          f"{res['mean_latent_steps']:.2f}, mean CoT reasoning tokens "
          f"{res['mean_reasoning_tokens']:.1f} (cap {res['cot_max_new_tokens']})")
    for k, label in (("plain", "plain decoding (MiniOneRec's)"), ("lasar", "LASAR"),
                     ("cot_direct", "Explicit CoT, direct answer"),
                     ("cot_generation", "Explicit CoT, CoT generation")):
        m = res["metrics"][k]
        print(f"  {label:<30} {ms[k]:9.2f} ms/user   N@10 {m['NDCG@10']:.4f}  "
              f"HR@10 {m['HR@10']:.4f}")
    print(f"  CoT generation / LASAR {res['cot_generation_over_lasar']:.2f}x; "
          f"LASAR / plain {res['lasar_over_plain']:.3f}x")


def cmd_methods(args):
    import methods
    for n in methods.names():
        cls = methods.get(n)
        print(f"{n:<12} {cls.display_name:<20} {cls.kind}")


def _methods(args):
    return [m.strip() for m in args.methods.split(",") if m.strip()] if args.methods else None


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
    cv.add_argument("--out", required=True, help="output folder, e.g. datasets/data/sports")
    cv.add_argument("--k", type=int, default=5, help="k-core threshold (default 5)")
    cv.set_defaults(func=cmd_data_convert)

    for name, func, hlp in (("run", cmd_run, "train and evaluate methods, then write tables"),
                            ("all", cmd_run, "what ./run_all.sh DATASET runs")):
        r = sub.add_parser(name, help=hlp)
        r.add_argument("dataset")
        r.add_argument("--methods", help="comma-separated method names (default: the profile's)")
        r.add_argument("--out", help="results root (default: results/)")
        r.add_argument("--only-reports", action="store_true",
                       help="train nothing: rewrite the tables, figures and report from results/")
        r.add_argument("--no-reports", action="store_true", help=argparse.SUPPRESS)
        r.add_argument("--scaling", action="store_true", help=argparse.SUPPRESS)
        r.add_argument("--backbone", help="generative methods' backbone: a local Hugging Face "
                                          "causal-LM folder, 'smollm2' or 'random' "
                                          "(= --set lm.backbone=...)")
        _common(r)
        r.set_defaults(func=func)

    s = sub.add_parser("sids", help="build (or load the cached) semantic-ID table")
    s.add_argument("dataset")
    s.add_argument("--json", action="store_true", help="one JSON object")
    s.add_argument("--out", help="results root (default: results/)")
    _common(s)
    s.set_defaults(func=cmd_sids)

    t = sub.add_parser("tables", help="write the tables, figures and report from results/ only")
    t.add_argument("dataset")
    t.add_argument("--out", help="results root (default: results/)")
    _common(t)
    t.set_defaults(func=cmd_tables)

    b = sub.add_parser("bench", help="speed benchmarks")
    bsub = b.add_subparsers(dest="bench_cmd", required=True)
    bb = bsub.add_parser("beam", help="beam search vs HF generate vs bare forward passes")
    from .bench_beam import add_arguments
    add_arguments(bb)
    bb.set_defaults(func=cmd_bench_beam)
    bl = bsub.add_parser("lasar", help="LASAR decoding time vs plain decoding, same users")
    from .bench_lasar import add_arguments as add_lasar_arguments
    add_lasar_arguments(bl)
    _common(bl)
    bl.set_defaults(func=cmd_bench_lasar)
    bc = bsub.add_parser("cot", help="CoT generation vs direct vs LASAR vs plain, same users")
    from .bench_cot import add_arguments as add_cot_arguments
    add_cot_arguments(bc)
    _common(bc)
    bc.set_defaults(func=cmd_bench_cot)

    m = sub.add_parser("methods", help="list registered methods")
    m.set_defaults(func=cmd_methods)
    return ap


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    try:
        return args.func(args) or 0
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
