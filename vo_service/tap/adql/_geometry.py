"""ADQL geometry on pg_sphere: constructors, literal parsing and result encoding.

ADQL speaks degrees, pg_sphere radians.  Constructors wrap every coordinate in ``radians()``
(never a pre-computed constant for column arguments) so that ``POINT('ICRS', ra, dec)`` becomes
exactly ``spoint(radians(ra), radians(dec))``, the expression a GiST index is built on.  The
degrees a constructor was given are kept in the node's ``meta`` so that a geometry in the select
list can be returned as those numbers rather than as a radians round trip.
"""
from __future__ import annotations

from sqlglot import exp

from vo_service.tap.adql._errors import AdqlSemanticError

COORDS_META = "adql_coords"
#: A circle's centre (an spoint) and radius (degrees), for the crossmatch rewriting.
CIRCLE_META = "adql_circle"

# Labels that may appear as the (deprecated) coordinate system argument.  pzvo stores ICRS
# positions; ADQL 2.1 lets a service ignore the argument, which pzvo does for these labels
# rather than pretend to transform.  Anything else is refused.
ACCEPTED_FRAMES = frozenset({
    "ICRS", "FK4", "FK5", "J2000", "B1950", "GALACTIC", "GALACTIC_II", "ECLIPTIC",
    "UNKNOWNFRAME", "GEOCENTER", "BARYCENTER", "TOPOCENTER", "HELIOCENTER", "SPHERICAL2",
    "UNKNOWNREFPOS",
})


def func(name: str, *args: exp.Expr) -> exp.Expr:
    return exp.Anonymous(this=name, expressions=list(args))


def radians(value: exp.Expr) -> exp.Expr:
    return func("radians", value)


def degrees(value: exp.Expr) -> exp.Expr:
    return func("degrees", value)


def as_double(value: exp.Expr) -> exp.Expr:
    return exp.Cast(this=value, to=exp.DataType.build("DOUBLE PRECISION"))


def frame_label(text: str) -> str:
    """Check a coordinate system string and return the label COORDSYS reports."""
    words = text.upper().split()
    if not words:
        return ""
    unknown = [w for w in words if w not in ACCEPTED_FRAMES]
    if unknown:
        raise AdqlSemanticError(
            f"Unknown coordinate system {text!r}; use 'ICRS' (or '' / NULL)")
    return " ".join(words)


def point(ra: exp.Expr, dec: exp.Expr) -> exp.Expr:
    node = func("spoint", radians(ra), radians(dec))
    node.meta[COORDS_META] = [ra.copy(), dec.copy()]
    return node


def circle(center: exp.Expr, radius: exp.Expr) -> exp.Expr:
    """An scircle; a literal radius outside pg_sphere's 0-90 degrees is refused here, where
    the query can still be told why, rather than by PostgreSQL (or not at all, in a select list)."""
    value = _number_literal(radius)
    if value is not None and not 0 <= value <= 90:
        raise AdqlSemanticError(
            f"A circle's radius must be between 0 and 90 degrees, not {value!r}")
    node = func("scircle", center, radians(radius))
    node.meta[CIRCLE_META] = (center.copy(), radius.copy())
    coords = center.meta.get(COORDS_META)
    if coords:
        node.meta[COORDS_META] = [c.copy() for c in coords] + [radius.copy()]
    return node


def constant_value(node: exp.Expr) -> float | None:
    """The value of a numeric expression of literals only (``2/3600``, ``CAST(2 AS DOUBLE
    PRECISION) / 3600``, ``-(1.5)``), else None: what a crossmatch radius usually is."""
    if isinstance(node, exp.Literal):
        return None if node.is_string else float(node.this)
    if isinstance(node, (exp.Paren, exp.Cast)):
        return constant_value(node.this)
    if isinstance(node, exp.Neg):
        inner = constant_value(node.this)
        return None if inner is None else -inner
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div)):
        a, b = constant_value(node.this), constant_value(node.expression)
        if a is None or b is None:
            return None
        if isinstance(node, exp.Add):
            return a + b
        if isinstance(node, exp.Sub):
            return a - b
        if isinstance(node, exp.Mul):
            return a * b
        return a / b if b else None
    return None


def has_columns(node: exp.Expr) -> bool:
    return any(isinstance(sub, exp.Column) for sub in node.walk())


def _half(value: exp.Expr) -> exp.Expr:
    return exp.Div(this=exp.Paren(this=value), expression=exp.Literal.number("2.0"), typed=True)


def box(ra: exp.Expr, dec: exp.Expr, width: exp.Expr, height: exp.Expr) -> exp.Expr:
    """A box of constant ra/dec bounds (pg_sphere's sbox) centred on (ra, dec)."""
    def corner(c: exp.Expr, half: exp.Expr, sign: type[exp.Expr]) -> exp.Expr:
        return exp.Paren(this=sign(this=exp.Paren(this=c.copy()), expression=half.copy()))

    half_w, half_h = _half(width), _half(height)
    ra_lo, ra_hi = corner(ra, half_w, exp.Sub), corner(ra, half_w, exp.Add)
    dec_lo, dec_hi = corner(dec, half_h, exp.Sub), corner(dec, half_h, exp.Add)
    node = func("sbox", func("spoint", radians(ra_lo), radians(dec_lo)),
                func("spoint", radians(ra_hi), radians(dec_hi)))
    node.meta[COORDS_META] = [ra_lo.copy(), dec_lo.copy(), ra_hi.copy(), dec_lo.copy(),
                              ra_hi.copy(), dec_hi.copy(), ra_lo.copy(), dec_hi.copy()]
    return node


def _number_literal(node: exp.Expr) -> float | None:
    if isinstance(node, exp.Literal) and not node.is_string:
        return float(node.this)
    if isinstance(node, exp.Neg) and isinstance(node.this, exp.Literal) and not node.this.is_string:
        return -float(node.this.this)
    return None


def polygon(coords: list[exp.Expr]) -> exp.Expr:
    """An spoly from vertex coordinates in degrees.

    With literal vertices the polygon is a constant; otherwise it is assembled as pg_sphere
    input text from ``radians()`` of each coordinate (pg_sphere 1.2 has no array constructor),
    which stays NULL when any coordinate is NULL.
    """
    values = [_number_literal(c) for c in coords]
    if all(v is not None for v in values):
        text = "{" + ",".join(f"({values[i]!r}d,{values[i + 1]!r}d)"
                              for i in range(0, len(values), 2)) + "}"
        node: exp.Expr = exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("spoly", udt=True))
    else:
        parts: list[exp.Expr] = []
        for i in range(0, len(coords), 2):
            prefix = "{(" if i == 0 else "),("
            parts += [exp.Literal.string(prefix),
                      exp.Cast(this=radians(coords[i]), to=exp.DataType.build("TEXT")),
                      exp.Literal.string(","),
                      exp.Cast(this=radians(coords[i + 1]), to=exp.DataType.build("TEXT"))]
        parts.append(exp.Literal.string(")}"))
        text_expr = parts[0]
        for part in parts[1:]:
            text_expr = exp.DPipe(this=text_expr, expression=part, safe=True)
        node = exp.Cast(this=exp.Paren(this=text_expr), to=exp.DataType.build("spoly", udt=True))
    node.meta[COORDS_META] = [c.copy() for c in coords]
    return node


def parse_numbers(text: str, what: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(",", " ").split()]
    except ValueError:
        raise AdqlSemanticError(f"{what}: expected numbers, got {text!r}") from None


def stcs_region(text: str) -> tuple[str, str, list[float]]:
    """(kind, frame, numbers) of a simple STC-S region string.

    Only the shapes ADQL's constructors can express are accepted (Position, Circle, Box,
    Polygon); STC-S set operations (Union, Intersection, Not) are refused.
    """
    words = text.split()
    if not words:
        raise AdqlSemanticError("REGION needs a non-empty STC-S string")
    shape = words[0].upper()
    kinds = {"POSITION": "point", "CIRCLE": "circle", "BOX": "box", "POLYGON": "polygon"}
    if shape not in kinds:
        raise AdqlSemanticError(
            f"REGION supports STC-S Position, Circle, Box and Polygon, not {words[0]!r}")
    frame_words: list[str] = []
    rest = words[1:]
    while rest and rest[0].upper() in ACCEPTED_FRAMES:
        frame_words.append(rest.pop(0).upper())
    if rest and rest[0][:1].isalpha():
        raise AdqlSemanticError(f"REGION: unknown coordinate system or flavour {rest[0]!r}")
    numbers = parse_numbers(" ".join(rest), "REGION")
    counts = {"point": 2, "circle": 3, "box": 4}
    kind = kinds[shape]
    if (kind in counts and len(numbers) != counts[kind]) or (
            kind == "polygon" and (len(numbers) < 6 or len(numbers) % 2)):
        raise AdqlSemanticError(f"REGION: wrong number of values for {words[0]}")
    return kind, " ".join(frame_words), numbers


def literal(value: float) -> exp.Expr:
    return exp.Literal.number(repr(value)) if value >= 0 else exp.Neg(
        this=exp.Literal.number(repr(-value)))


def from_numbers(kind: str, numbers: list[float]) -> exp.Expr:
    lits = [literal(v) for v in numbers]
    if kind == "point":
        return point(*lits)
    if kind == "circle":
        return circle(point(lits[0], lits[1]), lits[2])
    if kind == "box":
        return box(*lits)
    return polygon(lits)


def longitude(value: exp.Expr) -> exp.Expr:
    """A longitude in degrees as DALI 1.1 serialises it (section 3.3.5: within [0, 360]): a
    literal is reduced here, a computed value by ``x - 360 * floor(x / 360)``, which leaves every
    value in [0, 360) exactly as it was.  A bare column is returned as stored."""
    number = _number_literal(value)
    if number is not None:
        return as_double(literal(number if 0 <= number <= 360 else number % 360.0))
    if isinstance(value, exp.Column):
        return as_double(value.copy())
    x = as_double(value.copy())
    turns = func("floor", exp.Div(this=x.copy(), expression=exp.Literal.number("360.0")))
    return exp.Paren(this=exp.Sub(this=x, expression=exp.Mul(this=exp.Literal.number("360.0"), expression=turns)))


def as_array(node: exp.Expr, kind: str) -> exp.Expr:
    """The select-list value of a geometry: a double array as DALI serialises shapes."""
    coords = node.meta.get(COORDS_META)
    if coords:
        if any(isinstance(c, exp.Null) for c in coords):
            return exp.Cast(this=exp.Null(), to=exp.DataType.build("DOUBLE PRECISION[]"))
        longitudes = {0} if kind == "circle" else set(range(0, len(coords), 2))
        array = exp.Array(expressions=[longitude(c) if i in longitudes else as_double(c.copy())
                                       for i, c in enumerate(coords)])
        if all(_number_literal(c) is not None for c in coords):
            return array
        # The shape itself decides: NULL when a coordinate is NULL, and the same error as in
        # a predicate for what pg_sphere refuses (a negative radius), never a half-filled array.
        return exp.Case(ifs=[exp.If(this=exp.Is(this=node.copy(), expression=exp.Null()),
                                    true=exp.Null())], default=array)

    def lon(p: exp.Expr) -> exp.Expr:
        return degrees(func("long", p))

    def lat(p: exp.Expr) -> exp.Expr:
        return degrees(func("lat", p))

    if kind in ("point", "circle", "box"):
        if kind == "point":
            items = [lon(node.copy()), lat(node.copy())]
        elif kind == "circle":
            items = [lon(func("center", node.copy())), lat(func("center", node.copy())),
                     degrees(func("radius", node.copy()))]
        else:
            items = []
            for corner in ("sw", "se", "ne", "nw"):
                items += [lon(func(corner, node.copy())), lat(func(corner, node.copy()))]
        # A NULL shape is NULL, not an array of NULL coordinates.
        return exp.Case(ifs=[exp.If(this=exp.Is(this=node.copy(), expression=exp.Null()), true=exp.Null())],
                        default=exp.Array(expressions=items))
    else:
        # pg_sphere 1.2 has no vertex accessor for spoly: read its text form (radians), keeping
        # the numbers in their order (WITH ORDINALITY), since array_agg alone promises none.
        text = exp.Anonymous(this="translate", expressions=[
            exp.Cast(this=node.copy(), to=exp.DataType.build("TEXT")),
            exp.Literal.string("{}() "), exp.Literal.string("")])
        split = exp.Anonymous(this="string_to_array", expressions=[text, exp.Literal.string(",")])
        as_float = exp.Cast(this=split, to=exp.DataType.build("DOUBLE PRECISION[]"))
        unnest = exp.Unnest(
            expressions=[as_float], offset=exp.to_identifier("i"),
            alias=exp.TableAlias(this=exp.to_identifier("u"), columns=[exp.to_identifier("v")]))
        ordered = exp.Order(this=degrees(exp.column("v", table="u")),
                            expressions=[exp.Ordered(this=exp.column("i", table="u"),
                                                     nulls_first=False)])
        select = exp.Select(expressions=[exp.ArrayAgg(this=ordered)], from_=exp.From(this=unnest))
        return exp.Subquery(this=select)
