"""GraphQL at the gateway (``/graphql``): a schema over the services' REST APIs."""

from orchestrion.gateway.graphql.endpoint import GraphQLEndpoint

__all__ = ["GraphQLEndpoint"]
