"""A job's input: worker-comfyui 5.x's fields and wording, and ours."""

from __future__ import annotations

import base64
import json

import pytest

from comfyui_docker.serverless.request import JobInputError, JobRequest, parse_job_input, plain_name

GRAPH = {"1": {"class_type": "EmptyImage", "inputs": {}}}
PNG = b"\x89PNG\r\n\x1a\n-bytes-"


def test_worker_comfyuis_input() -> None:
    encoded = base64.b64encode(PNG).decode()
    request = parse_job_input(
        {
            "workflow": GRAPH,
            "images": [
                {"name": "a.png", "image": encoded},
                {"name": "b.png", "image": "data:image/png;base64," + encoded},
                {"name": "c.png", "image": encoded[:10] + "\n" + encoded[10:]},  # line-wrapped base64
            ],
            "comfy_org_api_key": "k",
            "unknown": "ignored",
        }
    )
    assert request.workflow == GRAPH and request.template is None
    assert [(i.name, i.data) for i in request.images] == [("a.png", PNG), ("b.png", PNG), ("c.png", PNG)]
    assert request.comfy_org_api_key == "k" and request.values == {} and not request.install_missing
    assert parse_job_input(json.dumps({"workflow": GRAPH})) == JobRequest(workflow=GRAPH)  # input as a string


def test_ours_beside_it() -> None:
    request = parse_job_input({"template": "sdxl", "set": {"KSampler.seed": 42}, "install_missing": True})
    assert request.template == "sdxl" and request.values == {"KSampler.seed": 42} and request.install_missing


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (None, "Please provide input"),
        ("{not json", "Invalid JSON format in input"),
        ([1], "input must be a JSON object"),
        ({}, "Missing 'workflow' parameter"),
        ({"images": []}, "Missing 'workflow' parameter"),
        ({"workflow": GRAPH, "template": "x"}, "send either 'workflow' or 'template', not both"),
        ({"workflow": "text"}, "'workflow' must be a JSON object"),
        (
            {"workflow": GRAPH, "images": {"name": "a"}},
            "'images' must be a list of objects with 'name' and 'image'",
        ),
        (
            {"workflow": GRAPH, "images": [{"image": "AAAA"}]},
            "'images' must be a list of objects with 'name' and",
        ),
        ({"workflow": GRAPH, "images": [{"name": "../x.png", "image": "AAAA"}]}, "must be a plain file name"),
        (
            {"workflow": GRAPH, "images": [{"name": "a.png", "image": "@@@@"}]},
            "images[0] ('a.png') is not valid base64",
        ),
        ({"workflow": GRAPH, "images": [{"name": "a.png", "image": ""}]}, "images[0] ('a.png') is empty"),
        (
            {"workflow": GRAPH, "images": [{"name": "a.png", "image": 5}]},
            "images[0].image must be a base64 string",
        ),
        (
            {
                "workflow": GRAPH,
                "images": [{"name": "a.png", "image": "AAAA"}, {"name": "a.png", "image": "AAAA"}],
            },
            "the name 'a.png' is used twice",
        ),
        ({"workflow": GRAPH, "set": ["KSampler.seed=1"]}, "'set' must be an object"),
        ({"workflow": GRAPH, "install_missing": "yes"}, "'install_missing' must be true or false"),
        ({"template": 3}, "'template' must be the name of an official template"),
    ],
)
def test_bad_input_says_what_is_wrong(raw: object, message: str) -> None:
    with pytest.raises(JobInputError) as caught:
        parse_job_input(raw)
    assert message in caught.value.message


def test_plain_names() -> None:
    assert plain_name("input image (1).png")
    for bad in ("", "a/b.png", "a\\b.png", ".hidden.png", "..", " a.png"):
        assert not plain_name(bad), bad
