#!/bin/sh
# The image's entry point, run by tini (PID 1). Everything else - the volume, the generated
# extra_model_paths.yaml, the dashboard, ComfyUI, nginx, sshd, preset downloads - is done and
# supervised by the runtime itself, so that a `docker stop` reaches it directly.
# MODE picks what the container is: a pod (the default: dashboard, ComfyUI, nginx, sshd) or a
# RunPod Serverless worker (ComfyUI and the RunPod handler; arguments go to the RunPod SDK).
set -eu
case "${MODE:-pod}" in
    pod) exec comfyui-docker start "$@" ;;
    serverless) exec comfyui-docker serverless "$@" ;;
    *)
        echo "startup.sh: MODE=${MODE} is not known: use pod (the default) or serverless" >&2
        exit 2
        ;;
esac
