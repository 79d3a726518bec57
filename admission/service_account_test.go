package admission

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestServiceAccountDefaultsAndMounts(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p := NewServiceAccount(s)

	// No "default" account stored: tolerated while nothing creates it.
	pod := testPod("ns", "p", "c")
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
	a := podCreate(pod)
	mustNil(t, p.Admit(ctx, a))
	mustNil(t, p.Validate(ctx, a))
	if pod.Spec.ServiceAccountName != "default" || pod.Spec.DeprecatedServiceAccount != "default" { //nolint:staticcheck
		t.Errorf("service account = %q/%q, want default", pod.Spec.ServiceAccountName, pod.Spec.DeprecatedServiceAccount) //nolint:staticcheck
	}
	if len(pod.Spec.Volumes) != 1 {
		t.Fatalf("volumes = %+v, want the token volume", pod.Spec.Volumes)
	}
	v := pod.Spec.Volumes[0]
	if !strings.HasPrefix(v.Name, "kube-api-access-") || len(v.Name) != len("kube-api-access-")+5 {
		t.Errorf("volume name = %q", v.Name)
	}
	want := &corev1.ProjectedVolumeSource{
		DefaultMode: ptr.To[int32](420),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Path: "token", ExpirationSeconds: ptr.To[int64](3607)}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items: []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{Items: []corev1.DownwardAPIVolumeFile{{Path: "namespace",
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}
	if !equality.Semantic.DeepEqual(v.Projected, want) {
		t.Errorf("projected = %+v", v.Projected)
	}
	for _, c := range append(pod.Spec.InitContainers, pod.Spec.Containers...) {
		wantMount := []corev1.VolumeMount{{Name: v.Name, ReadOnly: true, MountPath: "/var/run/secrets/kubernetes.io/serviceaccount"}}
		if !equality.Semantic.DeepEqual(c.VolumeMounts, wantMount) {
			t.Errorf("container %s mounts = %+v", c.Name, c.VolumeMounts)
		}
	}

	// A named account that does not exist is refused, with upstream's text.
	pod = testPod("ns", "x", "c")
	pod.Spec.ServiceAccountName = "sa"
	wantStatus(t, p.Admit(ctx, podCreate(pod)), metav1.StatusReasonForbidden,
		`pods "x" is forbidden: error looking up service account ns/sa: serviceaccount "sa" not found`)
}

func TestServiceAccountSettings(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p := NewServiceAccount(s)
	put(t, s, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "builder"},
		AutomountServiceAccountToken: ptr.To(false),
		ImagePullSecrets:             []corev1.LocalObjectReference{{Name: "registry"}}})
	put(t, s, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "default"}})

	// The account opts out of the token; its pull secrets are added.
	pod := testPod("ns", "p", "c")
	pod.Spec.ServiceAccountName = "builder"
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Volumes) != 0 || len(pod.Spec.Containers[0].VolumeMounts) != 0 {
		t.Errorf("token mounted although the account opts out: %+v", pod.Spec.Volumes)
	}
	if len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "registry" {
		t.Errorf("imagePullSecrets = %+v", pod.Spec.ImagePullSecrets)
	}

	// The pod's own choice wins over the account's, and its pull secrets
	// are kept.
	pod = testPod("ns", "q", "c")
	pod.Spec.ServiceAccountName = "builder"
	pod.Spec.AutomountServiceAccountToken = ptr.To(true)
	pod.Spec.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "mine"}}
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Volumes) != 1 || len(pod.Spec.ImagePullSecrets) != 1 || pod.Spec.ImagePullSecrets[0].Name != "mine" {
		t.Errorf("volumes %+v, pull secrets %+v", pod.Spec.Volumes, pod.Spec.ImagePullSecrets)
	}

	// Opting out on the pod; a container already mounting the token path
	// keeps its own mount.
	pod = testPod("ns", "r", "c", "d")
	pod.Spec.AutomountServiceAccountToken = ptr.To(false)
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Volumes) != 0 {
		t.Errorf("token mounted although the pod opts out")
	}
	pod = testPod("ns", "s", "c", "d")
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "own", MountPath: tokenMountPath}}
	mustNil(t, p.Admit(ctx, podCreate(pod)))
	if len(pod.Spec.Containers[0].VolumeMounts) != 1 || pod.Spec.Containers[0].VolumeMounts[0].Name != "own" ||
		len(pod.Spec.Containers[1].VolumeMounts) != 1 {
		t.Errorf("mounts = %+v / %+v", pod.Spec.Containers[0].VolumeMounts, pod.Spec.Containers[1].VolumeMounts)
	}
}

func TestServiceAccountValidate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := newStore(t)
	p := NewServiceAccount(s)
	put(t, s, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "strict",
		Annotations: map[string]string{"kubernetes.io/enforce-mountable-secrets": "true"}},
		Secrets: []corev1.ObjectReference{{Name: "allowed"}}})

	pod := testPod("ns", "p", "c")
	pod.Spec.ServiceAccountName = "strict"
	pod.Spec.Volumes = []corev1.Volume{{Name: "s", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "other"}}}}
	a := podCreate(pod)
	mustNil(t, p.Admit(ctx, a))
	wantStatus(t, p.Validate(ctx, a), metav1.StatusReasonForbidden,
		`pods "p" is forbidden: volume with secret.secretName="other" is not allowed because service account strict does not reference that secret`)
	pod.Spec.Volumes[0].Secret.SecretName = "allowed"
	mustNil(t, p.Validate(ctx, a))

	// The account may not change on update.
	old := pod.DeepCopy()
	pod.Spec.ServiceAccountName = "default"
	err := p.Validate(ctx, &Attributes{Cluster: testCluster, Operation: Update, Version: "v1", Resource: "pods",
		Namespace: "ns", Name: "p", Object: pod, OldObject: old})
	if !apierrors.IsInvalid(err) {
		t.Errorf("changing the service account: %v, want Invalid", err)
	}

	// Mirror pods are left alone, and may not name an account.
	mirror := testPod("ns", "m", "c")
	mirror.Annotations = map[string]string{corev1.MirrorPodAnnotationKey: "x"}
	a = podCreate(mirror)
	mustNil(t, p.Admit(ctx, a))
	mustNil(t, p.Validate(ctx, a))
	if mirror.Spec.ServiceAccountName != "" || len(mirror.Spec.Volumes) != 0 {
		t.Errorf("mirror pod changed: %+v", mirror.Spec)
	}
	mirror.Spec.ServiceAccountName = "default"
	wantStatus(t, p.Validate(ctx, a), metav1.StatusReasonForbidden, `pods "m" is forbidden: a mirror pod may not reference service accounts`)
}
