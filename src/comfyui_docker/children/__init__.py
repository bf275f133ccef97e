"""The programs `start` supervises, one module each; each gives its supervised `Service`.

    comfyui.py      ComfyUI: an `Instance` (port, GPU, database, temp folder, log, name), its
                    command line and spec, and its Service (held when not installed or blocked)
    comfyui_env.py  which of our variables ComfyUI sees, its venv first on PATH, the constraints
    nginx.py        nginx in front: the config (template nginx.conf.j2), `nginx -t`, its Service
    sshd.py         sshd for PUBLIC_KEY: keys, config, `sshd -t`, its Service

How a child is supervised (states, restarts, stop signals, logs) is `supervisor/`'s, the same for
all; what each one is and how it is made ready to run is here.
"""
