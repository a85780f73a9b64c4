package fakelibrato

import (
	"net/http"

	"github.com/seed-d22a899f/librato/internal/libratoapi"
)

// Request-level answers of the fake, in Librato's {"errors":{"request":[…]}}
// shape. They are shared, so their bodies must never be modified.
var (
	errTooLarge  = libratoapi.RequestError(http.StatusRequestEntityTooLarge, "request body too large")
	errBadGzip   = libratoapi.RequestError(http.StatusBadRequest, "The gzip body could not be decoded")
	errMediaType = libratoapi.RequestError(http.StatusUnsupportedMediaType, "Content-Type must be application/json")
	errEncoding  = libratoapi.RequestError(http.StatusUnsupportedMediaType, "Content-Encoding not supported")
	errNotFound  = libratoapi.RequestError(http.StatusNotFound, "not found")
	errAuth      = libratoapi.RequestError(http.StatusUnauthorized, libratoapi.MsgCredentials)
	errHTTPS     = libratoapi.RequestError(http.StatusForbidden, "Please use secured connection through https!")
	errReadBody  = libratoapi.RequestError(http.StatusBadRequest, "the request body could not be read")
	errTaggedOff = libratoapi.TaggedNotEnabledError()
)
