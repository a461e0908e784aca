"""The image media types the API accepts, defined once for the Lambda, the stack and the local gateway.

The front door answers 415 to any other type before it calls the endpoint, and API Gateway's
`binaryMediaTypes` lists the same types, so an accepted image reaches the Lambda base64-encoded
and byte for byte. No imports: infra reads this at synth (where Powertools is not installed), and
in the Lambda asset this package is the top-level `frontdoor`. The inference container gets only
serving's top-level modules, so imgclf_serving/image_decode.py keeps its own copy; a test keeps them equal.
"""

ACCEPTED_CONTENT_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "application/x-image",
    "application/octet-stream",
)
#: API Gateway's binaryMediaTypes: every accepted type, so no image body is mangled as text.
BINARY_MEDIA_TYPES = ACCEPTED_CONTENT_TYPES
