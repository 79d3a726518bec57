package admission

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilrand "k8s.io/apimachinery/pkg/util/rand"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"
)

const (
	defaultServiceAccountName = "default"
	tokenVolumePrefix         = "kube-api-access-"
	tokenMountPath            = "/var/run/secrets/kubernetes.io/serviceaccount"
	// The bound token lives an hour; 3607 rather than 3600 lets the token
	// issuer recognise tokens minted for this volume and only warn when
	// they are used past their hour, as upstream.
	tokenExpirationSeconds            = 3607
	enforceMountableSecretsAnnotation = "kubernetes.io/enforce-mountable-secrets"
)

// ServiceAccount gives every pod a service account, checks that it exists
// and mounts its API credentials, as kube-apiserver's plugin of that name.
//
// pgkube has no controller creating each namespace's "default" service
// account yet, so a missing "default" is tolerated (the pod keeps the name
// and gets the usual token volume); any other missing account is refused.
type ServiceAccount struct {
	store Getter
}

// NewServiceAccount returns the plugin; store reads service accounts.
func NewServiceAccount(store Getter) *ServiceAccount {
	return &ServiceAccount{store: store}
}

// Admit is the mutating half: it runs among the mutating plugins.
func (p *ServiceAccount) Admit(ctx context.Context, a *Attributes) error {
	if !coreResource(a, "pods") || a.Subresource != "" || a.Operation != Create {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	// The kubelet deletes a mirror pod whose spec differs from its
	// manifest, so mirror pods are never changed, only checked.
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return nil
	}
	name := serviceAccountName(pod)
	if name == "" {
		name = defaultServiceAccountName
	}
	// Both fields, so that the stored pod reads back the same through
	// either name.
	pod.Spec.ServiceAccountName = name
	pod.Spec.DeprecatedServiceAccount = name //nolint:staticcheck // kept in step as upstream does

	sa, err := p.lookup(ctx, a, name)
	if err != nil {
		return err
	}
	if shouldAutomount(sa, pod) {
		mountServiceAccountToken(pod)
	}
	if len(pod.Spec.ImagePullSecrets) == 0 && len(sa.ImagePullSecrets) > 0 {
		pod.Spec.ImagePullSecrets = make([]corev1.LocalObjectReference, len(sa.ImagePullSecrets))
		for i, s := range sa.ImagePullSecrets {
			pod.Spec.ImagePullSecrets[i].Name = s.Name
		}
	}
	return nil
}

// Validate is the validating half: it runs among the validating plugins,
// after every mutation, so a service account set by a later mutating
// step is checked too.
func (p *ServiceAccount) Validate(ctx context.Context, a *Attributes) error {
	if !coreResource(a, "pods") || (a.Subresource != "" && a.Subresource != "ephemeralcontainers") {
		return nil
	}
	pod, ok := a.Object.(*corev1.Pod)
	if !ok {
		return nil
	}
	if a.Operation == Update {
		old, ok := a.OldObject.(*corev1.Pod)
		if !ok {
			return nil
		}
		if a.Subresource == "ephemeralcontainers" {
			return p.validateEphemeralContainers(ctx, a, pod)
		}
		// pgkube does not yet run upstream's full pod update validation;
		// the account is the one field this plugin relies on staying put.
		if serviceAccountName(pod) != serviceAccountName(old) {
			return apierrors.NewInvalid(schema.GroupKind{Kind: "Pod"}, a.Name, field.ErrorList{
				field.Forbidden(field.NewPath("spec", "serviceAccountName"),
					"pod updates may not change fields other than "+strings.Join(updatablePodSpecFields, ",")),
			})
		}
		return nil
	}
	if a.Operation != Create || a.Subresource != "" {
		return nil
	}
	if _, mirror := pod.Annotations[corev1.MirrorPodAnnotationKey]; mirror {
		return validateMirrorPod(a, pod)
	}
	name := serviceAccountName(pod)
	if name == "" {
		return forbidden(a, fmt.Errorf("no service account specified for pod %s/%s", a.Namespace, pod.Name))
	}
	sa, err := p.lookup(ctx, a, name)
	if err != nil {
		return err
	}
	if enforceMountableSecrets(sa) {
		if err := limitSecretReferences(sa, pod); err != nil {
			return forbidden(a, err)
		}
	}
	return nil
}

// updatablePodSpecFields names what upstream lets a pod update change.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

// serviceAccountName reads the account a pod names; clients may still use
// the deprecated field alone, which upstream's conversion honours.
func serviceAccountName(pod *corev1.Pod) string {
	if pod.Spec.ServiceAccountName != "" {
		return pod.Spec.ServiceAccountName
	}
	return pod.Spec.DeprecatedServiceAccount //nolint:staticcheck // read for old clients
}

// lookup reads the named service account, or refuses the pod. Upstream
// retries a missing "default" for a second while its controller catches
// up; with no such controller here a missing "default" is tolerated
// instead and stands for an account with no settings.
func (p *ServiceAccount) lookup(ctx context.Context, a *Attributes, name string) (*corev1.ServiceAccount, error) {
	o, err := p.store.Get(ctx, a.Cluster, storage.Key{Resource: serviceAccountsKey, Namespace: a.Namespace, Name: name})
	if errors.Is(err, storage.ErrNotFound) {
		if name == defaultServiceAccountName {
			return &corev1.ServiceAccount{}, nil
		}
		err = apierrors.NewNotFound(schema.GroupResource{Resource: "serviceaccount"}, name)
	}
	if err != nil {
		return nil, forbidden(a, fmt.Errorf("error looking up service account %s/%s: %w", a.Namespace, name, err))
	}
	sa := &corev1.ServiceAccount{}
	if err := json.Unmarshal(o.Data, sa); err != nil {
		return nil, fmt.Errorf("decode service account %s/%s: %w", a.Namespace, name, err)
	}
	return sa, nil
}

func shouldAutomount(sa *corev1.ServiceAccount, pod *corev1.Pod) bool {
	if pod.Spec.AutomountServiceAccountToken != nil {
		return *pod.Spec.AutomountServiceAccountToken
	}
	if sa.AutomountServiceAccountToken != nil {
		return *sa.AutomountServiceAccountToken
	}
	return true
}

func enforceMountableSecrets(sa *corev1.ServiceAccount) bool {
	v, ok := sa.Annotations[enforceMountableSecretsAnnotation]
	if !ok {
		return false
	}
	b, _ := strconv.ParseBool(v)
	return b
}

// mountServiceAccountToken adds the token volume and mounts it in every
// container that does not already mount something at the token path. A
// volume that already carries the prefix is reused, so a pod re-created
// from its own stored spec does not get a second one.
func mountServiceAccountToken(pod *corev1.Pod) {
	volume := ""
	for _, v := range pod.Spec.Volumes {
		if strings.HasPrefix(v.Name, tokenVolumePrefix) {
			volume = v.Name
			break
		}
	}
	existing := volume != ""
	if !existing {
		volume = tokenVolumePrefix + utilrand.String(5)
	}
	mount := corev1.VolumeMount{Name: volume, ReadOnly: true, MountPath: tokenMountPath}
	used := false
	addMount := func(c *corev1.Container) {
		for _, m := range c.VolumeMounts {
			if m.MountPath == tokenMountPath {
				return
			}
		}
		c.VolumeMounts = append(c.VolumeMounts, mount)
		used = true
	}
	for i := range pod.Spec.InitContainers {
		addMount(&pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		addMount(&pod.Spec.Containers[i])
	}
	if used && !existing {
		pod.Spec.Volumes = append(pod.Spec.Volumes, corev1.Volume{
			Name:         volume,
			VolumeSource: corev1.VolumeSource{Projected: tokenVolumeSource()},
		})
	}
}

func tokenVolumeSource() *corev1.ProjectedVolumeSource {
	return &corev1.ProjectedVolumeSource{
		// Written out although it is the default, so the stored pod is the
		// same whichever defaulting a reader applies.
		DefaultMode: ptr.To[int32](corev1.ProjectedVolumeSourceDefaultMode),
		Sources: []corev1.VolumeProjection{
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{
				Path: "token", ExpirationSeconds: ptr.To[int64](tokenExpirationSeconds)}},
			{ConfigMap: &corev1.ConfigMapProjection{
				LocalObjectReference: corev1.LocalObjectReference{Name: "kube-root-ca.crt"},
				Items:                []corev1.KeyToPath{{Key: "ca.crt", Path: "ca.crt"}}}},
			{DownwardAPI: &corev1.DownwardAPIProjection{
				Items: []corev1.DownwardAPIVolumeFile{{
					Path: "namespace", FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.namespace"}}}}},
		},
	}
}

// validateMirrorPod keeps static pods, which the kubelet creates on a
// node's behalf, from reaching credentials through the API.
func validateMirrorPod(a *Attributes, pod *corev1.Pod) error {
	if serviceAccountName(pod) != "" {
		return forbidden(a, errors.New("a mirror pod may not reference service accounts"))
	}
	if podReferencesSecrets(pod) {
		return forbidden(a, errors.New("a mirror pod may not reference secrets"))
	}
	for _, v := range pod.Spec.Volumes {
		if v.Projected == nil {
			continue
		}
		for _, s := range v.Projected.Sources {
			if s.ServiceAccountToken != nil {
				return forbidden(a, errors.New("a mirror pod may not use ServiceAccountToken volume projections"))
			}
		}
	}
	return nil
}

// podReferencesSecrets tells whether any part of the pod names a secret.
func podReferencesSecrets(pod *corev1.Pod) bool {
	if len(pod.Spec.ImagePullSecrets) > 0 {
		return true
	}
	for _, v := range pod.Spec.Volumes {
		switch {
		case v.Secret != nil, v.CephFS != nil && v.CephFS.SecretRef != nil, v.Cinder != nil && v.Cinder.SecretRef != nil,
			v.FlexVolume != nil && v.FlexVolume.SecretRef != nil, v.RBD != nil && v.RBD.SecretRef != nil,
			v.ScaleIO != nil && v.ScaleIO.SecretRef != nil, v.ISCSI != nil && v.ISCSI.SecretRef != nil,
			v.StorageOS != nil && v.StorageOS.SecretRef != nil, v.AzureFile != nil,
			v.CSI != nil && v.CSI.NodePublishSecretRef != nil:
			return true
		case v.Projected != nil:
			for _, s := range v.Projected.Sources {
				if s.Secret != nil {
					return true
				}
			}
		}
	}
	found := false
	visitContainers(pod, func(c *corev1.Container, _ string) {
		for _, e := range c.EnvFrom {
			if e.SecretRef != nil {
				found = true
			}
		}
		for _, e := range c.Env {
			if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
				found = true
			}
		}
	})
	return found
}

// visitContainers calls f for init, regular and ephemeral containers, with
// the kind upstream's messages use ("init container", "container",
// "ephemeral container").
func visitContainers(pod *corev1.Pod, f func(c *corev1.Container, kind string)) {
	for i := range pod.Spec.InitContainers {
		f(&pod.Spec.InitContainers[i], "init container")
	}
	for i := range pod.Spec.Containers {
		f(&pod.Spec.Containers[i], "container")
	}
	for i := range pod.Spec.EphemeralContainers {
		f((*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon), "ephemeral container")
	}
}

// limitSecretReferences refuses secrets the account does not list, for
// accounts that opted in with the enforce-mountable-secrets annotation.
func limitSecretReferences(sa *corev1.ServiceAccount, pod *corev1.Pod) error {
	mountable := map[string]bool{}
	for _, s := range sa.Secrets {
		mountable[s.Name] = true
	}
	for _, v := range pod.Spec.Volumes {
		if v.Secret != nil && !mountable[v.Secret.SecretName] {
			return fmt.Errorf("volume with secret.secretName=\"%s\" is not allowed because service account %s does not reference that secret",
				v.Secret.SecretName, sa.Name)
		}
	}
	var err error
	check := func(c *corev1.Container, kind string) {
		if err == nil {
			err = containerSecretRefs(c, kind, sa.Name, mountable)
		}
	}
	for i := range pod.Spec.InitContainers {
		check(&pod.Spec.InitContainers[i], "init container")
	}
	for i := range pod.Spec.Containers {
		check(&pod.Spec.Containers[i], "container")
	}
	if err != nil {
		return err
	}
	pullable := map[string]bool{}
	for _, s := range sa.ImagePullSecrets {
		pullable[s.Name] = true
	}
	for i, s := range pod.Spec.ImagePullSecrets {
		if !pullable[s.Name] {
			return fmt.Errorf(`imagePullSecrets[%d].name="%s" is not allowed because service account %s does not reference that imagePullSecret`,
				i, s.Name, sa.Name)
		}
	}
	return nil
}

func containerSecretRefs(c *corev1.Container, kind, account string, mountable map[string]bool) error {
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil && !mountable[e.ValueFrom.SecretKeyRef.Name] {
			return fmt.Errorf("%s %s with envVar %s referencing secret.secretName=\"%s\" is not allowed because service account %s does not reference that secret",
				kind, c.Name, e.Name, e.ValueFrom.SecretKeyRef.Name, account)
		}
	}
	for _, e := range c.EnvFrom {
		if e.SecretRef != nil && !mountable[e.SecretRef.Name] {
			return fmt.Errorf("%s %s with envFrom referencing secret.secretName=\"%s\" is not allowed because service account %s does not reference that secret",
				kind, c.Name, e.SecretRef.Name, account)
		}
	}
	return nil
}

// validateEphemeralContainers checks containers added through the
// ephemeralcontainers subresource against the pod's account.
func (p *ServiceAccount) validateEphemeralContainers(ctx context.Context, a *Attributes, pod *corev1.Pod) error {
	name := serviceAccountName(pod)
	if name == "" {
		return forbidden(a, fmt.Errorf("no service account specified for pod %s/%s", a.Namespace, pod.Name))
	}
	sa, err := p.lookup(ctx, a, name)
	if err != nil {
		return err
	}
	if !enforceMountableSecrets(sa) {
		return nil
	}
	mountable := map[string]bool{}
	for _, s := range sa.Secrets {
		mountable[s.Name] = true
	}
	for i := range pod.Spec.EphemeralContainers {
		c := (*corev1.Container)(&pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		if err := containerSecretRefs(c, "ephemeral container", sa.Name, mountable); err != nil {
			return forbidden(a, err)
		}
	}
	return nil
}
