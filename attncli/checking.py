"""`attn check`: a reader's numbers against the right ones, stage by stage, and the
mistakes of the catalogue (mistakes.py) that reproduce them.

Each stage the reader gives is compared in the form given (joined or per head, a batch
axis dropped, one --query row), to a tolerance of its precision: half a unit of the
last digit printed, plus the rounding of the arithmetic that made it (float64's, or
float32's for float32 numbers and for printed ones, which torch computes in float32).
The first stage that differs is where to look; a later stage follows from it when the
right computation, carried on from the reader's own numbers, gives theirs. Then every
mistake that can happen with the settings is run; those that give the reader's numbers
at every stage given are named (two together when no one alone does). A benign one
(float32's rounding, scores given after scaling) means the numbers are right.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

import numpy as np
from numpy.typing import NDArray

from .attention import COMPUTE_BYTES_PER_SCORE, Prepared, check_memory
from .errors import AttnError, setting, shown_text
from .inputs.theirs import Given, Precision, Theirs
from .mistakes import Mistake, applicable, combined
from .recipe import RIGHT, Override, Setup, Stages, run

Array = NDArray[Any]

# The rounding each arithmetic leaves, relative to the largest number of a stage (and
# at least 1): float64's is far below any mistake, float32's (torch's default) too.
SLACK = {"float64": 1e-9, "float32": 1e-5, "float16": 5e-3}
# Bytes per (head, query, key) entry a check holds: the right stages, a mistake's, their
# temporaries.
CHECK_BYTES_PER_SCORE = 4 * COMPUTE_BYTES_PER_SCORE
# Pairs of mistakes are tried when no one alone reproduces the numbers, up to this much
# work (pairs x heads x queries x keys).
PAIR_BUDGET = 50_000_000


class Form(NamedTuple):
    """One shape a stage may be given in, and how to read it."""

    name: str  # "joined", "per head", ...
    shape: tuple[int, ...]  # the reader's array's shape (without a batch axis)
    axes: tuple[str, ...]  # what each axis counts: head, kv_head, query, key, token, dim
    pick: Callable[[Stages], Array]  # this form of a computation's stage
    carry: Callable[[Array], Override] | None  # the reader's numbers, to carry on from


class StageCheck(NamedTuple):
    """One stage of the reader's numbers against the right ones."""

    given: Given
    form: Form
    theirs: NDArray[np.float64]  # as compared: batch item 0
    right: Array
    tolerance: NDArray[np.float64]  # per number
    differs: NDArray[np.bool_]
    batch: int | None  # the batch size, when a leading batch axis was dropped
    follows: bool | None = None  # a later stage: whether its difference follows from earlier ones

    @property
    def stage(self) -> str:
        return self.given.stage

    @property
    def matches(self) -> bool:
        return not bool(self.differs.any())

    @property
    def max_abs_diff(self) -> float | None:
        """The largest |theirs - right| where both are finite (None: no such number)."""
        both = np.isfinite(self.theirs) & np.isfinite(self.right)
        if not both.any():
            return None
        return float(np.max(np.abs(self.theirs[both] - self.right[both])))

    @property
    def nonfinite(self) -> int:
        """Numbers where one side is -inf, inf or NaN and the other is not the same."""
        return int((self.differs & ~(np.isfinite(self.theirs) & np.isfinite(self.right))).sum())

    @property
    def worst(self) -> tuple[int, ...] | None:
        """Where they differ most: a number one side has not finite, else the largest
        difference (None: they match)."""
        if self.matches:
            return None
        finite = np.isfinite(self.theirs) & np.isfinite(self.right)
        odd = self.differs & ~finite
        if odd.any():
            return tuple(int(i) for i in np.argwhere(odd)[0])
        with np.errstate(invalid="ignore"):
            gap = np.where(self.differs, np.abs(self.theirs - self.right), -1.0)
        return tuple(int(i) for i in np.unravel_index(int(np.argmax(gap)), gap.shape))


class Diagnosis(NamedTuple):
    """A mistake (or two together) whose numbers are the reader's."""

    mistakes: tuple[Mistake, ...]
    reproduces: tuple[str, ...]  # the stages given that it reproduces
    misses: tuple[str, ...]  # those it does not (none for a full diagnosis)

    @property
    def benign(self) -> bool:
        return all(mistake.benign for mistake in self.mistakes)


class Report(NamedTuple):
    """What attn check found."""

    prepared: Prepared
    theirs: Theirs
    query: int | None
    checks: tuple[StageCheck, ...]
    diagnoses: tuple[Diagnosis, ...]
    tried: int  # mistakes tried (pairs counted too)

    @property
    def first(self) -> StageCheck | None:
        """The first stage that differs: where to look."""
        return next((c for c in self.checks if not c.matches), None)

    @property
    def right_after_all(self) -> bool:
        """Whether the differences are benign: the numbers are right."""
        return self.first is not None and any(d.benign and not d.misses for d in self.diagnoses)

    @property
    def matches(self) -> bool:
        """Whether the reader's numbers are right (attn check exits 0)."""
        return self.first is None or self.right_after_all

    @property
    def status(self) -> str:
        return "matches" if self.matches else "differs"


def check(
    prepared: Prepared, theirs: Theirs, query: int | None = None, memory: int | None = None
) -> Report:
    """Compare the reader's numbers with those of `prepared` attention (one `query` row,
    or theirs' own), then find the mistakes that reproduce them. `memory`: bytes free,
    for refusing sizes that cannot fit (None: not checked)."""
    query = _query(theirs, query, prepared)
    check_memory(
        prepared.n_keys,
        prepared.n_queries,
        prepared.heads,
        CHECK_BYTES_PER_SCORE,
        "attn check",
        memory,
    )
    _check_tokens(theirs, prepared)
    setup = Setup.of(prepared)
    right = run(RIGHT, setup)
    checks = []
    for given in theirs.given:
        form, array, batch = _fit(given, _forms(given.stage, setup, right, query), prepared)
        checks.append(_compare(given, form, array, form.pick(right), batch, setup))
    checks = _with_follows(checks, setup)
    if all(c.matches for c in checks):
        return Report(prepared, theirs, query, tuple(checks), (), 0)
    diagnoses, tried = _diagnose(checks, setup)
    return Report(prepared, theirs, query, tuple(checks), diagnoses, tried)


# ---------------------------------------------------------------- shapes


def _query(theirs: Theirs, query: int | None, prepared: Prepared) -> int | None:
    if theirs.query is None:
        return query
    if query is not None and query != theirs.query:
        raise AttnError.usage(
            f"{theirs.source} holds the row of query #{theirs.query}, and "
            f"{setting('query', query)} asks for #{query}; drop {setting('query')}"
        )
    if theirs.query >= prepared.n_queries:
        raise AttnError(
            f"{theirs.source} holds the row of query #{theirs.query}, but "
            f"{prepared.embeddings.source} has {prepared.n_queries} tokens; give the INPUT "
            "it was made from"
        )
    return theirs.query


def _check_tokens(theirs: Theirs, prepared: Prepared) -> None:
    """The tokens THEIRS names (attn's own output's `tokens`, or a JSON object's): they
    must be the INPUT's (the queries' tokens, as attn's output names them)."""
    if theirs.tokens is None:
        return
    if tuple(theirs.tokens) != tuple(prepared.embeddings.tokens):
        shown = ", ".join(repr(shown_text(t)) for t in theirs.tokens[:6])
        more = ", …" if len(theirs.tokens) > 6 else ""
        raise AttnError(
            f"{theirs.source} was made from the tokens {shown}{more}, not those of "
            f"{prepared.embeddings.source}; give the INPUT it was made from"
        )


def _joined(per_head: Array) -> Array:
    """Heads side by side: (H, [T,] d) -> ([T,] H * d), as the book joins them."""
    moved = np.moveaxis(per_head, 0, -2)  # (H, T, d) -> (T, H, d)
    joined: Array = moved.reshape(*moved.shape[:-2], moved.shape[-2] * moved.shape[-1])
    return joined


def _same(array: Array) -> Array:
    return np.asarray(array)


def _with_head_axis(array: Array) -> Array:
    return np.asarray(array)[np.newaxis]  # (T_q, T_k) -> (1, T_q, T_k)


def _scores_of(stages: Stages) -> Array:
    return stages.scores


def _weights_of(stages: Stages) -> Array:
    return stages.weights


def _forms(stage: str, setup: Setup, right: Stages, query: int | None) -> list[Form]:
    """The forms `stage` may be given in, with the settings of `setup`."""
    p = setup.prepared
    T_q, T_k, H, G, d = p.n_queries, p.n_keys, setup.heads, setup.kv_heads, setup.head_dim
    forms: list[Form] = []

    def add(
        name: str,
        shape: tuple[int, ...],
        axes: tuple[str, ...],
        pick: Callable[[Stages], Array],
        canonical: Callable[[Array], Array] | None,
        token_axis: int,  # of the canonical array
    ) -> None:
        carry: Callable[[Array], Override] | None = None
        if canonical is not None:
            convert = canonical

            def carry(theirs: Array) -> Override:
                def put(array: Array) -> Array:
                    if query is None:
                        return convert(theirs).astype(array.dtype).reshape(array.shape)
                    replaced: Array = array.copy()
                    index: list[Any] = [slice(None)] * array.ndim
                    index[token_axis] = query
                    replaced[tuple(index)] = convert(theirs).reshape(replaced[tuple(index)].shape)
                    return replaced

                return put

        if query is not None:
            row = axes.index("query") if "query" in axes else axes.index("token")
            whole = pick

            def pick(stages: Stages, whole: Callable[[Stages], Array] = whole) -> Array:
                taken: Array = np.take(whole(stages), query, axis=row)
                return taken

            shape = shape[:row] + shape[row + 1 :]
            axes = axes[:row] + axes[row + 1 :]
        forms.append(Form(name, shape, axes, pick, carry))

    if stage == "queries":
        add("joined", (T_q, H * d), ("token", "dim"), lambda s: s.queries, _same, 0)
        if H > 1:
            add("per head", (H, T_q, d), ("head", "token", "dim"), lambda s: s.queries_heads,
                _joined, 0)  # fmt: skip
    elif stage in ("keys", "values"):
        joined = (lambda s: s.keys) if stage == "keys" else (lambda s: s.values)
        heads = (lambda s: s.keys_heads) if stage == "keys" else (lambda s: s.values_heads)
        wide = (lambda s: s.keys_expanded) if stage == "keys" else (lambda s: s.values_expanded)
        add("joined", (T_k, G * d), ("token", "dim"), joined, _same, 0)
        if G > 1:
            add("per head", (G, T_k, d), ("kv_head", "token", "dim"), heads, _joined, 0)
        if H > G:
            add("per query head", (H, T_k, d), ("head", "token", "dim"), wide, None, 0)
    elif stage in ("scores", "weights"):
        matrix: Callable[[Stages], Array] = _scores_of if stage == "scores" else _weights_of
        if H == 1:
            add("matrix", (T_q, T_k), ("query", "key"), lambda s: matrix(s)[0],
                _with_head_axis, 1)  # fmt: skip
        else:
            add("per head", (H, T_q, T_k), ("head", "query", "key"), matrix, _same, 1)
    else:
        add("output", right.context.shape, ("token", "dim"), lambda s: s.context, _same, 0)
        if H > 1:
            add("per head", (H, T_q, d), ("head", "token", "dim"), lambda s: s.context_heads,
                None, 0)  # fmt: skip
    return forms


def _fit(given: Given, forms: list[Form], prepared: Prepared) -> tuple[Form, Array, int | None]:
    """The form the reader's array has (a leading batch axis dropped: item 0), or an
    AttnError naming the shapes the stage has here."""
    shape = tuple(given.array.shape)
    for form in forms:
        if shape == form.shape:
            return form, given.array, None
    for form in forms:
        if shape[1:] == form.shape:
            return form, given.array[0], shape[0]
    raise AttnError(
        f"{given.where}: shape {shape}, but {given.stage} here "
        f"{'is' if given.stage == 'context' else 'are'} {_shapes(forms)}: "
        f"{_layout_words(given.stage, prepared)}{_shape_hint(given, forms, prepared)}"
    )


def _shapes(forms: list[Form]) -> str:
    shown = [f"{form.shape}" + (f" {form.name}" if i else "") for i, form in enumerate(forms)]
    return " or ".join(shown)


def _layout_words(stage: str, prepared: Prepared) -> str:
    T_q, T_k = prepared.n_queries, prepared.n_keys
    source = prepared.embeddings.source
    if stage in ("scores", "weights"):
        return f"one row per query token ({T_q} in {source}), one column per key ({T_k})"
    tokens = T_k if stage in ("keys", "values") else T_q
    return f"one row per token ({tokens} in {source}), one column per dimension"


def _shape_hint(given: Given, forms: list[Form], prepared: Prepared) -> str:
    """What may be the matter: other tokens, another --d-out."""
    shape = given.array.shape
    wanted = forms[0].shape
    vectors = given.stage in ("queries", "keys", "values", "context")
    if vectors and len(wanted) >= 1 and prepared.params.projected and shape[-1] != wanted[-1]:
        return (
            f"; made with another {setting('d_out')}? (here "
            f"{setting('d_out', prepared.layout.width)}, {setting('heads')} "
            f"{prepared.heads})"
        )
    return "; give the INPUT and the settings the numbers were made with"


# ---------------------------------------------------------------- comparing


def _slack(precision: Precision, setup: Setup) -> float:
    """The arithmetic's rounding, relative: the numbers' own dtype, or float32 for
    printed numbers (torch's default); at least that of attn's own arithmetic."""
    kind = precision.kind if precision.full else "float32"
    computed = "float32" if setup.dtype == np.dtype(np.float32) else "float64"
    return max(SLACK[kind], SLACK[computed])


def _scale(right: Array) -> float:
    finite = right[np.isfinite(right)]
    return max(1.0, float(np.max(np.abs(finite)))) if finite.size else 1.0


def _differs(theirs: Array, right: Array, tolerance: Array) -> NDArray[np.bool_]:
    """Where two arrays differ by more than `tolerance`; -inf, inf and NaN equal only
    themselves."""
    with np.errstate(invalid="ignore"):
        finite = np.isfinite(theirs) & np.isfinite(right)
        close = finite & (np.abs(theirs - right) <= tolerance)
        same = ~finite & ((theirs == right) | (np.isnan(theirs) & np.isnan(right)))
    differs: NDArray[np.bool_] = ~(close | same)
    return differs


def _compare(
    given: Given, form: Form, theirs: Array, right: Array, batch: int | None, setup: Setup
) -> StageCheck:
    theirs = np.asarray(theirs, dtype=np.float64)
    right = np.asarray(right, dtype=np.float64)
    tolerance = given.precision.half_unit(theirs) + _slack(given.precision, setup) * _scale(right)
    differs = _differs(theirs, right, tolerance)
    return StageCheck(given, form, theirs, right, tolerance, differs, batch)


def _reproduces(c: StageCheck, stages: Stages, spread: float = 0.0) -> bool:
    """Whether a computation gives the reader's numbers of a stage, to their precision
    (or float32's, whichever is looser: a mistake is not a matter of the last bits);
    `spread`: more, for numbers computed from rounded ones."""
    computed = np.asarray(c.form.pick(stages), dtype=np.float64)
    if computed.shape != c.theirs.shape:
        return False
    loose = np.maximum(c.tolerance, SLACK["float32"] * _scale(c.right)) + spread
    return not _differs(c.theirs, computed, loose).any()


def _changes(c: StageCheck, stages: Stages) -> bool:
    """Whether a computation changes a stage's right numbers (beyond their tolerance)."""
    computed = np.asarray(c.form.pick(stages), dtype=np.float64)
    return computed.shape != c.right.shape or bool(_differs(computed, c.right, c.tolerance).any())


def _with_follows(checks: list[StageCheck], setup: Setup) -> list[StageCheck]:
    """Each differing stage after the first: whether it follows from the reader's own
    earlier numbers (the right computation carried on from them gives it)."""
    first = next((i for i, c in enumerate(checks) if not c.matches), None)
    if first is None:
        return checks
    done = checks[: first + 1]
    for i in range(first + 1, len(checks)):
        c = checks[i]
        earlier = {e.stage: e.form.carry(e.theirs) for e in checks[:i] if e.form.carry}
        follows = None
        if not c.matches and any(not e.matches for e in checks[:i] if e.stage in earlier):
            # the earlier numbers' rounding spreads: each of this stage's numbers sums
            # over the keys (or a head's dimensions), scaled by the right numbers' size
            p = setup.prepared
            terms = max(p.n_keys, setup.head_dim)
            rounding = max(float(np.max(e.tolerance)) for e in checks[:i] if e.stage in earlier)
            spread = terms * rounding * _scale(c.right)
            with np.errstate(all="ignore"):
                follows = _reproduces(c, run(RIGHT, setup, earlier), spread)
        done.append(c._replace(follows=follows))
    return done


# ---------------------------------------------------------------- diagnosing


def _diagnose(checks: list[StageCheck], setup: Setup) -> tuple[tuple[Diagnosis, ...], int]:
    """The mistakes (or pairs) that reproduce the reader's numbers; how many were tried."""
    first = next(c for c in checks if not c.matches)
    stages_given = [c.stage for c in checks]
    candidates = applicable(setup)
    full: list[Diagnosis] = []
    partial: list[Diagnosis] = []
    tried = 0

    def attempt(mistakes: tuple[Mistake, ...], stages: Stages) -> None:
        if not any(_changes(c, stages) for c in checks):
            return  # the right numbers here: it cannot be told apart
        got = tuple(c.stage for c in checks if _reproduces(c, stages))
        misses = tuple(s for s in stages_given if s not in got)
        if not misses:
            full.append(Diagnosis(mistakes, got, ()))
        elif first.stage in got and all(
            c.stage in got for c in checks if c.stage != first.stage and c.matches
        ):
            partial.append(Diagnosis(mistakes, got, misses))

    with np.errstate(all="ignore"):
        for mistake in candidates:
            tried += 1
            attempt((mistake,), run(mistake.recipe(), setup))
        if not full:
            pairs = list(_pairs(candidates))
            p = setup.prepared
            if len(pairs) * setup.heads * p.n_queries * p.n_keys <= PAIR_BUDGET:
                for one, two in pairs:
                    tried += 1
                    attempt((one, two), run(combined(one, two), setup))
    benign = [d for d in full if d.benign]
    if benign:
        return tuple(benign), tried  # right after all: whatever else agrees is moot
    return tuple(full or partial), tried


def _pairs(candidates: list[Mistake]) -> Iterator[tuple[Mistake, Mistake]]:
    for one, two in itertools.combinations([m for m in candidates if not m.benign], 2):
        if not one.pieces() & two.pieces():
            yield one, two
