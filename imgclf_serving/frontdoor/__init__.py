"""The Lambda front door: API Gateway (REST, proxy) -> InvokeEndpoint -> JSON top-k labels.

Deployed as its own Lambda asset, where this package is the top-level `frontdoor` (handler
`frontdoor.app.handler`); in the repo it is `imgclf_serving.frontdoor`. Hence relative imports only.
"""
