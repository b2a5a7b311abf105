#!/usr/bin/env python3
"""The ADQL corpus's exec-tier queries on pzvo and on another TAP service, result against result
(`make corpus-diff`): a differential test of the query layer against a second implementation.

Both services must serve the benchmark table (pzvo: ``bench.photoz``; the DaCHS peer:
``pzpeer.photoz``, see ../shared/peers/dachs/README.md).  Each valid exec-tier query of
../shared/adql_corpus/photoz_adapted.json is rewritten for each service's table name (the corpus
runner's token-aware rewriter) and made deterministic: a single-table query without grouping
gets ``object_id`` as its last sort key (``ORDER BY object_id`` when it had none), so TOP, MAXREC
and ties cut the same rows on both sides; other queries are compared as sorted multisets of rows.
Both answers are asked for as VOTable BINARY2 (the serialization with exact NULLs), read with
astropy, and compared column by column (name, datatype, arraysize, xtype) and value by value.
Each difference is printed with its kind; docs/adql.md ("Differences from another TAP service")
says which clause of ADQL 2.1, TAP 1.1 or DALI decides each kind.

Usage:
  .venv/bin/python benchmarks/corpus_diff.py --other http://127.0.0.1:8090/tap --other-table pzpeer.photoz
  .venv/bin/python benchmarks/corpus_diff.py --ours URL --other URL     # two running services
Without --ours, pzvo is started as `make run` serves it (benchmarks/_common.service); without
--other, the other side is pzvo again (a self-check: it must print no difference).
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import io
import json
import math
import re
import sys
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.parsers.expat import ExpatError

import numpy as np
import requests
from astropy.io.votable import parse as parse_votable

ROOT = Path(__file__).resolve().parent.parent
CORPUS_DIR = ROOT.parent / "shared" / "adql_corpus"
BINARY2 = "application/x-votable+xml;serialization=BINARY2"
KEY = "object_id"
REL_TOL = 1e-9
#: One unit in the last place of a single-precision float (2**-23, relative).
FLOAT32_TOL = 2.0 ** -23

_MASK = re.compile(r"'(?:[^']|'')*'|\"(?:[^\"]|\"\")*\"|--[^\n]*")
_AGGREGATE = re.compile(r"\b(count|sum|avg|min|max)\s*\(|\bgroup\s+by\b|\bdistinct\b|\bhaving\b", re.I)
_SET_OR_JOIN = re.compile(r"\b(union|except|intersect|join)\b", re.I)


def corpus_rewriter() -> Any:
    """The corpus runner's module (its ``Rewriter``), loaded from ../shared, not copied here."""
    spec = importlib.util.spec_from_file_location("adql_corpus_runner", CORPUS_DIR / "run_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _masked(query: str) -> str:
    """The query with literals, delimited identifiers and comments blanked (same length)."""
    return _MASK.sub(lambda m: " " * len(m.group()), query)


def _top_level(masked: str, pattern: str) -> list[re.Match[str]]:
    """Matches of ``pattern`` outside parentheses."""
    depth, found = 0, []
    spans = [m for m in re.finditer(pattern, masked, re.I)]
    position = 0
    for m in spans:
        depth += masked.count("(", position, m.start()) - masked.count(")", position, m.start())
        position = m.start()
        if depth == 0:
            found.append(m)
    return found


def _from_clause(masked: str) -> str:
    found = re.search(r"\bfrom\b(.*?)(\bwhere\b|\bgroup\b|\border\b|\bhaving\b|\boffset\b|$)", masked,
                      re.I | re.S)
    return found.group(1) if found else ""


def with_sort_keys(query: str, keys: list[str]) -> str:
    """``query`` with ``keys`` appended as its last sort keys (``ORDER BY`` when it had none),
    before a top-level OFFSET.  New lines, not blanks: a query may end in a ``--`` comment."""
    body = query.rstrip().rstrip(";")
    offset = _top_level(_masked(body), r"\boffset\b")
    cut = offset[-1].start() if offset else len(body)
    head, tail = body[:cut].rstrip(), ("\n" + body[cut:].strip()) if offset else ""
    if _top_level(_masked(head), r"\border\s+by\b"):
        return f"{head}\n, {', '.join(keys)}{tail}"
    return f"{head}\nORDER BY {', '.join(keys)}{tail}"


def positions(columns: list[dict[str, str | None]]) -> list[str]:
    """Sort keys ``1, ..., n`` for every column but geometries (which have no order)."""
    return [str(i + 1) for i, c in enumerate(columns) if c["xtype"] not in _GEOMETRY]


def unordered_tops(query: str) -> list[int]:
    """Start offsets of the SELECTs with a TOP but no ORDER BY of their own: which rows such a
    TOP keeps is unspecified (ADQL 2.1 section 2.2: row order is arbitrary without ORDER BY)."""
    masked = _masked(query)
    found = []
    for m in re.finditer(r"\bselect\s+(?:(?:all|distinct)\s+)?top\b", masked, re.I):
        depth, i, ordered = 0, m.end(), False
        while i < len(masked):
            ch = masked[i]
            if ch == "(":
                depth += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    break
            elif depth == 0 and re.match(r"\b(union|except|intersect)\b", masked[i:i + 9], re.I) \
                    and (i == 0 or not (masked[i - 1].isalnum() or masked[i - 1] == "_")):
                break
            elif depth == 0 and re.match(r"order\s+by\b", masked[i:i + 20], re.I) \
                    and not (masked[i - 1].isalnum() or masked[i - 1] == "_"):
                ordered = True
                break
            i += 1
        if not ordered:
            found.append(m.start())
    return found


def deterministic(query: str) -> tuple[str, bool]:
    """(query, ordered): ``object_id`` appended as the last sort key of a single-table query
    without grouping, set operators or subqueries; ``ordered`` says whether rows compare in order."""
    masked = _masked(query)
    if (len(re.findall(r"\bselect\b", masked, re.I)) != 1 or _AGGREGATE.search(masked)
            or _SET_OR_JOIN.search(masked) or "," in _from_clause(masked)):
        return query, False
    return with_sort_keys(query, [KEY]), True


@dataclass
class Answer:
    """One service's answer: an error message, or its columns and normalised rows."""

    error: str | None = None
    columns: list[dict[str, str | None]] = field(default_factory=list)
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    overflow: bool = False


def _cell(value: Any, masked: bool) -> Any:
    if masked:
        return None
    if isinstance(value, np.ma.MaskedArray):
        return tuple(None if m else _cell(v, False) for v, m in zip(value.data, np.ma.getmaskarray(value), strict=True))
    if isinstance(value, np.ndarray):
        return tuple(_cell(v, False) for v in value)
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def ask(url: str, query: str, maxrec: int, timeout: float) -> Answer:
    try:
        resp = requests.post(f"{url}/sync", data={"REQUEST": "doQuery", "LANG": "ADQL", "QUERY": query,
                                                 "RESPONSEFORMAT": BINARY2, "MAXREC": str(maxrec)},
                             timeout=timeout)
    except requests.RequestException as exc:
        return Answer(error=f"transport: {exc}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            vot = parse_votable(io.BytesIO(resp.content))
    except (ValueError, IndexError, KeyError, ExpatError) as exc:
        return Answer(error=f"HTTP {resp.status_code}, unreadable body: {exc}")
    statuses = [(i.value, i.content) for r in vot.resources for i in r.infos if i.name == "QUERY_STATUS"]
    errors = [content or "" for value, content in statuses if value == "ERROR"]
    if errors or resp.status_code >= 400:
        return Answer(error=" ".join((errors[0] if errors else f"HTTP {resp.status_code}").split())[:300])
    table = vot.get_first_table()
    columns = [{"name": f.name, "datatype": f.datatype, "arraysize": f.arraysize, "xtype": f.xtype}
               for f in table.fields]
    data = table.array
    masks = [np.ma.getmaskarray(data[name]) for name in data.dtype.names]
    rows = [tuple(_cell(data[name][i], bool(np.all(mask[i]))) for name, mask in zip(data.dtype.names, masks,
                                                                                      strict=True))
            for i in range(len(data))]
    return Answer(columns=columns, rows=rows, overflow=any(v == "OVERFLOW" for v, _ in statuses))


def _sort_key(row: tuple[Any, ...]) -> str:
    return repr(row)


_GEOMETRY = ("point", "circle", "polygon")
#: Geometry values are degrees: a difference this small (36 micro-arcseconds) is pg_sphere's
#: radians round trip, not a different answer.
GEOMETRY_ABS_TOL = 1e-8


@dataclass(frozen=True)
class Rule:
    """How the cells of one column compare, from the two sides' FIELD metadata."""

    float32: bool = False   # one side declares float: values equal in single precision are equal
    geometry: bool = False  # point/circle/polygon: degrees, GEOMETRY_ABS_TOL is rounding
    text: bool = False      # char: '' and NULL are one (astropy reads a BINARY2 NULL string as '')
    time: bool = False      # timestamp: compared as instants


def column_rule(a: dict[str, str | None], b: dict[str, str | None]) -> Rule:
    return Rule(float32="float" in (a["datatype"], b["datatype"]),
                geometry=bool({a["xtype"], b["xtype"]} & set(_GEOMETRY)),
                text=bool({a["datatype"], b["datatype"]} & {"char", "unicodeChar"}),
                time="timestamp" in (a["xtype"], b["xtype"]))


def _value_kind(a: Any, b: Any, rule: Rule = Rule()) -> str | None:
    """None when equal; else the kind of difference between two cells."""
    if rule.text:
        a, b = (None if a == "" else a), (None if b == "" else b)
    if rule.time:
        a, b = _instant(a), _instant(b)
    if a is None or b is None:
        return None if a is b else "null"
    if isinstance(a, tuple) and isinstance(b, tuple):
        if len(a) != len(b):
            return "value"
        kinds = {k for x, y in zip(a, b, strict=True) if (k := _value_kind(x, y, rule))}
        return "value" if "value" in kinds else (kinds.pop() if kinds else None)
    if isinstance(a, float) or isinstance(b, float):
        try:
            x, y = float(a), float(b)
        except (TypeError, ValueError):
            return "value"
        if x == y or (math.isnan(x) and math.isnan(y)):
            return None
        with np.errstate(over="ignore", invalid="ignore"):
            single = np.float32(x), np.float32(y)
            if rule.float32 and single[0] == single[1]:
                return None
            # A single-precision value (a REAL column's) against the same value widened another
            # way (through its decimal text), or the last bit of a single-precision result.
            widened = single[0] == single[1] and (float(single[0]) == x or float(single[1]) == y)
            last_bit = rule.float32 and math.isclose(x, y, rel_tol=FLOAT32_TOL)
        if widened or last_bit or math.isclose(x, y, rel_tol=REL_TOL) \
                or (rule.geometry and abs(x - y) <= GEOMETRY_ABS_TOL):
            return "rounding"
        return "value"
    return None if a == b else "value"


def _instant(value: Any) -> Any:
    """A DALI timestamp as a datetime: ``2021-01-14T11:25:00``, ``...00.000`` and ``...00Z`` are
    the same instant (DALI 1.1, timestamp literals)."""
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.strip().removesuffix("Z"))
        except ValueError:
            return value
    return value


def align(ours: list[dict[str, str | None]], other: list[dict[str, str | None]]) -> list[int] | None:
    """For each of our columns, the index of the other answer's column of that name (case
    ignored; trailing underscores, DaCHS's way of making a repeated name unique, ignored after
    an exact match failed), or None when the names do not pair up."""
    if len(ours) != len(other):
        return None
    used: set[int] = set()
    order = []
    for c in ours:
        name = (c["name"] or "").lower()
        candidates = [j for j, o in enumerate(other) if j not in used]
        j = next((j for j in candidates if (other[j]["name"] or "").lower() == name), None)
        if j is None:
            j = next((j for j in candidates if (other[j]["name"] or "").lower().rstrip("_") == name), None)
        if j is None:
            return None
        used.add(j)
        order.append(j)
    return order


def compare(ours: Answer, other: Answer, ordered: bool) -> list[tuple[str, str]]:
    """(kind, detail) for each difference between two answers."""
    if ours.error or other.error:
        if ours.error and other.error:
            return []
        return [("error", f"ours: {ours.error or 'ok'} | other: {other.error or 'ok'}")]
    out: list[tuple[str, str]] = []
    names = [(c["name"] or "").lower() for c in ours.columns], [(c["name"] or "").lower() for c in other.columns]
    order = align(ours.columns, other.columns)
    if order is not None and order != sorted(order):
        # The same columns in another order (SELECT * over a USING join): compare by name.
        out.append(("order", f"{names[0]} vs {names[1]}"))
        other = Answer(columns=[other.columns[j] for j in order], overflow=other.overflow,
                       rows=[tuple(row[j] for j in order) for row in other.rows])
        names = names[0], [(c["name"] or "").lower() for c in other.columns]
    if names[0] != names[1]:
        out.append(("names", f"{names[0]} vs {names[1]}"))
    if len(ours.columns) != len(other.columns):
        return [*out, ("columns", f"{len(ours.columns)} vs {len(other.columns)} columns")]
    for a, b in zip(ours.columns, other.columns, strict=True):
        for key in ("datatype", "arraysize", "xtype"):
            if (a[key] or None) != (b[key] or None):
                out.append((key, f"{a['name']}: {a[key]} vs {b[key]}"))
    if ours.overflow != other.overflow:
        out.append(("overflow", f"ours {ours.overflow}, other {other.overflow}"))
    if len(ours.rows) != len(other.rows):
        out.append(("rows", f"{len(ours.rows)} vs {len(other.rows)} rows"))
    if not ordered:
        ours_rows, other_rows = sorted(ours.rows, key=_sort_key), sorted(other.rows, key=_sort_key)
    else:
        ours_rows, other_rows = ours.rows, other.rows
    seen: Counter[str] = Counter()
    rules = [column_rule(c, o) for c, o in zip(ours.columns, other.columns, strict=True)]
    for r, (x, y) in enumerate(zip(ours_rows, other_rows, strict=False)):
        for c, (a, b) in enumerate(zip(x, y, strict=False)):
            kind = _value_kind(a, b, rules[c])
            if kind:
                seen[kind] += 1
                if seen[kind] <= 3:
                    out.append((kind, f"row {r} {ours.columns[c]['name']}: {a!r} vs {b!r}"))
    out += [(kind, f"... {n - 3} more") for kind, n in seen.items() if n > 3]
    return out


_RANDOM = re.compile(r"\brand\s*\(", re.I)
#: The kinds of difference that remain meaningful when the values cannot be compared.
_STRUCTURE = ("error", "order", "names", "columns", "datatype", "arraysize", "xtype", "overflow", "rows")
NOTE_RAND = "RAND(): values not compared"
NOTE_TOP = ("TOP without ORDER BY inside a subquery or a set operation keeps unspecified rows: "
            "values not compared")


def run_one(q: dict[str, Any], ours_text: str, other_text: str, ours_url: str, other_url: str, maxrec: int,
            timeout: float) -> dict[str, Any]:
    """One corpus query on both services, made deterministic, and its differences."""
    ours_q, ordered = deterministic(ours_text)
    other_q, _ = deterministic(other_text)
    ours, other = ask(ours_url, ours_q, maxrec, timeout), ask(other_url, other_q, maxrec, timeout)
    note = None
    if not ordered and not (ours.error or other.error):
        tops = unordered_tops(ours_q)
        outer = _top_level(_masked(ours_q), r"\bselect\b")
        if tops and not (len(outer) == 1 and tops == [outer[0].start()]):
            note = NOTE_TOP
        elif tops or ours.overflow or other.overflow:
            # A TOP of the outermost SELECT, or MAXREC, cut an unordered result: sort it on its
            # columns so that both services cut the same rows, then compare the rows as a multiset.
            # Both sort on the same columns, even when the other lists them in another order.
            keys = positions(ours.columns)
            order = align(ours.columns, other.columns) or list(range(len(other.columns)))
            other_keys = [str(order[int(k) - 1] + 1) for k in keys] if len(order) == len(ours.columns) \
                else positions(other.columns)
            sorted_q = with_sort_keys(ours_q, keys), with_sort_keys(other_q, other_keys)
            ours_s, other_s = ask(ours_url, sorted_q[0], maxrec, timeout), ask(other_url, sorted_q[1], maxrec,
                                                                                 timeout)
            if ours_s.error or other_s.error:
                note = f"an unordered result was cut and sorting it failed: {ours_s.error or other_s.error}"
            else:
                ours_q, ours, other = sorted_q[0], ours_s, other_s
    if _RANDOM.search(_masked(ours_q)):
        note = NOTE_RAND
    diffs = compare(ours, other, ordered)
    if note:
        diffs = [d for d in diffs if d[0] in _STRUCTURE]
    return {"id": q["id"], "query": ours_q, "ordered": ordered, "note": note,
            "differences": [{"kind": k, "detail": d} for k, d in diffs]}


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts of queries: identical (no difference, values compared), with differences, with
    values not compared, and for each kind the number of queries showing it."""
    kinds: Counter[str] = Counter()
    for r in results:
        kinds.update({d["kind"] for d in r["differences"]})
    return {"queries": len(results),
            "identical": sum(1 for r in results if not r["differences"] and not r["note"]),
            "differing": sum(1 for r in results if r["differences"]),
            "not_compared": sum(1 for r in results if r["note"]),
            "kinds": dict(kinds.most_common())}


@contextmanager
def pzvo_service(db_name: str | None) -> Iterator[str]:
    """pzvo as `make run` serves it (nginx and gunicorn) on a loopback port, on ``db_name``
    (default: the database `make run` uses)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from _common import service

    with service(port=8767, env={"PZVO_DB_NAME": db_name} if db_name else None) as url:
        yield url + "/tap"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--ours", help="pzvo's TAP base URL (default: start pzvo on a loopback port)")
    ap.add_argument("--ours-table", default="bench.photoz")
    ap.add_argument("--db", help="the database of the pzvo this script starts (default: make run's)")
    ap.add_argument("--other", help="the other TAP base URL (default: pzvo again, a self-check)")
    ap.add_argument("--other-table", help="the benchmark table's name there (default: --ours-table)")
    ap.add_argument("--corpus", default=str(CORPUS_DIR / "photoz_adapted.json"))
    ap.add_argument("--id", action="append", default=[], help="only queries whose id starts so (repeatable)")
    ap.add_argument("--skip-heavy", action="store_true", help="skip queries the corpus flags heavy")
    ap.add_argument("--limit", type=int)
    ap.add_argument("--maxrec", type=int, default=1000)
    ap.add_argument("--timeout", type=float, default=120)
    ap.add_argument("--out", help="write every query's differences to this JSON file")
    args = ap.parse_args(argv)

    runner = corpus_rewriter()
    corpus = json.loads(Path(args.corpus).read_text(encoding="utf-8"))
    target = corpus["target_table"]["corpus_name"]
    queries = [q for q in corpus["queries"] if q["tier"] == "exec" and q["expect"] == "valid"
               and not (args.skip_heavy and q.get("heavy"))
               and (not args.id or any(q["id"].startswith(i) for i in args.id))][: args.limit]
    ours_rw = runner.Rewriter({target: args.ours_table}, {})
    other_rw = runner.Rewriter({target: args.other_table or args.ours_table}, {})

    context = nullcontext(args.ours) if args.ours else pzvo_service(args.db)
    results = []
    with context as ours_url:
        other_url = args.other or ours_url
        for q in queries:
            result = run_one(q, ours_rw.rewrite(q["query"]), other_rw.rewrite(q["query"]), ours_url, other_url,
                             args.maxrec, args.timeout)
            results.append(result)
            if result["differences"] or result["note"]:
                print(f"{q['id']}: {' '.join(result['query'].split())[:160]}")
                if result["note"]:
                    print(f"    (note)     {result['note']}")
                for d in result["differences"]:
                    print(f"    {d['kind']:<10} {d['detail'][:200]}")
    summary = summarise(results)
    print(f"\n{summary['queries']} exec-tier queries: {summary['identical']} identical, "
          f"{summary['differing']} with differences, {summary['not_compared']} with values not compared"
          + ("; queries per kind: " + ", ".join(f"{k} {n}" for k, n in summary["kinds"].items())
             if summary["kinds"] else ""))
    if args.out:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from _common import machine

        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps({
            "ours": args.ours_table, "other": args.other or "pzvo (self)",
            "other_table": args.other_table or args.ours_table,
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "command": " ".join(["benchmarks/corpus_diff.py", *(argv if argv is not None else sys.argv[1:])]),
            "machine": machine(), "maxrec": args.maxrec, "summary": summary, "results": results},
            indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
