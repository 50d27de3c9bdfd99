"""`attn rope` on the command line: its flags read into a Rope, and the flags that would
change nothing refused. app.py writes the output, as for every command."""

from __future__ import annotations

from typing import Any

from ..errors import AttnError
from ..render import formats
from ..rope import Llama3Scaling, Rope
from .options import Parsed

# The factors of the Llama 3 scaling, which mean something with --rope-scaling llama3 only.
SCALING_FLAGS = (
    "rope_factor",
    "rope_low_freq_factor",
    "rope_high_freq_factor",
    "rope_original_context",
)


def rope_from(values: dict[str, Any], explicit: frozenset[str]) -> Rope:
    """The RoPE settings the --rope-* flags give (the attention commands' and `attn
    rope`'s alike); a scaling factor without --rope-scaling llama3 is a usage error."""
    scaling = None
    if values["rope_scaling"] is not None:
        if values["rope_scaling"] != "llama3":
            raise AttnError.usage(
                f"--rope-scaling {values['rope_scaling']} is not a scaling attn knows; give "
                "llama3 (Llama 3.1's frequency scaling)"
            )
        scaling = Llama3Scaling(
            values["rope_factor"],
            values["rope_low_freq_factor"],
            values["rope_high_freq_factor"],
            values["rope_original_context"],
        )
    else:
        for name in SCALING_FLAGS:
            if name in explicit:
                flag = "--" + name.replace("_", "-")
                raise AttnError.usage(
                    f"{flag} has no effect without --rope-scaling llama3; add it, or drop {flag}"
                )
    return Rope(values["rope_theta"], values["rope_layout"], scaling, values["rope_partial"])


def check_flags(parsed: Parsed, spec: formats.FormatSpec) -> None:
    """A flag that would change nothing is a mistake worth telling the user about."""
    given = parsed.explicit
    values = parsed.values
    if not spec.rope:
        drawn = _either(formats.names(lambda f: f.rope and f.drawn))
        written = _either(formats.names(lambda f: f.rope and not f.drawn))
        raise AttnError.usage(
            f"attn rope writes tables (-f {drawn}) or data (-f {written}), not {spec.name.value}"
        )
    if "color" in given and not spec.coloured:
        flag = "--color" if values["color"] else "--no-color"
        coloured = _either(
            [name.upper() if name != "table" else "tables" for name in formats.names(_coloured)]
        )
        raise AttnError.usage(
            f"{flag} has no effect on {spec.name.value} output (only {coloured} have "
            f"colours); drop {flag}"
        )
    if not 0 <= values["precision"] <= 15:
        raise AttnError.usage(
            f"--precision {values['precision']} is out of range; tables show 0 to 15 decimals"
        )
    if "precision" in given and not spec.rounded:
        rounded = formats.names(lambda f: f.rounded and f.rope)
        raise AttnError.usage(
            f"--precision only rounds tables, and the output is {spec.name.value}, which "
            f"keeps full precision; add -f {rounded[0]} (or {', '.join(rounded[1:])}), or "
            "drop --precision"
        )


def _coloured(spec: formats.FormatSpec) -> bool:
    return spec.coloured and spec.rope


def _either(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]
