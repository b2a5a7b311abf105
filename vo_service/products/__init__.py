"""The PZ product registry: upload, describe, share, version and download PZ products.

``ProductRegistry`` (domain, no Flask) registers a product in one transaction (table, indexes,
TAP_SCHEMA rows, registry rows, stored files, provenance), with its SQL in ``ProductStore``;
``PipelineRunStore`` records the photo-z pipeline's runs; ``vo_service.products.api`` is the
REST API under ``/api`` and ``vo_service.products.pages`` the product browser at ``/``.
"""
from vo_service.products._models import (
    FILE_ROLES,
    PRODUCT_TYPES,
    Product,
    ProductFile,
    ProductLimits,
    ProductType,
    RegistrationRequest,
)
from vo_service.products._runs import PipelineRunStore, RunNotFoundError
from vo_service.products._schemas import ProblemSchema, ProductSchema, product_document
from vo_service.products._service import InvalidProductError, ProductLimitError, ProductNotFoundError, ProductRegistry
from vo_service.products._storage import ProductStore
from vo_service.products.api import ProblemApi, auth_problem, problem
from vo_service.products.api import blp as products_api
from vo_service.products.pages import pages as product_pages

__all__ = ["FILE_ROLES", "ProblemApi", "ProblemSchema", "auth_problem", "problem", "product_pages",
           "products_api", "PRODUCT_TYPES",
           "InvalidProductError", "PipelineRunStore", "Product", "ProductFile", "ProductLimitError",
           "ProductLimits", "ProductNotFoundError", "ProductRegistry", "ProductSchema",
           "ProductStore", "ProductType", "RegistrationRequest", "RunNotFoundError",
           "product_document"]
