"""The widgets ComfyUI's editor gives a node, derived from its definition in `/object_info`.

A saved UI-format workflow stores a node's widget values as a bare list (`widgets_values`), in
the order the editor created the widgets. That order follows the definition's `input_order`
(required, then optional), with a few extra widgets the editor adds on its own:

- a number or combo declaring `control_after_generate` is followed by a `control_after_generate`
  combo ("fixed", "randomize", ...): saved in `widgets_values`, never sent to ComfyUI;
- a combo with `image_upload` / `video_upload` / `audio_upload` is followed by an upload button
  (saved, never sent); `Load3D`-style `file_upload` buttons are saved and also sent;
- a `COMFY_DYNAMICCOMBO_V3` combo is followed by the widgets of the option it selects, named
  `"<combo>.<input>"`;
- inputs that are only sockets (`MODEL`, `IMAGE`, `forceInput`, ...) have no widget.

`layout_values` walks a definition and a `widgets_values` list together and returns the named
values that go into the API prompt.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
DYNAMIC_COMBO = "COMFY_DYNAMICCOMBO_V3"
AUTOGROW = "COMFY_AUTOGROW_V3"
UPLOAD_OPTIONS = ("image_upload", "video_upload", "audio_upload")

#: Widgets the editor draws for types it knows beyond the primitives (name -> sent to ComfyUI).
CUSTOM_WIDGET_TYPES = frozenset(
    {"COLOR", "BOUNDING_BOX", "CURVE", "IMAGECOMPARE", "COMPOSITOR", "BOUNDING_BOXES", "COLORS", "LOAD_3D"}
)

#: Extra widgets some core front-end extensions add to these classes, after the definition's
#: widgets: (name, sent to ComfyUI). Their values are saved in `widgets_values`.
EXTRA_WIDGETS: dict[str, tuple[tuple[str, bool], ...]] = {
    "SaveGLB": (("image", True),),
    "Preview3D": (("image", True),),
}

#: Classes whose editor extension adds a growing list of widgets after the definition's ones:
#: class -> (fixed extra widget names, prefix of the numbered widgets). All are sent.
GROWING_WIDGETS: dict[str, tuple[tuple[str, ...], str]] = {
    "CustomCombo": (("index",), "option"),
}

#: Buttons the 3D loader adds after a combo with `file_upload` (saved and sent, value = action).
FILE_UPLOAD_BUTTONS = (
    ("upload 3d model", "upload3dmodel"),
    ("upload extra resources", "uploadExtraResources"),
    ("clear", "clear"),
)

#: Custom widget types whose value the editor always sends as a fixed placeholder.
PLACEHOLDER_VALUES: dict[str, Any] = {"IMAGECOMPARE": ["", ""]}


@dataclass(frozen=True)
class Widget:
    name: str
    api: bool  # sent to ComfyUI in the prompt
    spec: tuple[Any, ...] = ()  # the definition's input spec, for defaults and checks


def input_specs(definition: Mapping[str, Any]) -> Iterator[tuple[str, list[Any]]]:
    """(name, spec) of every required and optional input, in the definition's order."""
    inputs = definition.get("input") or {}
    order = definition.get("input_order") or {}
    for section in ("required", "optional"):
        specs = inputs.get(section) or {}
        names = order.get(section) or list(specs)
        for name in names:
            spec = specs.get(name)
            if spec is not None:
                yield name, list(spec) if isinstance(spec, (list, tuple)) else [spec]


def spec_type(spec: list[Any]) -> Any:
    return spec[0] if spec else None


def spec_options(spec: list[Any]) -> dict[str, Any]:
    return spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}


def combo_choices(spec: list[Any]) -> list[Any] | None:
    kind = spec_type(spec)
    if isinstance(kind, list):
        return kind
    if kind == "COMBO":
        opts = spec_options(spec).get("options")
        return list(opts) if isinstance(opts, list) else []
    if kind == DYNAMIC_COMBO:
        return [o.get("key") for o in spec_options(spec).get("options") or [] if isinstance(o, dict)]
    return None


def widget_kind(spec: list[Any]) -> str | None:
    """'INT', 'FLOAT', 'STRING', 'BOOLEAN', 'COMBO', a custom widget type, or None for a socket."""
    kind = spec_type(spec)
    opts = spec_options(spec)
    if opts.get("forceInput"):
        return None
    if isinstance(kind, list):
        return "COMBO"
    if not isinstance(kind, str):
        return None
    if kind in WIDGET_TYPES or kind == DYNAMIC_COMBO:
        return "COMBO" if kind == DYNAMIC_COMBO else kind
    widget_type = opts.get("widgetType")
    if isinstance(widget_type, str) and widget_type in WIDGET_TYPES:
        return widget_type
    if kind in CUSTOM_WIDGET_TYPES:
        return kind
    return None


def default_value(spec: list[Any]) -> Any:
    """The value the editor gives a fresh widget."""
    opts = spec_options(spec)
    kind = widget_kind(spec)
    if "default" in opts:
        return opts["default"]
    if kind == "COMBO":
        choices = combo_choices(spec) or []
        return choices[0] if choices else None
    if kind in ("INT", "FLOAT"):
        return opts.get("min", 0) if isinstance(opts.get("min", 0), (int, float)) else 0
    if kind == "STRING":
        return ""
    if kind == "BOOLEAN":
        return False
    return None


SEED_NAMES = frozenset({"seed", "noise_seed"})


def control_default(spec: list[Any], name: str = "") -> str | None:
    """The initial value of the control widget that follows this input's widget, if it has one."""
    flag = spec_options(spec).get("control_after_generate")
    if flag is None and name in SEED_NAMES and widget_kind(spec) in ("INT", "FLOAT"):
        flag = True
    if flag is True:
        return "randomize"
    if isinstance(flag, str):
        return flag
    return None


class ValueCursor:
    """Hands out saved values in order (list form) or by name (dict form)."""

    def __init__(self, values: Any) -> None:
        self.named = values if isinstance(values, Mapping) else None
        self.items = list(values) if isinstance(values, list) else []
        self.pos = 0

    def take(self, name: str, default: Any) -> Any:
        if self.named is not None:
            return self.named.get(name, default)
        if self.pos < len(self.items):
            value = self.items[self.pos]
            self.pos += 1
            return value
        self.pos += 1
        return default

    def remaining(self) -> bool:
        return self.named is None and self.pos < len(self.items)


def layout_values(class_type: str, definition: Mapping[str, Any], values: Any) -> dict[str, Any]:
    """Named widget values for the prompt, in widget order (sockets and UI-only widgets left out)."""
    out: dict[str, Any] = {}
    cursor = ValueCursor(values)
    for name, spec in input_specs(definition):
        _take_input(name, spec, cursor, out)
    for name, api in EXTRA_WIDGETS.get(class_type, ()):
        value = cursor.take(name, None)
        if api:
            out[name] = value
    growing = GROWING_WIDGETS.get(class_type)
    if growing is not None:
        fixed, prefix = growing
        for name in fixed:
            out[name] = cursor.take(name, None)
        number = 1
        while cursor.remaining():
            out[f"{prefix}{number}"] = cursor.take(f"{prefix}{number}", None)
            number += 1
    return out


def _take_input(name: str, spec: list[Any], cursor: ValueCursor, out: dict[str, Any]) -> None:
    kind = widget_kind(spec)
    if kind is None:
        return
    opts = spec_options(spec)
    value = cursor.take(name, default_value(spec))
    out[name] = PLACEHOLDER_VALUES.get(kind, value)
    control = control_default(spec, name)
    if control is not None:
        cursor.take("control_after_generate", control)
    if kind == "COMBO" and any(opts.get(key) for key in UPLOAD_OPTIONS):
        cursor.take("upload", None)
    if kind == "COMBO" and opts.get("file_upload"):
        for button, default in FILE_UPLOAD_BUTTONS:
            out[button] = cursor.take(button, default)
    if spec_type(spec) == DYNAMIC_COMBO:
        for option in opts.get("options") or []:
            if isinstance(option, dict) and option.get("key") == value:
                sub_inputs = option.get("inputs") or {}
                for sub_name, sub_spec in input_specs({"input": sub_inputs}):
                    _take_input(f"{name}.{sub_name}", sub_spec, cursor, out)
                break


def widget_names(class_type: str, definition: Mapping[str, Any], values: Any = None) -> list[str]:
    """Names of the widgets sent to ComfyUI (for a node whose saved values are `values`)."""
    return list(layout_values(class_type, definition, values))
