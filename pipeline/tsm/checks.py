"""What a Training Set Maker run checks before any work: configuration, flag rules, inputs.

Kept apart from :mod:`pipeline.tsm.run` because the web process checks a job's configuration
before queueing it (``POST /api/tsm``) and must not import Dask to do so.
"""
from __future__ import annotations

from pathlib import Path

from ingest.readers import ReadError, open_table
from pipeline.catalog import list_partitions
from pipeline.product_tables import ProductInputError, find_product, is_product_spec
from pipeline.tsm.config import TsmConfig
from pipeline.tsm.flags import FlagRules, load_flag_rules
from pipeline.tsm.inputs import CatalogSpec, InputError, product_roles, resolve_columns
from pipeline.tsm.split import SplitError, load_hook
from vo_service.auth import User
from vo_service.products import Product, ProductRegistry


class TsmError(ValueError):
    """A run that cannot go on; the message says which step and why."""


def check_run(config: TsmConfig, registry: ProductRegistry | None, owner: User | None) -> FlagRules:
    """Every check that needs no data read: raises TsmError naming what is wrong."""
    try:
        rules = load_flag_rules(config.flags)
    except ValueError as exc:
        raise TsmError(f"flags: {exc}") from exc
    products = [c.source for c in config.catalogs if is_product_spec(c.source)]
    if config.objects and config.objects.product:
        products.append(config.objects.product)
    if (products or config.output.publish) and registry is None:
        raise TsmError("the product registry (a database) is needed to read products or publish; "
                       "give one, or use files and output.publish: false")
    if config.output.publish and owner is None:
        raise TsmError("publishing needs the owner of the products")
    for spec in config.catalogs:
        _check_catalog(spec, registry, rules, config.on_unknown)
    if config.split.hook:
        try:
            load_hook(config.split.hook)
        except SplitError as exc:
            raise TsmError(str(exc)) from exc
    if config.objects is None:
        raise TsmError("objects: the Object catalog to crossmatch with is not given")
    if config.objects.product:
        find_input(registry, config.objects.product, ("objectcatalog",))
    elif config.objects.path is not None:
        try:
            list_partitions(config.objects.path)
        except (FileNotFoundError, OSError, ValueError) as exc:
            raise TsmError(f"objects {str(config.objects.path)!r}: {exc}") from exc
    if config.output.publish and owner is not None and config.output.official and not owner.is_admin:
        raise TsmError("official products are registered by an administrator")
    return rules


def _check_catalog(spec: CatalogSpec, registry: ProductRegistry | None, rules: FlagRules, on_unknown: str) -> None:
    """The catalog is there and has ra, dec and z (from its columns' names and roles, no rows read);
    a survey named for it has a flag rule."""
    try:
        if is_product_spec(spec.source):
            product = find_input(registry, spec.source, ("speczcat",))
            resolve_columns([c.original_name or c.name for c in product.columns], spec, product_roles(product))
        else:
            path = Path(spec.source)
            if not path.is_file():
                raise TsmError(f"catalog {spec.source!r}: no such file")
            resolve_columns(open_table(path).schema.names, spec)
    except (InputError, ReadError) as exc:
        raise TsmError(str(exc)) from exc
    if spec.survey is not None and rules.rule(spec.survey) is None and on_unknown == "error":
        raise TsmError(f"catalog {spec.name()!r}: survey {spec.survey!r} has no flag rule; known surveys: "
                       f"{', '.join(sorted(rules.names))}")


def find_input(registry: ProductRegistry | None, spec: str, types: tuple[str, ...]) -> Product:
    assert registry is not None
    try:
        return find_product(registry, spec, types)
    except ProductInputError as exc:
        raise TsmError(str(exc)) from exc


