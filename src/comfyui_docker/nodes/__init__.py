"""Custom nodes on the volume, and their Python packages in a layer on the volume.

    /workspace/custom_nodes/<name>/            nodes installed by us or by ComfyUI-Manager
    /workspace/python/<key>/                   the package layer of one image kind, e.g.
        lib/python3.11/site-packages/          key cp311-torch2.9.1+cu128 (Python and torch build)
        constraints-<image>.txt                pins every package of the image (the image wins)
        state.json                             per node: requirements hash, ok or the failure
    /workspace/cache/nodes/sources.json        where each volume node came from (for `update`)

Modules, by job:

    image.py      what ComfyUI's Python has: version, torch build, its packages (one probe)
    layer.py      the layer: its key and folders, the constraints file, the .pth hook, state.json
    pip.py        pip into the layer with the constraints (never uv: see layer.py), its errors
    names.py      node names and the volume folder: `../x` and links out of the volume refused
    sources.py    a node from a git URL (`@commit`), a local folder or an archive, into staging
    archives.py   .zip / .tar.gz members checked before anything is unpacked
    inventory.py  the image's and the volume's nodes, their commit and requirements
    reqcheck.py   are a node's requirements met? (asked of ComfyUI's Python, no network)
    imports.py    import results of the last ComfyUI start, read from its log
    report.py     what `nodes list` / `check` and the Nodes page show
    service.py    install / update / remove, under the volume lock
    tasks.py      the dashboard's node tasks, their output pushed as `node_task` events
    startup.py    the start-up phase: check and install requirements in time, the rest later
    manager.py    ComfyUI-Manager's config: pip (which honours the layer), never uv

Nothing here runs at import time, and `start` imports only startup.py (and what it needs).
"""
