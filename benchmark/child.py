"""One method of a parallel run, in its own process (benchmark/schedule.py starts it):

    python -m benchmark.child REQUEST_JSON METHOD

REQUEST_JSON is the parent's RunRequest (benchmark/plan.py) with `jobs=1` and the child's
`threads` among its overrides. The child plans, trains, ranks and writes that one method's
results folder, exactly as a sequential run would, and exits 0, or 1 if the method failed.
"""
import sys

from .cli import setup_logging
from .plan import Plan, RunRequest
from protocol.errors import BenchmarkError
from .runner import run_plan


def run_child(argv=None):
    request_json, method = (argv if argv is not None else sys.argv[1:])
    req = RunRequest.from_json(request_json)
    setup_logging()
    try:
        plan = Plan(req, [method])
        return 0 if run_plan(plan)[method] is not None else 1
    except BenchmarkError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(run_child())
