"""RunPod Serverless from the same image: `comfyui-docker serverless` (MODE=serverless).

worker.py    the process: ComfyUI supervised on a runtime thread, the RunPod SDK on the main one
jobs.py      JobRunner: one job from its input to its output (or its readable error)
request.py   a job's input, checked (worker-comfyui 5.x's fields and ours)
outputs.py   output files as base64 or S3 URLs, with their media kind
progress.py  stage, node and step through the SDK's progress_update
failures.py  a failed job's answer ({"error": text, "details": ...})
config.py    the serverless settings, and the volume at /runpod-volume

Nothing here imports the RunPod SDK at module level: a pod never loads it.
"""
