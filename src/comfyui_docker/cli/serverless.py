"""`comfyui-docker serverless`: the RunPod Serverless worker (MODE=serverless in the image).

The RunPod SDK's own arguments are declared here (so `--help` lists them) and passed on to it
unchanged: `--rp_serve_api --rp_api_port 8000` serves the SDK's local test API (POST /runsync,
/run, /status/{id}, /stream/{id}) with the real handler; `--test_input '{"input": ...}'` runs one
job and exits (0 done, 1 failed); without either, it takes jobs from RunPod.
"""

from __future__ import annotations

import argparse

#: The SDK's flags (runpod.serverless's own argument parser): name -> takes a value.
SDK_FLAGS = {
    "rp_serve_api": False,
    "rp_api_port": True,
    "rp_api_host": True,
    "rp_api_concurrency": True,
    "rp_log_level": True,
    "rp_debugger": False,
    "test_input": True,
}


def sdk_argv(args: argparse.Namespace) -> list[str]:
    """The SDK's flags as they were given, for its own parser (it reads sys.argv)."""
    out: list[str] = []
    for name, takes_value in SDK_FLAGS.items():
        value = getattr(args, name, None)
        if takes_value and value is not None:
            out += [f"--{name}", str(value)]
        elif not takes_value and value:
            out.append(f"--{name}")
    return out


def cmd_serverless(args: argparse.Namespace) -> int:
    from ..serverless.worker import main

    return main(sdk_argv(args))


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serverless",
        help="the RunPod Serverless worker: ComfyUI supervised, jobs through the RunPod SDK",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sdk = p.add_argument_group("RunPod SDK (passed on to runpod.serverless.start)")
    sdk.add_argument("--rp_serve_api", action="store_true", help="serve the SDK's local test API")
    sdk.add_argument("--rp_api_port", type=int, metavar="PORT", help="its port (SDK default 8000)")
    sdk.add_argument("--rp_api_host", metavar="HOST", help="its address (SDK default localhost)")
    sdk.add_argument("--rp_api_concurrency", type=int, metavar="N", help="its worker count (SDK default 1)")
    sdk.add_argument("--rp_log_level", metavar="LEVEL", help="the SDK's log level (ERROR, WARN, INFO, DEBUG)")
    sdk.add_argument(
        "--rp_debugger", action="store_true", help="the SDK's debugger output in each job's result"
    )
    sdk.add_argument("--test_input", metavar="JSON", help='run one job ({"input": {...}}) and exit')
    p.set_defaults(handler=cmd_serverless)
