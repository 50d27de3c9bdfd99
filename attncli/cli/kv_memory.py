"""`attn kv-memory` on the command line: its flags read into a KVConfig, and the flags
that would change nothing refused. app.py writes the output, as for every command."""

from __future__ import annotations

from ..errors import AttnError
from ..kv_memory import KVConfig
from ..render import formats
from .options import Parsed


def config_from(parsed: Parsed) -> KVConfig:
    """The model configuration a `kv-memory` command line gives."""
    values = parsed.values
    return KVConfig(
        emb_dim=values["emb_dim"],
        heads=values["heads"],
        layers=values["layers"],
        context_length=values["context_length"],
        batch=values["batch"],
        dtype=values["dtype"],
        kv_groups=values["kv_groups"],
        latent_dim=values["latent_dim"],
        window=values["window"],
        swa_ratio=values["swa_ratio"],
    )


def check_flags(parsed: Parsed, spec: formats.FormatSpec) -> None:
    """A flag that would change nothing is a mistake worth telling the user about."""
    given = parsed.explicit
    if not spec.kv_memory:
        drawn = _either(formats.names(lambda f: f.kv_memory and f.drawn))
        written = _either(formats.names(lambda f: f.kv_memory and not f.drawn))
        raise AttnError.usage(
            f"attn kv-memory writes a table (-f {drawn}) or data (-f {written}), not "
            f"{spec.name.value}"
        )
    if "swa_ratio" in given and parsed.values["window"] is None:
        raise AttnError.usage(
            "--swa-ratio has no effect without --window (it says which layers slide the "
            "window); add --window W, or drop --swa-ratio"
        )
    if "color" in given and not spec.coloured:
        flag = "--color" if parsed.values["color"] else "--no-color"
        coloured = _either(
            [name.upper() if name != "table" else "tables" for name in formats.names(_coloured)]
        )
        raise AttnError.usage(
            f"{flag} has no effect on {spec.name.value} output (only {coloured} have "
            f"colours); drop {flag}"
        )


def _coloured(spec: formats.FormatSpec) -> bool:
    return spec.coloured and spec.kv_memory


def _either(words: list[str]) -> str:
    return ", ".join(words[:-1]) + f" or {words[-1]}" if len(words) > 1 else words[0]
