package main

// The RBAC section: what authorization adds to a get. The same GET of one
// ConfigMap is timed as the admin, whose group system:masters is allowed
// before RBAC is consulted, and as a user granted the get only by the last
// of many RoleBindings, so that RBAC has to look through all of them. Both
// present client certificates over kept-alive connections, so that
// authentication and TLS cost them the same.

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"

	"github.com/pgkube/pgkube/pki"
)

const (
	// rbacNamespace keeps the section's objects and bindings apart from
	// the other sections', whose figures they must not change.
	rbacNamespace = "bench-rbac"
	rbacUser      = "bench-rbac"
	rbacTarget    = "target" // the ConfigMap every get reads
	rbacRules     = 3        // per Role
	// grantTimeout bounds the wait for the bindings to reach the
	// authorizer, whose cache a watch feeds; it needs well under a second.
	grantTimeout = 30 * time.Second
	// userCertTTL outlasts any run of the section.
	userCertTTL = 24 * time.Hour
)

type rbacResults struct {
	bindings int
	// Rounds as the admin and as the bound user, alternating, so that a
	// shared machine's changing load affects both alike.
	admin, user []round
}

func (r rbacResults) failed() int {
	n := 0
	for _, rounds := range [][]round{r.admin, r.user} {
		for _, g := range rounds {
			n += g.ops.errs
		}
	}
	return n
}

// runRBAC sets up c.rbacBindings Roles and RoleBindings for rbacUser and
// times c.rbacRounds rounds of gets as the admin and as rbacUser. Failed
// gets are counted in the results; setting-up errors and cancellation are
// returned.
func runRBAC(ctx context.Context, c config, api *apiServer, ca *pki.Bundle) (rbacResults, error) {
	res := rbacResults{bindings: c.rbacBindings}
	certPEM, keyPEM, err := ca.IssueClient(rbacUser, nil, userCertTTL)
	if err != nil {
		return res, fmt.Errorf("issuing %s's client certificate: %w", rbacUser, err)
	}
	var clients [2]*kubernetes.Clientset
	for i, creds := range []credentials{api.admin, {caPEM: api.admin.caPEM, certPEM: certPEM, keyPEM: keyPEM}} {
		tr, err := creds.transport(c.workers)
		if err != nil {
			return res, fmt.Errorf("creating client: %w", err)
		}
		// The server keeps idle connections open, and the watch section
		// after this one needs its file descriptors for watch streams.
		defer tr.CloseIdleConnections()
		if clients[i], err = clientsetFor(api.url, tr); err != nil {
			return res, err
		}
	}
	admin, user := clients[0], clients[1]

	step(fmt.Sprintf("rbac: creating %d Roles and RoleBindings for %s in %s", c.rbacBindings, rbacUser, rbacNamespace))
	last, err := setUpRBAC(ctx, admin, c)
	if err != nil {
		return res, err
	}
	userCMs := user.CoreV1().ConfigMaps(rbacNamespace)
	if err := awaitGrant(ctx, userCMs); err != nil {
		return res, err
	}
	if err := checkGrantedBy(ctx, admin, last); err != nil {
		return res, err
	}

	type client struct {
		cms    typedcorev1.ConfigMapInterface
		rounds *[]round
	}
	asAdmin := client{admin.CoreV1().ConfigMaps(rbacNamespace), &res.admin}
	asUser := client{userCMs, &res.user}
	// A connection per worker for each client first, so that no round is
	// charged TLS handshakes; a user's first request also fills RBAC's
	// cache of its bindings' roles.
	for _, cl := range []client{asAdmin, asUser} {
		s := parallel(ctx, c.workers, c.workers, func(ctx context.Context, _ int) error {
			_, err := cl.cms.Get(ctx, rbacTarget, metav1.GetOptions{})
			return err
		})
		if err := ctx.Err(); err != nil {
			return res, err
		}
		if s.errs > 0 {
			return res, fmt.Errorf("warming up: %w", s.firstErr)
		}
	}

	step(fmt.Sprintf("rbac: %d rounds of %d gets as admin and as %s", c.rbacRounds, c.rbacGets, rbacUser))
	for r := range c.rbacRounds {
		// Who goes first alternates too: a round can inherit the garbage
		// of the one before it.
		order := []client{asAdmin, asUser}
		if r%2 == 1 {
			order[0], order[1] = asUser, asAdmin
		}
		for _, cl := range order {
			cpu := procCPU(api.pid(), false)
			s := parallel(ctx, c.workers, c.rbacGets, func(ctx context.Context, _ int) error {
				_, err := cl.cms.Get(ctx, rbacTarget, metav1.GetOptions{})
				return err
			})
			*cl.rounds = append(*cl.rounds, round{ops: s, apiCPU: procCPU(api.pid(), false) - cpu})
			if err := ctx.Err(); err != nil {
				return res, err
			}
		}
	}
	return res, nil
}

// setUpRBAC creates the namespace, the target ConfigMap and the Roles and
// RoleBindings, and returns the name of the binding that grants the get.
// RBAC visits a user's bindings in name order, so the grant is in the
// last-named one, and in its Role's last rule. Every other rule matches
// the verb and the API group of the get and differs only in the resource,
// so that each is checked to its end.
func setUpRBAC(ctx context.Context, cs kubernetes.Interface, c config) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: rbacNamespace}}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating namespace %s: %w", rbacNamespace, err)
	}
	cm := newConfigMap(0, c.dataBytes)
	cm.Namespace, cm.Name = rbacNamespace, rbacTarget
	if _, err := cs.CoreV1().ConfigMaps(rbacNamespace).Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		return "", fmt.Errorf("creating ConfigMap %s/%s: %w", rbacNamespace, rbacTarget, err)
	}
	var last string
	for i := range c.rbacBindings {
		name := fmt.Sprintf("bench-%04d", i)
		rules := make([]rbacv1.PolicyRule, rbacRules)
		for j := range rules {
			rules[j] = rbacv1.PolicyRule{
				Verbs:     []string{"get", "list", "watch"},
				APIGroups: []string{""},
				Resources: []string{fmt.Sprintf("bench%04d%c", i, 'a'+j)},
			}
		}
		if i == c.rbacBindings-1 {
			rules[len(rules)-1] = rbacv1.PolicyRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}
		}
		role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: rbacNamespace}, Rules: rules}
		if _, err := cs.RbacV1().Roles(rbacNamespace).Create(ctx, role, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("creating Role %s/%s: %w", rbacNamespace, name, err)
		}
		binding := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: rbacNamespace},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: rbacUser}},
		}
		if _, err := cs.RbacV1().RoleBindings(rbacNamespace).Create(ctx, binding, metav1.CreateOptions{}); err != nil {
			return "", fmt.Errorf("creating RoleBinding %s/%s: %w", rbacNamespace, name, err)
		}
		last = name
	}
	return last, nil
}

// awaitGrant polls until the user may get the target: the authorizer
// learns of new bindings through a watch, a moment after they are created.
func awaitGrant(ctx context.Context, cms typedcorev1.ConfigMapInterface) error {
	ctx, cancel := context.WithTimeout(ctx, grantTimeout)
	defer cancel()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		_, err := cms.Get(ctx, rbacTarget, metav1.GetOptions{})
		if err == nil {
			return nil
		}
		if !apierrors.IsForbidden(err) {
			return fmt.Errorf("getting %s/%s as %s: %w", rbacNamespace, rbacTarget, rbacUser, err)
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("%s still may not get %s/%s %v after its bindings were created: %w",
					rbacUser, rbacNamespace, rbacTarget, grantTimeout, err)
			}
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// checkGrantedBy asks the server which binding allows the user's get: if
// it were not the last one, RBAC would stop early and the figure would
// not be the cost of looking through every binding.
func checkGrantedBy(ctx context.Context, cs kubernetes.Interface, binding string) error {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User:   rbacUser,
		Groups: []string{"system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{
			Namespace: rbacNamespace, Verb: "get", Resource: "configmaps", Name: rbacTarget,
		},
	}}
	out, err := cs.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("asking which binding lets %s get %s/%s: %w", rbacUser, rbacNamespace, rbacTarget, err)
	}
	// kube-apiserver's wording, which pgkube keeps: RoleBinding "name/namespace".
	if want := strconv.Quote(binding + "/" + rbacNamespace); !out.Status.Allowed || !strings.Contains(out.Status.Reason, want) {
		return fmt.Errorf("%s's get of %s/%s should be allowed by RoleBinding %s alone; the server says allowed=%v, %q",
			rbacUser, rbacNamespace, rbacTarget, want, out.Status.Allowed, out.Status.Reason)
	}
	return nil
}
