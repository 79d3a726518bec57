package registry

import (
	"maps"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func defaultPod(p *corev1.Pod) {
	// Only pods get requests from limits: defaulting more into templates
	// would change the templates (and so the pod hashes) of workloads that
	// already exist, and the pods they create come through here anyway.
	requestsFromLimits(p.Spec.Containers)
	requestsFromLimits(p.Spec.InitContainers)
	setIfNil(&p.Spec.EnableServiceLinks, corev1.DefaultEnableServiceLinks)
	if p.Spec.HostNetwork {
		hostPortsFromContainerPorts(p.Spec.Containers)
		hostPortsFromContainerPorts(p.Spec.InitContainers)
	}
	// Validation once let negative grace periods through; the round trip
	// reads them as 1s, the shortest stop that still signals the container.
	// Templates keep theirs so existing workloads' templates stay as stored.
	if g := p.Spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		p.Spec.TerminationGracePeriodSeconds = ptr.To[int64](1)
	}
	p.Annotations = withoutAnnotations(p.Annotations, initContainerAnnotations)
	defaultPodSpec(&p.Spec)
	defaultPodStatus(&p.Status)
}

func defaultPodTemplate(t *corev1.PodTemplate) { defaultPodTemplateSpec(&t.Template) }

func defaultReplicationController(rc *corev1.ReplicationController) {
	if rc.Spec.Template != nil && rc.Spec.Template.Labels != nil {
		// Copies, so a later change to the template's labels (by Prepare or
		// admission) does not silently move the selector too.
		if len(rc.Spec.Selector) == 0 {
			rc.Spec.Selector = maps.Clone(rc.Spec.Template.Labels)
		}
		if len(rc.Labels) == 0 {
			rc.Labels = maps.Clone(rc.Spec.Template.Labels)
		}
	}
	setIfNil(&rc.Spec.Replicas, 1)
	if rc.Spec.Template != nil {
		defaultPodTemplateSpec(rc.Spec.Template)
	}
}

// defaultPodTemplateSpec is the defaulting every workload applies to the
// pods it will create: the spec's, not the pod-only parts of defaultPod.
func defaultPodTemplateSpec(t *corev1.PodTemplateSpec) {
	t.Annotations = withoutAnnotations(t.Annotations, initContainerAnnotations)
	defaultPodSpec(&t.Spec)
}

func defaultPodSpec(s *corev1.PodSpec) {
	setIfEmpty(&s.DNSPolicy, corev1.DNSClusterFirst)
	setIfEmpty(&s.RestartPolicy, corev1.RestartPolicyAlways)
	setIfNil(&s.SecurityContext, corev1.PodSecurityContext{})
	setIfNil(&s.TerminationGracePeriodSeconds, int64(corev1.DefaultTerminationGracePeriodSeconds))
	setIfEmpty(&s.SchedulerName, corev1.DefaultSchedulerName)

	// serviceAccount is the deprecated spelling of serviceAccountName; the
	// internal version has only the latter, so after a round trip both hold
	// serviceAccountName, or the old field's value when only it was given.
	if s.ServiceAccountName == "" {
		s.ServiceAccountName = s.DeprecatedServiceAccount
	}
	s.DeprecatedServiceAccount = s.ServiceAccountName

	for i := range s.Volumes {
		defaultVolume(&s.Volumes[i])
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
	for i := range s.EphemeralContainers {
		defaultContainer((*corev1.Container)(&s.EphemeralContainers[i].EphemeralContainerCommon))
	}
	roundResources(s.Overhead)
	if s.Resources != nil {
		// Pod-level requests are only derived with the PodLevelResources
		// gate, off in 1.33; rounding applies regardless.
		roundRequirements(s.Resources)
	}
}

func defaultPodStatus(st *corev1.PodStatus) {
	// The internal version keeps only the list of pod IPs, taking podIP as
	// authoritative when the two disagree (old kubelets set only podIP);
	// podIP then reads back as the list's first entry.
	switch {
	case st.PodIP != "" && (len(st.PodIPs) == 0 || st.PodIPs[0].IP != st.PodIP):
		st.PodIPs = []corev1.PodIP{{IP: st.PodIP}}
	case st.PodIP == "" && len(st.PodIPs) > 0:
		st.PodIP = st.PodIPs[0].IP
	}
	for _, list := range [][]corev1.ContainerStatus{st.InitContainerStatuses, st.ContainerStatuses, st.EphemeralContainerStatuses} {
		for i := range list {
			roundResources(list[i].AllocatedResources)
			if list[i].Resources != nil {
				roundRequirements(list[i].Resources)
			}
		}
	}
}

func requestsFromLimits(cs []corev1.Container) {
	for i := range cs {
		r := &cs[i].Resources
		if r.Limits == nil {
			continue
		}
		if r.Requests == nil {
			r.Requests = corev1.ResourceList{}
		}
		for name, q := range r.Limits {
			if _, ok := r.Requests[name]; !ok {
				r.Requests[name] = q.DeepCopy()
			}
		}
	}
}

// hostPortsFromContainerPorts: on the host's network a container port is
// a host port, and saying so lets the scheduler see the conflict.
func hostPortsFromContainerPorts(cs []corev1.Container) {
	for i := range cs {
		for j := range cs[i].Ports {
			if p := &cs[i].Ports[j]; p.HostPort == 0 {
				p.HostPort = p.ContainerPort
			}
		}
	}
}

// initContainerAnnotations predate the initContainers field; the round
// trip drops them so they cannot override it on kubelets that still read
// them.
var initContainerAnnotations = []string{
	"pod.beta.kubernetes.io/init-containers",
	"pod.alpha.kubernetes.io/init-containers",
	"pod.beta.kubernetes.io/init-container-statuses",
	"pod.alpha.kubernetes.io/init-container-statuses",
}

// withoutAnnotations returns a without the given keys, copying it only
// when one is there: the map may be shared with another object.
func withoutAnnotations(a map[string]string, keys []string) map[string]string {
	found := false
	for _, k := range keys {
		if _, ok := a[k]; ok {
			found = true
		}
	}
	if !found {
		return a
	}
	out := maps.Clone(a)
	for _, k := range keys {
		delete(out, k)
	}
	return out
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		if imageIsLatest(c.Image) {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
	setIfEmpty(&c.TerminationMessagePath, corev1.TerminationMessagePathDefault)
	setIfEmpty(&c.TerminationMessagePolicy, corev1.TerminationMessageReadFile)
	for i := range c.Ports {
		setIfEmpty(&c.Ports[i].Protocol, corev1.ProtocolTCP)
	}
	for i := range c.Env {
		if from := c.Env[i].ValueFrom; from != nil && from.FieldRef != nil {
			setIfEmpty(&from.FieldRef.APIVersion, "v1")
		}
	}
	roundRequirements(&c.Resources)
	for _, p := range []*corev1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		if p != nil {
			defaultProbe(p)
		}
	}
	if c.Lifecycle != nil {
		for _, h := range []*corev1.LifecycleHandler{c.Lifecycle.PostStart, c.Lifecycle.PreStop} {
			if h != nil && h.HTTPGet != nil {
				defaultHTTPGet(h.HTTPGet)
			}
		}
	}
}

func defaultProbe(p *corev1.Probe) {
	for _, f := range []struct {
		v   *int32
		def int32
	}{{&p.TimeoutSeconds, 1}, {&p.PeriodSeconds, 10}, {&p.SuccessThreshold, 1}, {&p.FailureThreshold, 3}} {
		if *f.v == 0 {
			*f.v = f.def
		}
	}
	if p.HTTPGet != nil {
		defaultHTTPGet(p.HTTPGet)
	}
	if p.GRPC != nil {
		setIfNil(&p.GRPC.Service, "")
	}
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	setIfEmpty(&h.Path, "/")
	setIfEmpty(&h.Scheme, corev1.URISchemeHTTP)
}

func defaultVolume(v *corev1.Volume) {
	src := &v.VolumeSource
	// A volume that names no source is scratch space.
	if ptr.AllPtrFieldsNil(src) {
		src.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	// Image volumes' pullPolicy is only defaulted with the ImageVolume gate,
	// off in 1.33.
	if src.HostPath != nil {
		setIfNil(&src.HostPath.Type, corev1.HostPathUnset)
	}
	if src.Secret != nil {
		setIfNil(&src.Secret.DefaultMode, corev1.SecretVolumeSourceDefaultMode)
	}
	if src.ConfigMap != nil {
		setIfNil(&src.ConfigMap.DefaultMode, corev1.ConfigMapVolumeSourceDefaultMode)
	}
	if src.DownwardAPI != nil {
		setIfNil(&src.DownwardAPI.DefaultMode, corev1.DownwardAPIVolumeSourceDefaultMode)
		defaultDownwardAPIFiles(src.DownwardAPI.Items)
	}
	if src.Projected != nil {
		setIfNil(&src.Projected.DefaultMode, corev1.ProjectedVolumeSourceDefaultMode)
		for i := range src.Projected.Sources {
			ps := &src.Projected.Sources[i]
			if ps.DownwardAPI != nil {
				defaultDownwardAPIFiles(ps.DownwardAPI.Items)
			}
			if ps.ServiceAccountToken != nil {
				setIfNil(&ps.ServiceAccountToken.ExpirationSeconds, 3600)
			}
		}
	}
	if src.ISCSI != nil {
		setIfEmpty(&src.ISCSI.ISCSIInterface, "default")
	}
	if src.RBD != nil {
		defaultRBD(&src.RBD.RBDPool, &src.RBD.RadosUser, &src.RBD.Keyring)
	}
	if src.AzureDisk != nil {
		defaultAzureDisk(src.AzureDisk)
	}
	if src.ScaleIO != nil {
		setIfEmpty(&src.ScaleIO.StorageMode, "ThinProvisioned")
		setIfEmpty(&src.ScaleIO.FSType, "xfs")
	}
	if src.Ephemeral != nil && src.Ephemeral.VolumeClaimTemplate != nil {
		defaultPVCSpec(&src.Ephemeral.VolumeClaimTemplate.Spec)
	}
}

func defaultDownwardAPIFiles(items []corev1.DownwardAPIVolumeFile) {
	for i := range items {
		if items[i].FieldRef != nil {
			setIfEmpty(&items[i].FieldRef.APIVersion, "v1")
		}
	}
}

func defaultRBD(pool, user, keyring *string) {
	setIfEmpty(pool, "rbd")
	setIfEmpty(user, "admin")
	setIfEmpty(keyring, "/etc/ceph/keyring")
}

func defaultAzureDisk(d *corev1.AzureDiskVolumeSource) {
	setIfNil(&d.CachingMode, corev1.AzureDataDiskCachingReadWrite)
	setIfNil(&d.FSType, "ext4")
	setIfNil(&d.ReadOnly, false)
	setIfNil(&d.Kind, corev1.AzureSharedBlobDisk)
}

func defaultPVCSpec(s *corev1.PersistentVolumeClaimSpec) {
	setIfNil(&s.VolumeMode, corev1.PersistentVolumeFilesystem)
	roundVolumeRequirements(&s.Resources)
}
