"""Workflows, from a file to a prompt ComfyUI runs.

service.py      the use case every caller shares: load, prepare, missing models, install, submit, run
missing.py      a workflow's missing models, who provides them, whether their URL may be fetched
convert.py      the editor's UI format to the API format, as the editor does it
links.py        following links through subgraphs, bypassed nodes, primitives, named wires
graph.py        the UI format loaded: graphs, links, flattened nodes
widgets.py      a node's widgets from its definition in /object_info
nodetypes.py    node types known by name (frontend-only ones, titles, node packs)
prompts.py      dynamic prompts in text widgets
params.py       `--set` and form values applied to a prompt, checked
refs.py         the model files a workflow names, and which are missing
object_info.py  ComfyUI's node definitions, the last copy kept on the volume
templates.py    ComfyUI's official templates
saved.py        the saved workflows: ComfyUI's own user/default/workflows
"""
