package server

import (
	"context"
	"net/http"

	"github.com/pgkube/pgkube/authn"
	"k8s.io/apimachinery/pkg/runtime"
)

// VirtualRequest is a create of a resource that is a question rather than
// stored state (TokenReview, SubjectAccessReview) or of a subresource that
// makes something (serviceaccounts/token).
type VirtualRequest struct {
	Cluster   string
	Namespace string
	// Name is the parent object's name for a subresource.
	Name   string
	User   *authn.User
	Object runtime.Object
}

// VirtualCreate answers a VirtualRequest with the object to return.
type VirtualCreate func(ctx context.Context, req VirtualRequest) (runtime.Object, error)

// virtualKey names a virtual create in Config.Virtual: "group/resource" or
// "group/resource/subresource" (core group empty: "/serviceaccounts/token").
func virtualKey(group, resource, subresource string) string {
	k := group + "/" + resource
	if subresource != "" {
		k += "/" + subresource
	}
	return k
}

// createVirtual decodes the body as the resource's kind, or a
// subresource's, and returns what the registered function makes of it.
func (s *Server) createVirtual(c *call) error {
	if err := checkDryRun(c.r); err != nil {
		return err
	}
	f := s.cfg.Virtual[virtualKey(c.res.Group, c.res.Resource, c.ri.Subresource)]
	if f == nil {
		return notFoundPath(c.r)
	}
	gvk := c.res.GVK()
	if k, ok := subresourceKinds[c.ri.Subresource]; ok {
		gvk = k
	}
	obj, err := s.decodeBody(c, gvk)
	if err != nil {
		return err
	}
	out, err := f(c.ctx, VirtualRequest{Cluster: c.cluster, Namespace: c.ri.Namespace, Name: c.ri.Name,
		User: authn.UserFrom(c.ctx), Object: obj})
	if err != nil {
		return err
	}
	setGVK(out, gvk)
	return s.respond(c, http.StatusCreated, out)
}
