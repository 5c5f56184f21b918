"""Principals, permissions and the identity the gateway forwards to services."""

from orchestrion.kernel.auth.identity import IDENTITY_HEADER, decode_identity, encode_identity
from orchestrion.kernel.auth.permissions import ROLE_PERMISSIONS, Permission, permissions_for_roles
from orchestrion.kernel.auth.principal import Principal

__all__ = [
    "IDENTITY_HEADER",
    "ROLE_PERMISSIONS",
    "Permission",
    "Principal",
    "decode_identity",
    "encode_identity",
    "permissions_for_roles",
]
