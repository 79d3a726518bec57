package admission

import (
	"context"
	"slices"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func privilegedPod(ns, name string) *corev1.Pod {
	p := testPod(ns, name, "c")
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: ptr.To(true)}
	return p
}

// restrictedPod passes the restricted level.
func restrictedPod(ns, name string) *corev1.Pod {
	p := testPod(ns, name, "c")
	p.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsNonRoot: ptr.To(true),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
	p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{AllowPrivilegeEscalation: ptr.To(false),
		Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}}}
	return p
}

func TestPodSecurityEnforce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p, err := NewPodSecurity(s)
	mustNil(t, err)
	put(t, s, namespace("locked", map[string]string{"pod-security.kubernetes.io/enforce": "restricted"}))
	put(t, s, namespace("open", nil))

	wantStatus(t, p.Admit(ctx, podCreate(privilegedPod("locked", "p"))), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: violates PodSecurity "restricted:latest": privileged (container "c" must not set securityContext.privileged=true), `+
			`allowPrivilegeEscalation != false (container "c" must set securityContext.allowPrivilegeEscalation=false), `+
			`unrestricted capabilities (container "c" must set securityContext.capabilities.drop=["ALL"]), `+
			`runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true), `+
			`seccompProfile (pod or container "c" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost")`)
	wctx, warnings := WithWarnings(ctx)
	mustNil(t, p.Admit(wctx, podCreate(restrictedPod("locked", "ok"))))
	mustNil(t, p.Admit(wctx, podCreate(privilegedPod("open", "p"))))
	if w := warnings.List(); len(w) != 0 {
		t.Errorf("warnings = %q", w)
	}

	// Only image changes (and added containers) are judged again on update.
	old := privilegedPod("locked", "p")
	upd := old.DeepCopy()
	upd.Labels = map[string]string{"a": "b"}
	update := &Attributes{Cluster: testCluster, Operation: Update, Version: "v1", Resource: "pods",
		Namespace: "locked", Name: "p", Object: upd, OldObject: old}
	mustNil(t, p.Admit(ctx, update))
	upd.Spec.Containers[0].Image = "busybox:2"
	if err := p.Admit(ctx, update); !apierrors.IsForbidden(err) {
		t.Errorf("image update of a violating pod: %v, want Forbidden", err)
	}
	// Status writes are never judged.
	update.Subresource = "status"
	mustNil(t, p.Admit(ctx, update))
}

func TestPodSecurityWarn(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p, err := NewPodSecurity(s)
	mustNil(t, err)
	put(t, s, namespace("warned", map[string]string{"pod-security.kubernetes.io/warn": "baseline",
		"pod-security.kubernetes.io/audit": "restricted"}))
	put(t, s, namespace("locked", map[string]string{"pod-security.kubernetes.io/enforce": "baseline",
		"pod-security.kubernetes.io/enforce-version": "v1.30"}))

	wctx, warnings := WithWarnings(ctx)
	mustNil(t, p.Admit(wctx, podCreate(privilegedPod("warned", "p"))))
	want := []string{`would violate PodSecurity "baseline:latest": privileged (container "c" must not set securityContext.privileged=true)`}
	if w := warnings.List(); !slices.Equal(w, want) {
		t.Errorf("warnings = %q\nwant %q", w, want)
	}

	// Workloads are only warned, at the enforce level when warn is unset.
	d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: "locked", Name: "d"}}
	d.Spec.Template.Spec = privilegedPod("", "").Spec
	wctx, warnings = WithWarnings(ctx)
	mustNil(t, p.Admit(wctx, createAttrs(d, "apps", "deployments")))
	want = []string{`would violate PodSecurity "baseline:v1.30": privileged (container "c" must not set securityContext.privileged=true)`}
	if w := warnings.List(); !slices.Equal(w, want) {
		t.Errorf("warnings = %q\nwant %q", w, want)
	}
	// Without a collector the warning is dropped, not an error.
	mustNil(t, p.Admit(ctx, createAttrs(d, "apps", "deployments")))
}

func TestPodSecurityNamespaces(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p, err := NewPodSecurity(s)
	mustNil(t, err)
	nsAttrs := func(op Operation, ns, old *corev1.Namespace) *Attributes {
		a := &Attributes{Cluster: testCluster, Operation: op, Version: "v1", Resource: "namespaces", Name: ns.Name, Object: ns}
		if old != nil {
			a.OldObject = old
		}
		return a
	}

	bad := namespace("x", map[string]string{"pod-security.kubernetes.io/enforce": "bogus"})
	wantStatus(t, p.Admit(ctx, nsAttrs(Create, bad, nil)), metav1.StatusReasonInvalid,
		`Namespace "x" is invalid: metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "bogus": must be one of privileged, baseline, restricted`)

	// Tightening enforce warns about the pods it would now refuse.
	old := namespace("apps", nil)
	put(t, s, old)
	put(t, s, privilegedPod("apps", "b"))
	put(t, s, privilegedPod("apps", "a"))
	put(t, s, restrictedPod("apps", "fine"))
	hostNet := testPod("apps", "h", "c")
	hostNet.Spec.HostNetwork = true
	put(t, s, hostNet)
	tight := namespace("apps", map[string]string{"pod-security.kubernetes.io/enforce": "baseline"})
	wctx, warnings := WithWarnings(ctx)
	mustNil(t, p.Admit(wctx, nsAttrs(Update, tight, old)))
	want := []string{
		`existing pods in namespace "apps" violate the new PodSecurity enforce level "baseline:latest"`,
		`a (and 1 other pod): privileged`,
		`h: host namespaces`,
	}
	if w := warnings.List(); !slices.Equal(w, want) {
		t.Errorf("warnings = %q\nwant %q", w, want)
	}
	// Loosening does not look at pods.
	wctx, warnings = WithWarnings(ctx)
	mustNil(t, p.Admit(wctx, nsAttrs(Update, old, tight)))
	if w := warnings.List(); len(w) != 0 {
		t.Errorf("warnings = %q", w)
	}
}
