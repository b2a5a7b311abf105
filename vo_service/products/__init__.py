"""The PZ product registry: upload, describe, share, version and download PZ products.

``ProductRegistry`` (domain, no Flask) registers a product in one transaction (table, indexes,
TAP_SCHEMA rows, registry rows, stored files, provenance); ``vo_service.products.api`` is the
REST API under ``/api`` and ``vo_service.products.pages`` the product browser at ``/``.
"""
from vo_service.products._models import (FILE_ROLES, PRODUCT_TYPES, Product, ProductFile,
                                         ProductType, RegistrationRequest)
from vo_service.products._schemas import product_document
from vo_service.products._service import (InvalidProductError, ProductNotFoundError,
                                          ProductRegistry)

__all__ = ["FILE_ROLES", "PRODUCT_TYPES", "InvalidProductError", "Product", "ProductFile",
           "ProductNotFoundError", "ProductRegistry", "ProductType", "RegistrationRequest",
           "product_document"]
