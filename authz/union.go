package authz

import (
	"context"
	"strings"

	utilerrors "k8s.io/apimachinery/pkg/util/errors"
)

// Union asks each authorizer in turn. The first to allow or deny decides;
// one with no opinion, or that fails, passes the question on, so a broken
// authorizer cannot lock everyone out while another still answers.
type Union []Authorizer

// Authorize returns the first Allow or Deny with that authorizer's reason
// and error. If none decides, the reasons of all are joined by newlines
// and their errors aggregated.
func (u Union) Authorize(ctx context.Context, a Attributes) (Decision, string, error) {
	var (
		reasons []string
		errs    []error
	)
	for _, az := range u {
		d, reason, err := az.Authorize(ctx, a)
		if err != nil {
			errs = append(errs, err)
		}
		if reason != "" {
			reasons = append(reasons, reason)
		}
		if d == Allow || d == Deny {
			return d, reason, err
		}
	}
	return NoOpinion, strings.Join(reasons, "\n"), utilerrors.NewAggregate(errs)
}

// PrivilegedGroups allows everything to members of any of its groups
// (system:masters), without consulting RBAC, so the server's own loopback
// identity keeps working whatever the stored policy says.
type PrivilegedGroups []string

// Authorize allows a if a.User is in one of the groups.
func (p PrivilegedGroups) Authorize(_ context.Context, a Attributes) (Decision, string, error) {
	if a.User == nil {
		return NoOpinion, "", nil
	}
	for _, g := range p {
		if a.User.InGroup(g) {
			return Allow, "", nil
		}
	}
	return NoOpinion, "", nil
}
