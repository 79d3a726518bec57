package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/pgkube/pgkube/storage"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// toStatus turns any error into the Status kube-apiserver would send. Errors
// that are not already API errors are internal: they keep their message but
// never leak as a bare 500 without a body.
func toStatus(err error, gr schema.GroupResource, name string) *apierrors.StatusError {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se
	}
	var st apierrors.APIStatus
	if errors.As(err, &st) {
		s := st.Status()
		return &apierrors.StatusError{ErrStatus: s}
	}
	var full *storage.LimitError
	if errors.As(err, &full) {
		return apierrors.NewForbidden(gr, name, full)
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(registryConflictMsg))
	case errors.Is(err, storage.ErrCompacted):
		return apierrors.NewResourceExpired("too old resource version")
	case errors.Is(err, storage.ErrTooLarge):
		return tooLargeRV()
	case errors.Is(err, context.DeadlineExceeded):
		return apierrors.NewTimeoutError("request did not complete within the allowed duration", 0)
	case errors.Is(err, context.Canceled):
		return apierrors.NewTimeoutError("request was cancelled", 0)
	}
	return apierrors.NewInternalError(err)
}

// registryConflictMsg is upstream's wording for a stale resourceVersion.
const registryConflictMsg = "the object has been modified; please apply your changes to the latest version and try again"

func tooLargeRV() *apierrors.StatusError {
	e := apierrors.NewTimeoutError("Too large resource version", 1)
	e.ErrStatus.Details.Causes = []metav1.StatusCause{{
		Type:    metav1.CauseTypeResourceVersionTooLarge,
		Message: "Too large resource version",
	}}
	return e
}

func badRequest(format string, args ...any) *apierrors.StatusError {
	return apierrors.NewBadRequest(fmt.Sprintf(format, args...))
}

func notFoundPath(r *http.Request) *apierrors.StatusError {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
		Message: "the server could not find the requested resource",
		Details: &metav1.StatusDetails{},
	}}
}
