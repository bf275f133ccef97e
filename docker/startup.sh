#!/bin/sh
# The image's entry point, run by tini (PID 1). Everything else - the volume, the generated
# extra_model_paths.yaml, the dashboard, ComfyUI, nginx, sshd, preset downloads - is done and
# supervised by the runtime itself, so that a `docker stop` reaches it directly.
set -eu
exec comfyui-docker start "$@"
