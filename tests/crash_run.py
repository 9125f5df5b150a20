"""`python -m tests.crash_run STAGE:STEP ARGS...`: `python -m benchmark ARGS...` with a checkpoint
hook installed (methods/lm/sft.py CHECKPOINT_HOOKS) that ends the process with exit code 3 right
after the checkpoint of optimizer step STEP of the training stage STAGE (the artifact kind it
trains: sft, lasar-stage2, lasar-mixed, cot-gream, rl, lasar-rl, latentr3-sft, latentr3-rl): a
deterministic kill inside exactly one stage, for the resume tests. The stage must run in this
process (one method, or jobs=1): a parallel run's children do not inherit the hook."""
import os
import sys


def main(argv):
    spec, args = argv[0], argv[1:]
    from methods.lm import sft

    def crash(stage, step):
        if f"{stage}:{step}" == spec:
            os._exit(3)
    sft.CHECKPOINT_HOOKS.append(crash)
    from benchmark.cli import main as cli
    return cli(args)


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
