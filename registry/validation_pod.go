package registry

import (
	"fmt"
	"math"
	"path"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metavalidation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/diff"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

const (
	fileModeErrorMsg     = "must be a number between 0 and 0777 (octal), both inclusive"
	emptyDirModeErrorMsg = "must be a number between 0 and 01777 (octal), both inclusive"
	onlyAlwaysInitMsg    = "may not be set for init containers without restartPolicy=Always"
	moreThanOneHandler   = "may not specify more than 1 handler type"
	moreThanOneVolume    = "may not specify more than 1 volume type"
	// defaultGracePeriod is what an unset terminationGracePeriodSeconds
	// becomes; sleep hooks are measured against it.
	defaultGracePeriod = int64(corev1.DefaultTerminationGracePeriodSeconds)
)

// updatablePodSpecFields is the list upstream's refusal names.
var updatablePodSpecFields = []string{
	"`spec.containers[*].image`",
	"`spec.initContainers[*].image`",
	"`spec.activeDeadlineSeconds`",
	"`spec.tolerations` (only additions to existing tolerations)",
	"`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)",
}

func validatePodObject(obj, old runtime.Object) field.ErrorList {
	pod := obj.(*corev1.Pod)
	if old == nil {
		return validatePodCreate(pod)
	}
	return validatePodUpdate(pod, old.(*corev1.Pod))
}

func validatePodCreate(pod *corev1.Pod) field.ErrorList {
	specPath := field.NewPath("spec")
	errs := validatePodSpec(&pod.Spec, pod.Name, specPath, true)
	errs = append(errs, podOnlyChecks(&pod.Spec, specPath)...)
	if len(pod.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(specPath.Child("ephemeralContainers"), "cannot be set on create"))
	}
	if pod.Spec.NodeName != "" && len(pod.Spec.SchedulingGates) != 0 {
		errs = append(errs, field.Forbidden(specPath.Child("nodeName"), "cannot be set until all schedulingGates have been cleared"))
	}
	return errs
}

// podOnlyChecks are the rules upstream applies to pods but not to the
// templates inside workloads (kept apart there for compatibility).
func podOnlyChecks(spec *corev1.PodSpec, specPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.TerminationGracePeriodSeconds != nil {
		errs = append(errs, nonNegative(*spec.TerminationGracePeriodSeconds, specPath.Child("terminationGracePeriodSeconds"))...)
	}
	for _, list := range []struct {
		name string
		cs   []corev1.Container
	}{{"containers", spec.Containers}, {"initContainers", spec.InitContainers}} {
		for i := range list.cs {
			if img := list.cs[i].Image; len(img) != len(strings.TrimSpace(img)) {
				errs = append(errs, field.Invalid(specPath.Child(list.name).Index(i).Child("image"), img, "must not have leading or trailing whitespace"))
			}
		}
	}
	return errs
}

// validatePodUpdate lets through only what upstream lets a pod's spec
// change after creation, plus the node assignment a binding makes (pgkube's
// binding subresource writes through this same check).
func validatePodUpdate(pod, old *corev1.Pod) field.ErrorList {
	n, o := &pod.Spec, &old.Spec
	if sameEncoding(n, o) {
		return nil
	}
	specPath := field.NewPath("spec")
	if bindingOnly(n, o) {
		return nameMessages(apivalidation.NameIsDNSSubdomain(n.NodeName, false), n.NodeName, specPath.Child("nodeName"))
	}
	errs := validatePodSpec(n, pod.Name, specPath, true)
	errs = append(errs, podOnlyChecks(n, specPath)...)

	cErrs, stop := containerUpdates(n.Containers, o.Containers, specPath.Child("containers"))
	errs = append(errs, cErrs...)
	if stop {
		return errs
	}
	cErrs, stop = containerUpdates(n.InitContainers, o.InitContainers, specPath.Child("initContainers"))
	errs = append(errs, cErrs...)
	if stop {
		return errs
	}

	adsPath := specPath.Child("activeDeadlineSeconds")
	if n.ActiveDeadlineSeconds != nil {
		v := *n.ActiveDeadlineSeconds
		if v < 0 || v > math.MaxInt32 {
			return append(errs, field.Invalid(adsPath, v, validation.InclusiveRangeError(0, math.MaxInt32)))
		}
		if o.ActiveDeadlineSeconds != nil && *o.ActiveDeadlineSeconds < v {
			return append(errs, field.Invalid(adsPath, v, "must be less than or equal to previous value"))
		}
	} else if o.ActiveDeadlineSeconds != nil {
		errs = append(errs, field.Invalid(adsPath, n.ActiveDeadlineSeconds, "must not update from a positive integer to nil value"))
	}

	errs = append(errs, onlyAddedTolerations(n.Tolerations, o.Tolerations, specPath.Child("tolerations"))...)
	errs = append(errs, onlyDeletedSchedulingGates(n.SchedulingGates, o.SchedulingGates, specPath.Child("schedulingGates"))...)

	// Put back what may change, then anything left over is a change that
	// is not allowed.
	m := n.DeepCopy()
	for i := range m.Containers {
		m.Containers[i].Image = o.Containers[i].Image
	}
	for i := range m.InitContainers {
		m.InitContainers[i].Image = o.InitContainers[i].Image
	}
	m.ActiveDeadlineSeconds = o.ActiveDeadlineSeconds
	m.SchedulingGates = o.SchedulingGates
	m.Tolerations = o.Tolerations
	if o.NodeName == "" {
		m.NodeName = ""
	}
	if o.TerminationGracePeriodSeconds != nil && *o.TerminationGracePeriodSeconds < 0 &&
		m.TerminationGracePeriodSeconds != nil && *m.TerminationGracePeriodSeconds == 1 {
		m.TerminationGracePeriodSeconds = o.TerminationGracePeriodSeconds
	}
	// A pod still held by scheduling gates may gain node selector terms.
	if len(o.SchedulingGates) > 0 && !equality.Semantic.DeepEqual(m.NodeSelector, o.NodeSelector) {
		for k, v := range o.NodeSelector {
			if got, ok := m.NodeSelector[k]; !ok || got != v {
				errs = append(errs, field.Invalid(specPath.Child("nodeSelector"), m.NodeSelector, "only additions to spec.nodeSelector are allowed (no mutations or deletions)"))
				break
			}
		}
		m.NodeSelector = o.NodeSelector
	}
	if !equality.Semantic.DeepEqual(m, o) {
		errs = append(errs, field.Forbidden(specPath, fmt.Sprintf("pod updates may not change fields other than %s\n%v",
			strings.Join(updatablePodSpecFields, ","), diff.Diff(o, m))))
	}
	return errs
}

// bindingOnly: the only difference is a node assigned to an unassigned pod.
func bindingOnly(n, o *corev1.PodSpec) bool {
	if o.NodeName != "" || n.NodeName == "" {
		return false
	}
	c := *n
	c.NodeName = ""
	return sameEncoding(&c, o)
}

func containerUpdates(n, o []corev1.Container, p *field.Path) (field.ErrorList, bool) {
	if len(n) != len(o) {
		return field.ErrorList{field.Forbidden(p, "pod updates may not add or remove containers")}, true
	}
	var errs field.ErrorList
	for i := range n {
		if len(n[i].Image) == 0 {
			errs = append(errs, field.Required(p.Index(i).Child("image"), ""))
		}
	}
	return errs, false
}

func onlyAddedTolerations(n, o []corev1.Toleration, p *field.Path) field.ErrorList {
	for _, ot := range o {
		found := false
		for _, nt := range n {
			c := ot
			c.TolerationSeconds = nt.TolerationSeconds
			if equality.Semantic.DeepEqual(c, nt) {
				found = true
				break
			}
		}
		if !found {
			return field.ErrorList{field.Forbidden(p, "existing toleration can not be modified except its tolerationSeconds")}
		}
	}
	return nil
}

func onlyDeletedSchedulingGates(n, o []corev1.PodSchedulingGate, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, g := range n {
		known := false
		for _, og := range o {
			if og.Name == g.Name {
				known = true
				break
			}
		}
		if !known {
			errs = append(errs, field.Forbidden(p.Index(i).Child("name"), fmt.Sprintf("only deletion is allowed, but found new scheduling gate '%s'", g.Name)))
		}
	}
	return errs
}

// validatePodTemplateSpec is what every workload runs on its template.
func validatePodTemplateSpec(t *corev1.PodTemplateSpec, p *field.Path) field.ErrorList {
	errs := labelsAt(t.Labels, p, "labels")
	if len(t.Annotations) > 0 {
		errs = append(errs, apivalidation.ValidateAnnotations(t.Annotations, p.Child("annotations"))...)
	}
	errs = append(errs, validatePodSpec(&t.Spec, "", p.Child("spec"), false)...)
	if len(t.Spec.EphemeralContainers) > 0 {
		errs = append(errs, field.Forbidden(p.Child("spec", "ephemeralContainers"), "ephemeral containers not allowed in pod template"))
	}
	return errs
}

func validatePodTemplateObject(obj, old runtime.Object) field.ErrorList {
	t := obj.(*corev1.PodTemplate)
	if old != nil && specUnchanged(&t.Template, &old.(*corev1.PodTemplate).Template, old) {
		return nil
	}
	return validatePodTemplateSpec(&t.Template, field.NewPath("template"))
}

// validatePodSpec holds the rules shared by pods and pod templates;
// isPod marks the stricter pod-only variants.
func validatePodSpec(spec *corev1.PodSpec, podName string, p *field.Path, isPod bool) field.ErrorList {
	gracePeriod := defaultGracePeriod
	if spec.TerminationGracePeriodSeconds != nil {
		gracePeriod = *spec.TerminationGracePeriodSeconds
	}
	restartPolicy := spec.RestartPolicy
	if restartPolicy == "" {
		restartPolicy = corev1.RestartPolicyAlways
	}

	vols, errs := validateVolumes(spec.Volumes, podName, p)
	var claims map[string]bool
	for _, c := range spec.ResourceClaims {
		if claims == nil {
			claims = map[string]bool{}
		}
		claims[c.Name] = true
	}
	errs = append(errs, validateContainers(spec, vols, claims, gracePeriod, restartPolicy, p.Child("containers"))...)
	if len(spec.InitContainers) > 0 {
		errs = append(errs, validateInitContainers(spec, vols, claims, gracePeriod, restartPolicy, p.Child("initContainers"))...)
	}
	if spec.Resources != nil {
		errs = append(errs, validatePodResources(spec, p.Child("resources"))...)
	}

	if spec.HostNetwork {
		cp := p.Child("containers")
		for i := range spec.Containers {
			for j, port := range spec.Containers[i].Ports {
				// Pods get hostPort defaulted to containerPort; templates
				// may leave it 0 for the pods made from them.
				hp := port.HostPort
				if hp == 0 && isPod {
					continue
				}
				if hp != 0 && hp != port.ContainerPort {
					errs = append(errs, field.Invalid(cp.Index(i).Child("ports").Index(j).Child("hostPort"), hp, "must match `containerPort` when `hostNetwork` is true"))
				}
			}
		}
	}

	switch spec.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(p.Child("restartPolicy"), spec.RestartPolicy,
			[]corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}))
	}
	switch spec.DNSPolicy {
	case "", corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone:
	default:
		errs = append(errs, field.NotSupported(p.Child("dnsPolicy"), spec.DNSPolicy,
			[]corev1.DNSPolicy{corev1.DNSClusterFirstWithHostNet, corev1.DNSClusterFirst, corev1.DNSDefault, corev1.DNSNone}))
	}
	errs = append(errs, labelsAt(spec.NodeSelector, p, "nodeSelector")...)
	if spec.ShareProcessNamespace != nil && *spec.ShareProcessNamespace && spec.HostPID {
		errs = append(errs, field.Invalid(p.Child("shareProcessNamespace"), *spec.ShareProcessNamespace, "ShareProcessNamespace and HostPID cannot both be enabled"))
	}
	if spec.DNSConfig != nil || spec.DNSPolicy == corev1.DNSNone {
		errs = append(errs, validateDNSConfig(spec.DNSConfig, spec.DNSPolicy, p.Child("dnsConfig"))...)
	}
	for i, g := range spec.ReadinessGates {
		errs = append(errs, qualifiedName(string(g.ConditionType), p.Child("readinessGates").Index(i).Child("conditionType"))...)
	}
	for i, g := range spec.SchedulingGates {
		gp := p.Child("schedulingGates").Index(i)
		errs = append(errs, qualifiedName(g.Name, gp)...)
		for j := 0; j < i; j++ {
			if spec.SchedulingGates[j].Name == g.Name {
				errs = append(errs, field.Duplicate(gp, g.Name))
				break
			}
		}
	}
	if len(spec.TopologySpreadConstraints) > 0 {
		errs = append(errs, validateTopologySpread(spec.TopologySpreadConstraints, p.Child("topologySpreadConstraints"))...)
	}
	if spec.ServiceAccountName != "" {
		// The service account name rule is the DNS subdomain one.
		errs = append(errs, dnsSubdomainAt(spec.ServiceAccountName, p, "serviceAccountName")...)
	}
	// Old clients send only the deprecated alias, which conversion copies
	// over; only two different names are a contradiction.
	//nolint:staticcheck // the alias is what is being checked
	if sa := spec.DeprecatedServiceAccount; sa != "" && spec.ServiceAccountName != "" && sa != spec.ServiceAccountName {
		errs = append(errs, field.Invalid(p.Child("deprecatedServiceAccount"), sa, fmt.Sprintf("must be the same as serviceAccountName: %q", spec.ServiceAccountName)))
	}
	if spec.NodeName != "" {
		errs = append(errs, dnsSubdomainAt(spec.NodeName, p, "nodeName")...)
	}
	if spec.ActiveDeadlineSeconds != nil {
		if v := *spec.ActiveDeadlineSeconds; v < 1 || v > math.MaxInt32 {
			errs = append(errs, field.Invalid(p.Child("activeDeadlineSeconds"), v, validation.InclusiveRangeError(1, math.MaxInt32)))
		}
	}
	if spec.Hostname != "" {
		errs = append(errs, dnsLabelAt(spec.Hostname, p, "hostname")...)
	}
	if spec.Subdomain != "" {
		errs = append(errs, dnsLabelAt(spec.Subdomain, p, "subdomain")...)
	}
	errs = append(errs, validateTolerations(spec.Tolerations, p)...)
	for i, ha := range spec.HostAliases {
		hp := p.Child("hostAliases").Index(i)
		errs = append(errs, validation.IsValidIPForLegacyField(hp.Child("ip"), ha.IP, true, nil)...)
		for j, h := range ha.Hostnames {
			errs = append(errs, dns1123Subdomain(h, hp.Child("hostnames").Index(j))...)
		}
	}
	if spec.PriorityClassName != "" {
		errs = append(errs, dnsSubdomainAt(spec.PriorityClassName, p, "priorityClassName")...)
	}
	if spec.RuntimeClassName != nil {
		errs = append(errs, dnsSubdomainAt(*spec.RuntimeClassName, p, "runtimeClassName")...)
	}
	if spec.PreemptionPolicy != nil {
		errs = append(errs, preemptionPolicy(*spec.PreemptionPolicy, p.Child("preemptionPolicy"))...)
	}
	if spec.Overhead != nil {
		errs = append(errs, validateResourceRequirements(&corev1.ResourceRequirements{Limits: spec.Overhead}, nil, containerResourceName, p, "overhead")...)
	}
	if spec.OS != nil {
		switch spec.OS.Name {
		case "":
			errs = append(errs, field.Required(p.Child("os", "name"), ""))
		case corev1.Linux, corev1.Windows:
		default:
			errs = append(errs, field.NotSupported(p.Child("os"), spec.OS.Name, []corev1.OSName{corev1.Linux, corev1.Windows}))
		}
	}
	if spec.HostnameOverride != nil {
		hp := p.Child("hostnameOverride")
		if spec.SetHostnameAsFQDN != nil && *spec.SetHostnameAsFQDN {
			errs = append(errs, field.Forbidden(hp, "may not be specified when setHostnameAsFQDN is true"))
		}
		if spec.HostNetwork {
			errs = append(errs, field.Forbidden(hp, "may not be specified when hostNetwork is true"))
		}
		if len(*spec.HostnameOverride) > 64 {
			errs = append(errs, field.TooLong(hp, "", 64))
		}
		errs = append(errs, dns1123Subdomain(*spec.HostnameOverride, hp)...)
	}
	return errs
}

func preemptionPolicy(v corev1.PreemptionPolicy, p *field.Path) field.ErrorList {
	switch v {
	case corev1.PreemptLowerPriority, corev1.PreemptNever:
		return nil
	case "":
		return field.ErrorList{field.Required(p, "")}
	}
	return field.ErrorList{field.NotSupported(p, v, []corev1.PreemptionPolicy{corev1.PreemptLowerPriority, corev1.PreemptNever})}
}

func validateContainers(spec *corev1.PodSpec, vols podVolumes, claims map[string]bool,
	gracePeriod int64, restartPolicy corev1.RestartPolicy, p *field.Path) field.ErrorList {
	if len(spec.Containers) == 0 {
		return field.ErrorList{field.Required(p, "")}
	}
	var errs field.ErrorList
	for i := range spec.Containers {
		c := &spec.Containers[i]
		cp := p.Index(i)
		errs = append(errs, validateContainerCommon(c, vols, claims, restartPolicy, cp)...)
		for j := 0; j < i; j++ {
			if spec.Containers[j].Name == c.Name {
				errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
				break
			}
		}
		if c.Lifecycle != nil {
			errs = append(errs, validateLifecycle(c.Lifecycle, gracePeriod, spec.OS, cp.Child("lifecycle"))...)
		}
		errs = append(errs, validateProbes(c, gracePeriod, cp)...)
		errs = append(errs, validateContainerRestartPolicy(c.RestartPolicy, c.RestartPolicyRules, cp)...)
	}
	return append(errs, hostPortConflicts(spec.Containers, p)...)
}

func validateInitContainers(spec *corev1.PodSpec, vols podVolumes, claims map[string]bool,
	gracePeriod int64, restartPolicy corev1.RestartPolicy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range spec.InitContainers {
		c := &spec.InitContainers[i]
		cp := p.Index(i)
		errs = append(errs, validateContainerCommon(c, vols, claims, restartPolicy, cp)...)

		sidecar := false
		if c.RestartPolicy == nil {
			if len(c.RestartPolicyRules) > 0 {
				errs = append(errs, field.Required(cp.Child("restartPolicy"), "must specify restartPolicy when restart rules are used"))
			}
		} else if *c.RestartPolicy == corev1.ContainerRestartPolicyAlways {
			sidecar = true
			if len(c.RestartPolicyRules) > 0 {
				errs = append(errs, field.Forbidden(cp.Child("restartPolicyRules"), "restartPolicyRules are not allowed for init containers with restart policy Always"))
			}
		} else {
			errs = append(errs, validateContainerRestartPolicy(c.RestartPolicy, c.RestartPolicyRules, cp)...)
		}

		// Names are unique across init and regular containers.
		dup := false
		for j := range spec.Containers {
			if spec.Containers[j].Name == c.Name {
				dup = true
				break
			}
		}
		for j := 0; j < i && !dup; j++ {
			if spec.InitContainers[j].Name == c.Name && c.Name != "" {
				dup = true
			}
		}
		if dup {
			errs = append(errs, field.Duplicate(cp.Child("name"), c.Name))
		}
		// Init containers run one at a time, so only ports within one
		// can collide.
		errs = append(errs, hostPortConflicts(spec.InitContainers[i:i+1], p)...)

		if sidecar {
			if c.Lifecycle != nil {
				errs = append(errs, validateLifecycle(c.Lifecycle, gracePeriod, spec.OS, cp.Child("lifecycle"))...)
			}
			errs = append(errs, validateProbes(c, gracePeriod, cp)...)
		} else {
			if c.Lifecycle != nil {
				errs = append(errs, field.Forbidden(cp.Child("lifecycle"), onlyAlwaysInitMsg))
			}
			if c.LivenessProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("livenessProbe"), onlyAlwaysInitMsg))
			}
			if c.ReadinessProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("readinessProbe"), onlyAlwaysInitMsg))
			}
			if c.StartupProbe != nil {
				errs = append(errs, field.Forbidden(cp.Child("startupProbe"), onlyAlwaysInitMsg))
			}
			for j, rp := range c.ResizePolicy {
				if rp.RestartPolicy == corev1.RestartContainer {
					errs = append(errs, field.Invalid(cp.Child("resizePolicy").Index(j).Child("restartPolicy"), rp.RestartPolicy,
						"must not be set to 'RestartContainer' for non-sidecar initContainers"))
				}
			}
		}
	}
	return errs
}

var (
	containerRestartPolicies = []corev1.ContainerRestartPolicy{corev1.ContainerRestartPolicyAlways, corev1.ContainerRestartPolicyNever, corev1.ContainerRestartPolicyOnFailure}
	restartRuleOperators     = []corev1.ContainerRestartRuleOnExitCodesOperator{corev1.ContainerRestartRuleOnExitCodesOpIn, corev1.ContainerRestartRuleOnExitCodesOpNotIn}
)

func validateContainerRestartPolicy(policy *corev1.ContainerRestartPolicy, rules []corev1.ContainerRestartRule, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if policy == nil {
		if len(rules) == 0 {
			return nil
		}
		errs = append(errs, field.Required(p.Child("restartPolicy"), "must specify restartPolicy when restart rules are used"))
	} else {
		switch *policy {
		case corev1.ContainerRestartPolicyAlways, corev1.ContainerRestartPolicyNever, corev1.ContainerRestartPolicyOnFailure:
		default:
			errs = append(errs, field.NotSupported(p.Child("restartPolicy"), *policy, containerRestartPolicies))
		}
	}
	if len(rules) > 20 {
		errs = append(errs, field.TooMany(p.Child("restartPolicyRules"), len(rules), 20))
	}
	for i, r := range rules {
		rp := p.Child("restartPolicyRules").Index(i)
		if r.Action != corev1.ContainerRestartRuleActionRestart {
			errs = append(errs, field.NotSupported(rp.Child("action"), r.Action, []corev1.ContainerRestartRuleAction{corev1.ContainerRestartRuleActionRestart}))
		}
		if r.ExitCodes == nil {
			errs = append(errs, field.Required(rp.Child("exitCodes"), "must be specified"))
			continue
		}
		switch r.ExitCodes.Operator {
		case corev1.ContainerRestartRuleOnExitCodesOpIn, corev1.ContainerRestartRuleOnExitCodesOpNotIn:
		default:
			errs = append(errs, field.NotSupported(rp.Child("exitCodes", "operator"), r.ExitCodes.Operator, restartRuleOperators))
		}
		if len(r.ExitCodes.Values) > 255 {
			errs = append(errs, field.TooMany(rp.Child("exitCodes", "values"), len(r.ExitCodes.Values), 255))
		}
	}
	return errs
}

func validateContainerCommon(c *corev1.Container, vols podVolumes, claims map[string]bool,
	restartPolicy corev1.RestartPolicy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), ""))
	} else {
		errs = append(errs, dnsLabelAt(c.Name, p, "name")...)
	}
	if c.Image == "" {
		errs = append(errs, field.Required(p.Child("image"), ""))
	}
	switch c.TerminationMessagePolicy {
	case "", corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	default:
		errs = append(errs, field.NotSupported(p.Child("terminationMessagePolicy"), c.TerminationMessagePolicy,
			[]corev1.TerminationMessagePolicy{corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError}))
	}
	errs = append(errs, validateContainerPorts(c.Ports, p)...)
	errs = append(errs, validateEnv(c.Env, p)...)
	if len(c.EnvFrom) > 0 {
		errs = append(errs, validateEnvFrom(c.EnvFrom, p.Child("envFrom"))...)
	}
	if len(c.VolumeMounts) > 0 || len(c.VolumeDevices) > 0 {
		errs = append(errs, validateVolumeMounts(c, vols, p)...)
	}
	if !pullPolicyOK(c.ImagePullPolicy) {
		errs = append(errs, pullPolicy(c.ImagePullPolicy, p.Child("imagePullPolicy"))...)
	}
	errs = append(errs, validateResourceRequirements(&c.Resources, claims, containerResourceName, p, "resources")...)
	if len(c.ResizePolicy) > 0 {
		errs = append(errs, validateResizePolicy(c.ResizePolicy, restartPolicy, p.Child("resizePolicy"))...)
	}
	if c.SecurityContext != nil {
		errs = append(errs, validateSecurityContext(c.SecurityContext, func() *field.Path { return p.Child("securityContext") })...)
	}
	return errs
}

func pullPolicyOK(v corev1.PullPolicy) bool {
	return v == "" || v == corev1.PullAlways || v == corev1.PullIfNotPresent || v == corev1.PullNever
}

func pullPolicy(v corev1.PullPolicy, p *field.Path) field.ErrorList {
	if pullPolicyOK(v) {
		return nil
	}
	return field.ErrorList{field.NotSupported(p, v, []corev1.PullPolicy{corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever})}
}

func validateResizePolicy(list []corev1.ContainerResizePolicy, restartPolicy corev1.RestartPolicy, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	seen := map[corev1.ResourceName]bool{}
	for i, rp := range list {
		if seen[rp.ResourceName] {
			errs = append(errs, field.Duplicate(p.Index(i), rp.ResourceName))
		}
		seen[rp.ResourceName] = true
		switch rp.ResourceName {
		case corev1.ResourceCPU, corev1.ResourceMemory:
		case "":
			errs = append(errs, field.Required(p, ""))
		default:
			errs = append(errs, field.NotSupported(p, rp.ResourceName, []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory}))
		}
		switch rp.RestartPolicy {
		case corev1.NotRequired, corev1.RestartContainer:
		case "":
			errs = append(errs, field.Required(p, ""))
		default:
			errs = append(errs, field.NotSupported(p, rp.RestartPolicy, []corev1.ResourceResizeRestartPolicy{corev1.NotRequired, corev1.RestartContainer}))
		}
		if restartPolicy == corev1.RestartPolicyNever && rp.RestartPolicy != corev1.NotRequired {
			errs = append(errs, field.Invalid(p, rp.RestartPolicy, "must be 'NotRequired' when pod `restartPolicy` is 'Never'"))
		}
	}
	return errs
}

// validateSecurityContext covers the container settings whose values are
// enumerations or ranges; the policy-level combinations are left to
// admission.
func validateSecurityContext(sc *corev1.SecurityContext, p pathFn) field.ErrorList {
	var errs field.ErrorList
	if sc.RunAsUser != nil {
		for _, msg := range validation.IsValidUserID(*sc.RunAsUser) {
			errs = append(errs, field.Invalid(p().Child("runAsUser"), *sc.RunAsUser, msg))
		}
	}
	if sc.RunAsGroup != nil {
		for _, msg := range validation.IsValidGroupID(*sc.RunAsGroup) {
			errs = append(errs, field.Invalid(p().Child("runAsGroup"), *sc.RunAsGroup, msg))
		}
	}
	if sc.ProcMount != nil {
		switch *sc.ProcMount {
		case corev1.DefaultProcMount, corev1.UnmaskedProcMount:
		default:
			errs = append(errs, field.NotSupported(p().Child("procMount"), *sc.ProcMount, []corev1.ProcMountType{corev1.DefaultProcMount, corev1.UnmaskedProcMount}))
		}
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		if sc.Privileged != nil && *sc.Privileged {
			errs = append(errs, field.Invalid(p(), sc, "cannot set `allowPrivilegeEscalation` to false and `privileged` to true"))
		}
		if sc.Capabilities != nil {
			for _, cap := range sc.Capabilities.Add {
				if cap == "SYS_ADMIN" || cap == "CAP_SYS_ADMIN" {
					errs = append(errs, field.Invalid(p(), sc, "cannot set `allowPrivilegeEscalation` to false and `capabilities.Add` CAP_SYS_ADMIN"))
				}
			}
		}
	}
	return errs
}

// validateContainerPorts takes the container's path; port paths are built
// only for errors.
func validateContainerPorts(ports []corev1.ContainerPort, cp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range ports {
		port := &ports[i]
		ip := func() *field.Path { return cp.Child("ports").Index(i) }
		if port.Name != "" {
			if msgs := portNameMsgs(port.Name); len(msgs) != 0 {
				errs = append(errs, nameMessages(msgs, port.Name, ip().Child("name"))...)
			} else {
				for j := 0; j < i; j++ {
					if ports[j].Name == port.Name {
						errs = append(errs, field.Duplicate(ip().Child("name"), port.Name))
						break
					}
				}
			}
		}
		if port.ContainerPort == 0 {
			errs = append(errs, field.Required(ip().Child("containerPort"), ""))
		} else if port.ContainerPort < 0 || port.ContainerPort > 65535 {
			for _, msg := range validation.IsValidPortNum(int(port.ContainerPort)) {
				errs = append(errs, field.Invalid(ip().Child("containerPort"), port.ContainerPort, msg))
			}
		}
		if port.HostPort < 0 || port.HostPort > 65535 {
			for _, msg := range validation.IsValidPortNum(int(port.HostPort)) {
				errs = append(errs, field.Invalid(ip().Child("hostPort"), port.HostPort, msg))
			}
		}
		if port.Protocol != "" && port.Protocol != corev1.ProtocolTCP {
			errs = append(errs, protocol(port.Protocol, ip().Child("protocol"))...)
		}
	}
	return errs
}

// hostPortConflicts finds two ports claiming one host port, protocol and
// address.
func hostPortConflicts(cs []corev1.Container, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	var seen map[string]bool
	for ci := range cs {
		for pi, port := range cs[ci].Ports {
			if port.HostPort == 0 {
				continue
			}
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			key := fmt.Sprintf("%s/%s/%d", proto, port.HostIP, port.HostPort)
			if seen == nil {
				seen = map[string]bool{}
			}
			if seen[key] {
				errs = append(errs, field.Duplicate(p.Index(ci).Child("ports").Index(pi).Child("hostPort"), key))
			}
			seen[key] = true
		}
	}
	return errs
}

var (
	envFieldPaths = []string{
		"metadata.name", "metadata.namespace", "metadata.uid",
		"spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs",
	}
	volumeFieldPaths   = []string{"metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid"}
	resourceFieldPaths = []string{
		"limits.cpu", "limits.ephemeral-storage", "limits.memory",
		"requests.cpu", "requests.ephemeral-storage", "requests.memory",
	}
)

// validateEnv takes the container's path; see validateContainerPorts.
func validateEnv(vars []corev1.EnvVar, cp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i := range vars {
		ev := &vars[i]
		ip := func() *field.Path { return cp.Child("env").Index(i) }
		if ev.Name == "" {
			errs = append(errs, field.Required(ip().Child("name"), ""))
		} else if msgs := validation.IsRelaxedEnvVarName(ev.Name); len(msgs) > 0 {
			errs = append(errs, nameMessages(msgs, ev.Name, ip().Child("name"))...)
		}
		if ev.ValueFrom != nil {
			errs = append(errs, validateEnvVarValueFrom(ev, func() *field.Path { return ip().Child("valueFrom") })...)
		}
	}
	return errs
}

func validateEnvVarValueFrom(ev *corev1.EnvVar, p pathFn) field.ErrorList {
	var errs field.ErrorList
	vf := ev.ValueFrom
	n := 0
	if vf.FieldRef != nil {
		n++
		errs = append(errs, validateObjectFieldSelector(vf.FieldRef, envFieldPaths, func() *field.Path { return p().Child("fieldRef") })...)
	}
	if vf.ResourceFieldRef != nil {
		n++
		errs = append(errs, validateResourceFieldSelector(vf.ResourceFieldRef, false, p().Child("resourceFieldRef"))...)
	}
	if vf.ConfigMapKeyRef != nil {
		n++
		errs = append(errs, keySelector(vf.ConfigMapKeyRef.Name, vf.ConfigMapKeyRef.Key, func() *field.Path { return p().Child("configMapKeyRef") })...)
	}
	if vf.SecretKeyRef != nil {
		n++
		errs = append(errs, keySelector(vf.SecretKeyRef.Name, vf.SecretKeyRef.Key, func() *field.Path { return p().Child("secretKeyRef") })...)
	}
	if vf.FileKeyRef != nil {
		n++
		errs = append(errs, validateFileKeySelector(vf.FileKeyRef, p().Child("fileKeyRef"))...)
	}
	switch {
	case n == 0:
		errs = append(errs, field.Invalid(p(), "", "must specify one of: `fieldRef`, `resourceFieldRef`, `configMapKeyRef`, `secretKeyRef` or `fileKeyRef`"))
	case ev.Value != "":
		errs = append(errs, field.Invalid(p(), "", "may not be specified when `value` is not empty"))
	case n > 1:
		errs = append(errs, field.Invalid(p(), "", "may not have more than one field specified at a time"))
	}
	return errs
}

func keySelector(name, key string, p pathFn) field.ErrorList {
	var errs field.ErrorList
	if !fastDNSSubdomain(name) {
		errs = nameMessages(apivalidation.NameIsDNSSubdomain(name, false), name, p().Child("name"))
	}
	switch {
	case key == "":
		errs = append(errs, field.Required(p().Child("key"), ""))
	case !fastConfigKey(key):
		errs = append(errs, nameMessages(validation.IsConfigMapKey(key), key, p().Child("key"))...)
	}
	return errs
}

func validateFileKeySelector(s *corev1.FileKeySelector, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if s.Key == "" {
		errs = append(errs, field.Required(p.Child("key"), ""))
	} else {
		errs = append(errs, nameMessages(validation.IsRelaxedEnvVarName(s.Key), s.Key, p.Child("key"))...)
	}
	if s.VolumeName == "" {
		errs = append(errs, field.Required(p.Child("volumeName"), ""))
	} else {
		errs = append(errs, dns1123Label(s.VolumeName, p.Child("volumeName"))...)
	}
	if s.Path == "" {
		errs = append(errs, field.Required(p.Child("path"), ""))
	} else {
		errs = append(errs, noBacksteps(s.Path, p.Child("path"))...)
	}
	return errs
}

func validateObjectFieldSelector(fs *corev1.ObjectFieldSelector, allowed []string, p pathFn) field.ErrorList {
	if fs.FieldPath == "" {
		return field.ErrorList{field.Required(p().Child("fieldPath"), "")}
	}
	fp := fs.FieldPath
	convErr := func(msg string) field.ErrorList {
		return field.ErrorList{field.Invalid(p().Child("fieldPath"), fp, "error converting fieldPath: "+msg)}
	}
	// An empty apiVersion is defaulted to v1.
	if fs.APIVersion != "" && fs.APIVersion != "v1" {
		return convErr("unsupported pod version: " + fs.APIVersion)
	}
	if strings.HasSuffix(fp, "']") {
		if base, sub, ok := strings.Cut(strings.TrimSuffix(fp, "']"), "['"); ok && base != "" {
			switch base {
			case "metadata.annotations":
				sub = strings.ToLower(sub)
				fallthrough
			case "metadata.labels":
				if fastLabelKey(sub) {
					return nil
				}
				return qualifiedName(sub, p())
			}
			return convErr("field label does not support subscript: " + fp)
		}
	}
	switch fp {
	case "spec.host":
		fp = "spec.nodeName"
	case "metadata.annotations", "metadata.labels", "metadata.name", "metadata.namespace", "metadata.uid",
		"spec.nodeName", "spec.restartPolicy", "spec.serviceAccountName", "spec.schedulerName",
		"status.phase", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs":
	default:
		return convErr("field label not supported: " + fp)
	}
	for _, a := range allowed {
		if a == fp {
			return nil
		}
	}
	return field.ErrorList{field.NotSupported(p().Child("fieldPath"), fp, allowed)}
}

func validateResourceFieldSelector(fs *corev1.ResourceFieldSelector, volume bool, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	switch {
	case volume && fs.ContainerName == "":
		errs = append(errs, field.Required(p.Child("containerName"), ""))
	case fs.Resource == "":
		errs = append(errs, field.Required(p.Child("resource"), ""))
	default:
		known := strings.HasPrefix(fs.Resource, "requests.hugepages-") || strings.HasPrefix(fs.Resource, "limits.hugepages-")
		for _, r := range resourceFieldPaths {
			known = known || r == fs.Resource
		}
		if !known {
			errs = append(errs, field.NotSupported(p.Child("resource"), fs.Resource, resourceFieldPaths))
		}
	}
	return append(errs, resourceDivisor(fs.Resource, fs.Divisor, p)...)
}

// resourceDivisor: the divisor must be a unit of the resource exposed.
func resourceDivisor(res string, d resource.Quantity, p *field.Path) field.ErrorList {
	if d.IsZero() {
		return nil
	}
	const sizes = "1, 1k, 1M, 1G, 1T, 1P, 1E, 1Ki, 1Mi, 1Gi, 1Ti, 1Pi, 1Ei"
	var valid, kind string
	switch {
	case res == "limits.cpu" || res == "requests.cpu":
		valid, kind = "1m, 1", "cpu"
	case res == "limits.memory" || res == "requests.memory":
		valid, kind = sizes, "memory"
	case res == "limits.ephemeral-storage" || res == "requests.ephemeral-storage":
		valid, kind = sizes, "local ephemeral storage"
	case strings.HasPrefix(res, "requests.hugepages-") || strings.HasPrefix(res, "limits.hugepages-"):
		valid, kind = sizes, "hugepages"
	default:
		return nil
	}
	for _, v := range strings.Split(valid, ", ") {
		if d.String() == v {
			return nil
		}
	}
	if kind == "cpu" {
		valid = "1m and 1"
	}
	return field.ErrorList{field.Invalid(p.Child("divisor"), res, fmt.Sprintf("only divisor's values %s are supported with the %s resource", valid, kind))}
}

func validateEnvFrom(list []corev1.EnvFromSource, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, ev := range list {
		ip := p.Index(i)
		if ev.Prefix != "" {
			errs = append(errs, nameMessages(validation.IsRelaxedEnvVarName(ev.Prefix), ev.Prefix, ip.Child("prefix"))...)
		}
		n := 0
		if ev.ConfigMapRef != nil {
			n++
			errs = append(errs, requiredName(ev.ConfigMapRef.Name, ip.Child("configMapRef", "name"))...)
		}
		if ev.SecretRef != nil {
			n++
			errs = append(errs, requiredName(ev.SecretRef.Name, ip.Child("secretRef", "name"))...)
		}
		if n == 0 {
			errs = append(errs, field.Invalid(p, "", "must specify one of: `configMapRef` or `secretRef`"))
		} else if n > 1 {
			errs = append(errs, field.Invalid(p, "", "may not have more than one field specified at a time"))
		}
	}
	return errs
}

// requiredName: an object reference by name, which must be one.
func requiredName(name string, p *field.Path) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "")}
	}
	return nameMessages(apivalidation.NameIsDNSSubdomain(name, true), name, p)
}

func validateVolumeMounts(c *corev1.Container, vols podVolumes, cp *field.Path) field.ErrorList {
	var errs field.ErrorList
	mp := func() *field.Path { return cp.Child("volumeMounts") }
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		ip := func() *field.Path { return mp().Index(i) }
		if m.Name == "" {
			errs = append(errs, field.Required(ip().Child("name"), ""))
		}
		if vols.lookup(m.Name) == nil {
			errs = append(errs, field.NotFound(ip().Child("name"), m.Name))
		}
		if m.MountPath == "" {
			errs = append(errs, field.Required(ip().Child("mountPath"), ""))
		}
		for j := 0; j < i; j++ {
			if c.VolumeMounts[j].MountPath == m.MountPath {
				errs = append(errs, field.Invalid(ip().Child("mountPath"), m.MountPath, "must be unique"))
				break
			}
		}
		for _, d := range c.VolumeDevices {
			if d.Name == m.Name {
				errs = append(errs, field.Invalid(ip().Child("name"), m.Name, "must not already exist in volumeDevices"))
			}
			if d.DevicePath == m.MountPath {
				errs = append(errs, field.Invalid(ip().Child("mountPath"), m.MountPath, "must not already exist as a path in volumeDevices"))
			}
		}
		// Upstream reports these two against the list, not the item.
		if m.SubPath != "" {
			errs = append(errs, localDescendingPath(m.SubPath, mp().Child("subPath"))...)
		}
		if m.SubPathExpr != "" {
			if m.SubPath != "" {
				errs = append(errs, field.Invalid(ip().Child("subPathExpr"), m.SubPathExpr, "subPathExpr and subPath are mutually exclusive"))
			}
			errs = append(errs, localDescendingPath(m.SubPathExpr, mp().Child("subPathExpr"))...)
		}
		if m.MountPropagation != nil {
			pp := mp().Child("mountPropagation")
			switch *m.MountPropagation {
			case corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone:
			default:
				errs = append(errs, field.NotSupported(pp, *m.MountPropagation, []corev1.MountPropagationMode{
					corev1.MountPropagationBidirectional, corev1.MountPropagationHostToContainer, corev1.MountPropagationNone}))
			}
			privileged := c.SecurityContext != nil && c.SecurityContext.Privileged != nil && *c.SecurityContext.Privileged
			if *m.MountPropagation == corev1.MountPropagationBidirectional && !privileged {
				errs = append(errs, field.Forbidden(pp, "Bidirectional mount propagation is available only to privileged containers"))
			}
		}
		if m.RecursiveReadOnly != nil {
			rp := mp().Child("recursiveReadOnly")
			switch *m.RecursiveReadOnly {
			case corev1.RecursiveReadOnlyDisabled:
			case corev1.RecursiveReadOnlyEnabled, corev1.RecursiveReadOnlyIfPossible:
				if !m.ReadOnly {
					errs = append(errs, field.Forbidden(rp, "may only be specified when readOnly is true"))
				}
				if m.MountPropagation != nil && *m.MountPropagation != corev1.MountPropagationNone {
					errs = append(errs, field.Forbidden(rp, "may only be specified when mountPropagation is None or not specified"))
				}
			default:
				errs = append(errs, field.NotSupported(rp, *m.RecursiveReadOnly, []corev1.RecursiveReadOnlyMode{
					corev1.RecursiveReadOnlyDisabled, corev1.RecursiveReadOnlyEnabled, corev1.RecursiveReadOnlyIfPossible}))
			}
		}
	}
	dp := cp.Child("volumeDevices")
	for i, d := range c.VolumeDevices {
		ip := dp.Index(i)
		if d.Name == "" {
			errs = append(errs, field.Required(ip.Child("name"), ""))
		}
		for j := 0; j < i; j++ {
			if c.VolumeDevices[j].Name == d.Name {
				errs = append(errs, field.Invalid(ip.Child("name"), d.Name, "must be unique"))
			}
			if c.VolumeDevices[j].DevicePath == d.DevicePath {
				errs = append(errs, field.Invalid(ip.Child("devicePath"), d.DevicePath, "must be unique"))
			}
		}
		if d.DevicePath == "" {
			errs = append(errs, field.Required(ip.Child("devicePath"), ""))
		}
		src := vols.lookup(d.Name)
		if src == nil {
			errs = append(errs, field.NotFound(ip.Child("name"), d.Name))
		} else if src.PersistentVolumeClaim == nil && src.Ephemeral == nil {
			errs = append(errs, field.Invalid(ip.Child("name"), d.Name, "can only use volume source type of PersistentVolumeClaim or Ephemeral for block mode"))
		}
	}
	return errs
}

func localDescendingPath(target string, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if path.IsAbs(target) {
		errs = append(errs, field.Invalid(p, target, "must be a relative path"))
	}
	return append(errs, noBacksteps(target, p)...)
}

func noBacksteps(target string, p *field.Path) field.ErrorList {
	for _, part := range strings.Split(filepath.ToSlash(target), "/") {
		if part == ".." {
			return field.ErrorList{field.Invalid(p, target, "must not contain '..'")}
		}
	}
	return nil
}

func localNonReservedPath(target string, p *field.Path) field.ErrorList {
	errs := localDescendingPath(target, p)
	if strings.HasPrefix(target, "..") && !strings.HasPrefix(target, "../") {
		errs = append(errs, field.Invalid(p, target, "must not start with '..'"))
	}
	return errs
}

// validateResourceRequirements: known resource names, sane quantities, and
// requests within limits (equal to them where overcommit is not allowed).
// The requirements' path is parent.name.
func validateResourceRequirements(r *corev1.ResourceRequirements, claims map[string]bool,
	nameFn func(corev1.ResourceName, *field.Path) field.ErrorList, parent *field.Path, name string) field.ErrorList {
	if len(r.Limits) == 0 && len(r.Requests) == 0 && len(r.Claims) == 0 {
		return nil
	}
	var errs field.ErrorList
	p := func() *field.Path { return at(parent, name) }
	// Names and values first: quick for the usual cpu and memory.
	var keys [8]corev1.ResourceName
	check := func(list corev1.ResourceList, kind string) {
		for _, n := range sortedKeysInto(keys[:0], list) {
			q := list[n]
			if n != corev1.ResourceCPU && n != corev1.ResourceMemory {
				errs = append(errs, nameFn(n, p().Child(kind).Key(string(n)))...)
			}
			if q.Sign() < 0 || isIntegerResource(n) && q.MilliValue()%1000 != 0 {
				errs = append(errs, quantityValue(n, q, p().Child(kind).Key(string(n)))...)
			}
			if isHugePages(n) {
				errs = append(errs, hugePageValue(n, q, p().Child(kind).Key(string(n)))...)
			}
		}
	}
	check(r.Limits, "limits")
	check(r.Requests, "requests")
	cpuOrMem, huge := false, false
	for n := range r.Limits {
		cpuOrMem = cpuOrMem || n == corev1.ResourceCPU || n == corev1.ResourceMemory
		huge = huge || isHugePages(n)
	}
	var buf [8]corev1.ResourceName
	for _, n := range sortedKeysInto(buf[:0], r.Requests) {
		q := r.Requests[n]
		cpuOrMem = cpuOrMem || n == corev1.ResourceCPU || n == corev1.ResourceMemory
		huge = huge || isHugePages(n)
		if lim, ok := r.Limits[n]; ok {
			if q.Cmp(lim) != 0 && !overcommitAllowed(n) {
				errs = append(errs, field.Invalid(p().Child("requests"), q.String(), fmt.Sprintf("must be equal to %s limit of %s", n, lim.String())))
			} else if q.Cmp(lim) > 0 {
				errs = append(errs, field.Invalid(p().Child("requests"), q.String(), fmt.Sprintf("must be less than or equal to %s limit of %s", n, lim.String())))
			}
		} else if !overcommitAllowed(n) {
			errs = append(errs, field.Required(p().Child("limits"), "Limit must be set for non overcommitable resources"))
		}
	}
	if huge && !cpuOrMem {
		errs = append(errs, field.Forbidden(p(), "HugePages require cpu or memory"))
	}
	seen := map[string]bool{}
	for i, c := range r.Claims {
		cp := p().Child("claims").Index(i)
		if c.Name == "" {
			errs = append(errs, field.Required(cp, ""))
			continue
		}
		key := c.Name
		if c.Request != "" {
			errs = append(errs, dns1123Label(c.Request, cp.Child("request"))...)
			key += "/" + c.Request
		}
		if seen[key] {
			errs = append(errs, field.Duplicate(cp, key))
		}
		seen[key] = true
		if !claims[c.Name] {
			e := field.NotFound(cp, c.Name)
			e.Detail = "must be one of the names in pod.spec.resourceClaims"
			if len(claims) == 0 {
				e.Detail += " which is empty"
			} else {
				e.Detail += ": " + strings.Join(sortedStringKeys(claims), ", ")
			}
			errs = append(errs, e)
		}
	}
	return errs
}

func hugePageValue(name corev1.ResourceName, q resource.Quantity, p *field.Path) field.ErrorList {
	size, err := resource.ParseQuantity(strings.TrimPrefix(string(name), hugePagesPrefix))
	if err == nil && size.Sign() > 0 && size.MilliValue()%1000 == 0 && q.Value()%size.Value() == 0 {
		return nil
	}
	return field.ErrorList{field.Invalid(p, q.String(), fmt.Sprintf("%s is not positive integer multiple of %s", q.String(), name))}
}

// validatePodResources: pod-level resources cover cpu, memory and huge
// pages, and must leave room for what the containers ask.
func validatePodResources(spec *corev1.PodSpec, p *field.Path) field.ErrorList {
	if spec.OS != nil && spec.OS.Name == corev1.Windows {
		return field.ErrorList{field.Forbidden(p, "may not be set for a windows pod")}
	}
	var errs field.ErrorList
	if spec.Resources.Claims != nil {
		errs = append(errs, field.Forbidden(p.Child("claims"), "claims may not be set for Resources at pod-level"))
	}
	podName := func(n corev1.ResourceName, fp *field.Path) field.ErrorList {
		if errs := resourceName(n, fp); len(errs) > 0 {
			return errs
		}
		if n != corev1.ResourceCPU && n != corev1.ResourceMemory && !isHugePages(n) {
			return field.ErrorList{field.NotSupported(fp, n, []corev1.ResourceName{corev1.ResourceCPU, "hugepages-", corev1.ResourceMemory})}
		}
		return nil
	}
	errs = append(errs, validateResourceRequirements(&corev1.ResourceRequirements{Limits: spec.Resources.Limits, Requests: spec.Resources.Requests}, nil, podName, p, "")...)
	// Container requests add up (init containers count at their peak).
	sum := corev1.ResourceList{}
	for _, c := range spec.Containers {
		for n, q := range c.Resources.Requests {
			t := sum[n]
			t.Add(q)
			sum[n] = t
		}
	}
	for _, c := range spec.InitContainers {
		for n, q := range c.Resources.Requests {
			if t := sum[n]; q.Cmp(t) > 0 {
				sum[n] = q.DeepCopy()
			}
		}
	}
	for _, n := range sortedKeys(sum) {
		if pr, ok := spec.Resources.Requests[n]; ok {
			if t := sum[n]; t.Cmp(pr) <= 0 {
				continue
			}
			t := sum[n]
			errs = append(errs, field.Invalid(p.Child("requests").Key(string(n)), pr.String(), fmt.Sprintf("must be greater than or equal to aggregate container requests of %s", t.String())))
		}
	}
	for i, c := range spec.Containers {
		for _, n := range sortedKeys(c.Resources.Limits) {
			if pl, ok := spec.Resources.Limits[n]; ok {
				if cl := c.Resources.Limits[n]; cl.Cmp(pl) > 0 {
					errs = append(errs, field.Invalid(p.Child("containers").Index(i).Key(string(n)).Child("limits"), cl.String(), fmt.Sprintf("must be less than or equal to pod limits of %s", pl.String())))
				}
			}
		}
	}
	return errs
}

func validateProbes(c *corev1.Container, gracePeriod int64, cp *field.Path) field.ErrorList {
	var errs field.ErrorList
	if pr := c.LivenessProbe; pr != nil {
		errs = append(errs, validateProbe(pr, gracePeriod, cp, "livenessProbe")...)
		if pr.SuccessThreshold != 0 && pr.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(cp.Child("livenessProbe", "successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
	}
	if pr := c.ReadinessProbe; pr != nil {
		errs = append(errs, validateProbe(pr, gracePeriod, cp, "readinessProbe")...)
		if pr.TerminationGracePeriodSeconds != nil {
			errs = append(errs, field.Invalid(cp.Child("readinessProbe", "terminationGracePeriodSeconds"), pr.TerminationGracePeriodSeconds, "must not be set for readinessProbes"))
		}
	}
	if pr := c.StartupProbe; pr != nil {
		errs = append(errs, validateProbe(pr, gracePeriod, cp, "startupProbe")...)
		if pr.SuccessThreshold != 0 && pr.SuccessThreshold != 1 {
			errs = append(errs, field.Invalid(cp.Child("startupProbe", "successThreshold"), pr.SuccessThreshold, "must be 1"))
		}
	}
	return errs
}

// validateProbe: zero thresholds and periods are the unset values that
// defaulting replaces, so only negatives are errors. The probe is at
// parent.name.
func validateProbe(pr *corev1.Probe, gracePeriod int64, parent *field.Path, name string) field.ErrorList {
	h := &pr.ProbeHandler
	p := func() *field.Path { return parent.Child(name) }
	errs := validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, h.GRPC, nil, gracePeriod, p)
	for _, f := range [...]struct {
		name string
		v    int32
	}{{"initialDelaySeconds", pr.InitialDelaySeconds}, {"timeoutSeconds", pr.TimeoutSeconds}, {"periodSeconds", pr.PeriodSeconds},
		{"successThreshold", pr.SuccessThreshold}, {"failureThreshold", pr.FailureThreshold}} {
		if f.v < 0 {
			errs = append(errs, field.Invalid(p().Child(f.name), int64(f.v), isNegativeErrorMsg))
		}
	}
	if pr.TerminationGracePeriodSeconds != nil && *pr.TerminationGracePeriodSeconds <= 0 {
		errs = append(errs, field.Invalid(p().Child("terminationGracePeriodSeconds"), *pr.TerminationGracePeriodSeconds, "must be greater than 0"))
	}
	return errs
}

// validateHandler: exactly one action, each well formed.
func validateHandler(exec *corev1.ExecAction, httpGet *corev1.HTTPGetAction, tcp *corev1.TCPSocketAction,
	grpc *corev1.GRPCAction, sleep *corev1.SleepAction, gracePeriod int64, p pathFn) field.ErrorList {
	var errs field.ErrorList
	n := 0
	// first reports whether this action is the one to check; any further
	// one is an error.
	first := func(set bool, name string) bool {
		if !set {
			return false
		}
		if n > 0 {
			errs = append(errs, field.Forbidden(p().Child(name), moreThanOneHandler))
			return false
		}
		n++
		return true
	}
	if first(exec != nil, "exec") && len(exec.Command) == 0 {
		errs = append(errs, field.Required(p().Child("exec", "command"), ""))
	}
	if first(httpGet != nil, "httpGet") {
		errs = append(errs, validateHTTPGet(httpGet, p)...)
	}
	if first(tcp != nil, "tcpSocket") && !portOK(tcp.Port) {
		errs = append(errs, portNumOrName(tcp.Port, p().Child("tcpSocket", "port"))...)
	}
	if first(grpc != nil, "grpc") && (grpc.Port < 1 || grpc.Port > 65535) {
		errs = append(errs, portNumOrName(intstr.FromInt32(grpc.Port), p().Child("grpc", "port"))...)
	}
	if first(sleep != nil, "sleep") && (sleep.Seconds < 0 || sleep.Seconds > gracePeriod) {
		errs = append(errs, field.Invalid(p().Child("sleep"), sleep.Seconds, fmt.Sprintf("must be non-negative and less than terminationGracePeriodSeconds (%d)", gracePeriod)))
	}
	if n == 0 {
		errs = append(errs, field.Required(p(), "must specify a handler type"))
	}
	return errs
}

func validateHTTPGet(h *corev1.HTTPGetAction, p pathFn) field.ErrorList {
	var errs field.ErrorList
	if !portOK(h.Port) {
		errs = append(errs, portNumOrName(h.Port, p().Child("httpGet", "port"))...)
	}
	switch h.Scheme {
	case "", corev1.URISchemeHTTP, corev1.URISchemeHTTPS:
	default:
		errs = append(errs, field.NotSupported(p().Child("httpGet", "scheme"), h.Scheme, []corev1.URIScheme{corev1.URISchemeHTTP, corev1.URISchemeHTTPS}))
	}
	for _, hdr := range h.HTTPHeaders {
		for _, msg := range validation.IsHTTPHeaderName(hdr.Name) {
			errs = append(errs, field.Invalid(p().Child("httpGet", "httpHeaders"), hdr.Name, msg))
		}
	}
	return errs
}

func validateLifecycle(l *corev1.Lifecycle, gracePeriod int64, os *corev1.PodOS, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if h := l.PostStart; h != nil {
		errs = append(errs, validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, gracePeriod, func() *field.Path { return p.Child("postStart") })...)
	}
	if h := l.PreStop; h != nil {
		errs = append(errs, validateHandler(h.Exec, h.HTTPGet, h.TCPSocket, nil, h.Sleep, gracePeriod, func() *field.Path { return p.Child("preStop") })...)
	}
	if l.StopSignal != nil {
		sp := p.Child("stopSignal")
		switch {
		case os == nil:
			errs = append(errs, field.Forbidden(sp, "may not be set for containers with empty `spec.os.name`"))
		case os.Name == corev1.Windows && *l.StopSignal != corev1.SIGKILL && *l.StopSignal != corev1.SIGTERM:
			errs = append(errs, field.NotSupported(sp, *l.StopSignal, []corev1.Signal{corev1.SIGKILL, corev1.SIGTERM}))
		}
	}
	return errs
}

// validateTolerations takes the spec's path.
func validateTolerations(ts []corev1.Toleration, sp *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, t := range ts {
		ip := func() *field.Path { return sp.Child("tolerations").Index(i) }
		if t.Key != "" && !fastLabelKey(t.Key) {
			errs = append(errs, metavalidation.ValidateLabelName(t.Key, ip().Child("key"))...)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			errs = append(errs, field.Invalid(ip().Child("operator"), t.Operator,
				"operator must be Exists when `key` is empty, which means \"match all values and all keys\""))
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			errs = append(errs, field.Invalid(ip().Child("effect"), t.Effect, "effect must be 'NoExecute' when `tolerationSeconds` is set"))
		}
		switch t.Operator {
		case corev1.TolerationOpEqual, "":
			if !fastLabelValue(t.Value) {
				if msgs := validation.IsValidLabelValue(t.Value); len(msgs) != 0 {
					errs = append(errs, field.Invalid(ip().Child("operator"), t.Value, strings.Join(msgs, ";")))
				}
			}
		case corev1.TolerationOpExists:
			if t.Value != "" {
				errs = append(errs, field.Invalid(ip().Child("operator"), t.Value, "value must be empty when `operator` is 'Exists'"))
			}
		default:
			errs = append(errs, field.NotSupported(ip().Child("operator"), t.Operator, []corev1.TolerationOperator{corev1.TolerationOpEqual, corev1.TolerationOpExists}))
		}
		switch t.Effect {
		case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			errs = append(errs, field.NotSupported(ip().Child("effect"), t.Effect, []corev1.TaintEffect{corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute}))
		}
	}
	return errs
}

func validateDNSConfig(c *corev1.PodDNSConfig, policy corev1.DNSPolicy, p *field.Path) field.ErrorList {
	if policy == corev1.DNSNone {
		if c == nil {
			return field.ErrorList{field.Required(p, "must provide `dnsConfig` when `dnsPolicy` is None")}
		}
		if len(c.Nameservers) == 0 {
			return field.ErrorList{field.Required(p.Child("nameservers"), "must provide at least one DNS nameserver when `dnsPolicy` is None")}
		}
	}
	if c == nil {
		return nil
	}
	var errs field.ErrorList
	if len(c.Nameservers) > 3 {
		errs = append(errs, field.Invalid(p.Child("nameservers"), c.Nameservers, "must not have more than 3 nameservers"))
	}
	for i, ns := range c.Nameservers {
		errs = append(errs, validation.IsValidIPForLegacyField(p.Child("nameservers").Index(i), ns, true, nil)...)
	}
	if len(c.Searches) > 32 {
		errs = append(errs, field.Invalid(p.Child("searches"), c.Searches, "must not have more than 32 search paths"))
	}
	if len(strings.Join(c.Searches, " ")) > 2048 {
		errs = append(errs, field.Invalid(p.Child("searches"), c.Searches, "must not have more than 2048 characters (including spaces) in the search list"))
	}
	for i, s := range c.Searches {
		if s == "." {
			continue
		}
		s = strings.TrimSuffix(s, ".")
		errs = append(errs, nameMessages(validation.IsDNS1123SubdomainWithUnderscore(s), s, p.Child("searches").Index(i))...)
	}
	for i, o := range c.Options {
		if o.Name == "" {
			errs = append(errs, field.Required(p.Child("options").Index(i), "must not be empty"))
		}
	}
	return errs
}

func validateTopologySpread(cs []corev1.TopologySpreadConstraint, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, c := range cs {
		ip := p.Index(i)
		if c.MaxSkew <= 0 {
			errs = append(errs, field.Invalid(ip.Child("maxSkew"), int64(c.MaxSkew), "must be greater than zero"))
		}
		if c.TopologyKey == "" {
			errs = append(errs, field.Required(ip.Child("topologyKey"), "can not be empty"))
		}
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		default:
			errs = append(errs, field.NotSupported(ip.Child("whenUnsatisfiable"), c.WhenUnsatisfiable,
				[]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}))
		}
		for _, rest := range cs[i+1:] {
			if rest.TopologyKey == c.TopologyKey && rest.WhenUnsatisfiable == c.WhenUnsatisfiable {
				errs = append(errs, field.Duplicate(ip.Child("{topologyKey, whenUnsatisfiable}"), fmt.Sprintf("{%v, %v}", c.TopologyKey, c.WhenUnsatisfiable)))
				break
			}
		}
		if c.MinDomains != nil {
			mp := ip.Child("minDomains")
			if *c.MinDomains <= 0 {
				errs = append(errs, field.Invalid(mp, int64(*c.MinDomains), "must be greater than zero"))
			}
			if c.WhenUnsatisfiable != corev1.DoNotSchedule {
				errs = append(errs, field.Invalid(mp, c.MinDomains, fmt.Sprintf("can only use minDomains if whenUnsatisfiable=%s, not %s", corev1.DoNotSchedule, c.WhenUnsatisfiable)))
			}
		}
		for _, pol := range []struct {
			name string
			v    *corev1.NodeInclusionPolicy
		}{{"nodeAffinityPolicy", c.NodeAffinityPolicy}, {"nodeTaintsPolicy", c.NodeTaintsPolicy}} {
			if pol.v != nil && *pol.v != corev1.NodeInclusionPolicyIgnore && *pol.v != corev1.NodeInclusionPolicyHonor {
				errs = append(errs, field.NotSupported(ip.Child(pol.name), pol.v, []corev1.NodeInclusionPolicy{corev1.NodeInclusionPolicyHonor, corev1.NodeInclusionPolicyIgnore}))
			}
		}
		errs = append(errs, labelSelector(c.LabelSelector, ip.Child("labelSelector"))...)
	}
	return errs
}

// podVolumes are a pod's volumes as mounts see them: a mount of a volume
// that failed validation is an error too.
type podVolumes struct {
	list []corev1.Volume
	bad  map[int]bool // nil while every volume is valid
}

func (v podVolumes) lookup(name string) *corev1.VolumeSource {
	for i := range v.list {
		if v.list[i].Name == name && !v.bad[i] {
			return &v.list[i].VolumeSource
		}
	}
	return nil
}

// validateVolumes takes the spec's path.
func validateVolumes(vols []corev1.Volume, podName string, sp *field.Path) (podVolumes, field.ErrorList) {
	var errs field.ErrorList
	pv := podVolumes{list: vols}
	for i := range vols {
		v := &vols[i]
		ip := func() *field.Path { return sp.Child("volumes").Index(i) }
		el := validateVolumeSource(&v.VolumeSource, v.Name, podName, ip)
		if v.Name == "" {
			el = append(el, field.Required(ip().Child("name"), ""))
		} else if !fastDNSLabel(v.Name) {
			el = append(el, dns1123Label(v.Name, ip().Child("name"))...)
		}
		for j := 0; j < i; j++ {
			if vols[j].Name == v.Name && !pv.bad[j] {
				el = append(el, field.Duplicate(ip().Child("name"), v.Name))
				break
			}
		}
		if len(el) > 0 {
			if pv.bad == nil {
				pv.bad = map[int]bool{}
			}
			pv.bad[i] = true
			errs = append(errs, el...)
		}
		if v.PersistentVolumeClaim != nil && podName != "" {
			for j := range vols {
				if vols[j].Ephemeral != nil && podName+"-"+vols[j].Name == v.PersistentVolumeClaim.ClaimName {
					errs = append(errs, field.Invalid(ip().Child("persistentVolumeClaim", "claimName"), v.PersistentVolumeClaim.ClaimName,
						"must not reference a PVC that gets created for an ephemeral volume"))
					break
				}
			}
		}
	}
	return pv, errs
}

func fileModeOK(mode *int32) bool { return mode == nil || *mode >= 0 && *mode <= 0777 }

func fileMode(mode *int32, p *field.Path) field.ErrorList {
	if fileModeOK(mode) {
		return nil
	}
	return field.ErrorList{field.Invalid(p, *mode, fileModeErrorMsg)}
}

// localPathOK is the quick form of localNonReservedPath: relative, no
// ".." anywhere.
func localPathOK(target string) bool {
	return target != "" && !path.IsAbs(target) && !strings.Contains(target, "..")
}

func keyToPaths(items []corev1.KeyToPath, p pathFn) field.ErrorList {
	var errs field.ErrorList
	for i, kp := range items {
		if kp.Key != "" && localPathOK(kp.Path) && fileModeOK(kp.Mode) {
			continue
		}
		ip := p().Index(i)
		if kp.Key == "" {
			errs = append(errs, field.Required(ip.Child("key"), ""))
		}
		if kp.Path == "" {
			errs = append(errs, field.Required(ip.Child("path"), ""))
		}
		errs = append(errs, localNonReservedPath(kp.Path, ip.Child("path"))...)
		errs = append(errs, fileMode(kp.Mode, ip.Child("mode"))...)
	}
	return errs
}

var hostPathTypes = []corev1.HostPathType{corev1.HostPathUnset, corev1.HostPathBlockDev, corev1.HostPathCharDev, corev1.HostPathDirectory,
	corev1.HostPathDirectoryOrCreate, corev1.HostPathFile, corev1.HostPathFileOrCreate, corev1.HostPathSocket}

// validateVolumeSource: exactly one kind of volume. A volume with none is
// what defaulting turns into an emptyDir, so it passes as one.
func validateVolumeSource(s *corev1.VolumeSource, volName, podName string, p pathFn) field.ErrorList {
	var errs field.ErrorList
	n := 0
	// one reports whether this kind is the one to check; any further
	// kind is an error.
	one := func(set bool, name string) bool {
		if !set {
			return false
		}
		if n > 0 {
			errs = append(errs, field.Forbidden(p().Child(name), moreThanOneVolume))
			return false
		}
		n++
		return true
	}
	if one(s.EmptyDir != nil, "emptyDir") {
		if s.EmptyDir.SizeLimit != nil && s.EmptyDir.SizeLimit.Sign() < 0 {
			errs = append(errs, field.Forbidden(p().Child("emptyDir", "sizeLimit"), "SizeLimit field must be a valid resource quantity"))
		}
		if m := s.EmptyDir.Mode; m != nil && (*m > 01777 || *m < 0) {
			errs = append(errs, field.Invalid(p().Child("emptyDir", "mode"), *m, emptyDirModeErrorMsg))
		}
	}
	if one(s.HostPath != nil, "hostPath") {
		vp := p().Child("hostPath")
		if s.HostPath.Path == "" {
			errs = append(errs, field.Required(vp.Child("path"), ""))
		} else {
			errs = append(errs, noBacksteps(s.HostPath.Path, vp.Child("path"))...)
			if t := s.HostPath.Type; t != nil {
				switch *t {
				case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate,
					corev1.HostPathFile, corev1.HostPathSocket, corev1.HostPathCharDev, corev1.HostPathBlockDev:
				default:
					errs = append(errs, field.NotSupported(vp.Child("type"), t, hostPathTypes))
				}
			}
		}
	}
	if one(s.GitRepo != nil, "gitRepo") {
		vp := p().Child("gitRepo")
		if s.GitRepo.Repository == "" {
			errs = append(errs, field.Required(vp.Child("repository"), ""))
		}
		errs = append(errs, localDescendingPath(s.GitRepo.Directory, vp.Child("directory"))...)
	}
	one(s.GCEPersistentDisk != nil, "gcePersistentDisk")
	one(s.AWSElasticBlockStore != nil, "awsElasticBlockStore")
	if one(s.Secret != nil, "secret") {
		if s.Secret.SecretName == "" {
			errs = append(errs, field.Required(p().Child("secret", "secretName"), ""))
		}
		if !fileModeOK(s.Secret.DefaultMode) {
			errs = append(errs, fileMode(s.Secret.DefaultMode, p().Child("secret", "defaultMode"))...)
		}
		errs = append(errs, keyToPaths(s.Secret.Items, func() *field.Path { return p().Child("secret", "items") })...)
	}
	if one(s.NFS != nil, "nfs") {
		if s.NFS.Server == "" {
			errs = append(errs, field.Required(p().Child("nfs", "server"), ""))
		}
		if s.NFS.Path == "" {
			errs = append(errs, field.Required(p().Child("nfs", "path"), ""))
		}
		if !path.IsAbs(s.NFS.Path) {
			errs = append(errs, field.Invalid(p().Child("nfs", "path"), s.NFS.Path, "must be an absolute path"))
		}
	}
	one(s.ISCSI != nil, "iscsi")
	one(s.Glusterfs != nil, "glusterfs")
	if one(s.PersistentVolumeClaim != nil, "persistentVolumeClaim") && s.PersistentVolumeClaim.ClaimName == "" {
		errs = append(errs, field.Required(p().Child("persistentVolumeClaim", "claimName"), ""))
	}
	one(s.RBD != nil, "rbd")
	one(s.FlexVolume != nil, "flexVolume")
	one(s.Cinder != nil, "cinder")
	one(s.CephFS != nil, "cephFS")
	one(s.Flocker != nil, "flocker")
	// Upstream misspells this one's path.
	if one(s.DownwardAPI != nil, "downwarAPI") {
		if !fileModeOK(s.DownwardAPI.DefaultMode) {
			errs = append(errs, fileMode(s.DownwardAPI.DefaultMode, p().Child("downwardAPI", "defaultMode"))...)
		}
		for i := range s.DownwardAPI.Items {
			errs = append(errs, downwardAPIFile(&s.DownwardAPI.Items[i], func() *field.Path { return p().Child("downwardAPI") })...)
		}
	}
	one(s.FC != nil, "fc")
	one(s.AzureFile != nil, "azureFile")
	if one(s.ConfigMap != nil, "configMap") {
		if s.ConfigMap.Name == "" {
			errs = append(errs, field.Required(p().Child("configMap", "name"), ""))
		}
		if !fileModeOK(s.ConfigMap.DefaultMode) {
			errs = append(errs, fileMode(s.ConfigMap.DefaultMode, p().Child("configMap", "defaultMode"))...)
		}
		errs = append(errs, keyToPaths(s.ConfigMap.Items, func() *field.Path { return p().Child("configMap", "items") })...)
	}
	one(s.VsphereVolume != nil, "vsphereVolume")
	one(s.Quobyte != nil, "quobyte")
	one(s.AzureDisk != nil, "azureDisk")
	one(s.PhotonPersistentDisk != nil, "photonPersistentDisk")
	if one(s.Projected != nil, "projected") {
		errs = append(errs, validateProjected(s.Projected, func() *field.Path { return p().Child("projected") })...)
	}
	one(s.PortworxVolume != nil, "portworxVolume")
	one(s.ScaleIO != nil, "scaleIO")
	one(s.StorageOS != nil, "storageos")
	if one(s.CSI != nil, "csi") {
		if s.CSI.Driver == "" {
			errs = append(errs, field.Required(p().Child("csi", "driver"), ""))
		} else if len(s.CSI.Driver) > 63 {
			errs = append(errs, field.TooLong(p().Child("csi", "driver"), "", 63))
		}
		if r := s.CSI.NodePublishSecretRef; r != nil && r.Name == "" {
			errs = append(errs, field.Required(p().Child("csi", "nodePublishSecretRef", "name"), ""))
		}
	}
	if one(s.Ephemeral != nil, "ephemeral") {
		if s.Ephemeral.VolumeClaimTemplate == nil {
			errs = append(errs, field.Required(p().Child("ephemeral", "volumeClaimTemplate"), ""))
		} else {
			errs = append(errs, validatePVCSpec(&s.Ephemeral.VolumeClaimTemplate.Spec, p().Child("ephemeral", "volumeClaimTemplate", "spec"))...)
			if podName != "" && volName != "" {
				pvc := podName + "-" + volName
				for _, msg := range apivalidation.NameIsDNSSubdomain(pvc, false) {
					errs = append(errs, field.Invalid(p().Child("ephemeral", "name"), volName, fmt.Sprintf("PVC name %q: %v", pvc, msg)))
				}
			}
		}
	}
	if one(s.Image != nil, "image") {
		if s.Image.Reference == "" {
			errs = append(errs, field.Required(p().Child("image", "reference"), ""))
		}
		if !pullPolicyOK(s.Image.PullPolicy) {
			errs = append(errs, pullPolicy(s.Image.PullPolicy, p().Child("image", "pullPolicy"))...)
		}
	}
	return errs
}

// downwardAPIFile: p is the path of the item list's owner (upstream does
// not index the items).
func downwardAPIFile(f *corev1.DownwardAPIVolumeFile, p pathFn) field.ErrorList {
	var errs field.ErrorList
	if f.Path == "" {
		errs = append(errs, field.Required(p().Child("path"), ""))
	}
	if !localPathOK(f.Path) {
		errs = append(errs, localNonReservedPath(f.Path, p().Child("path"))...)
	}
	switch {
	case f.FieldRef != nil:
		errs = append(errs, validateObjectFieldSelector(f.FieldRef, volumeFieldPaths, func() *field.Path { return p().Child("fieldRef") })...)
		if f.ResourceFieldRef != nil {
			errs = append(errs, field.Invalid(p(), "resource", "fieldRef and resourceFieldRef can not be specified simultaneously"))
		}
	case f.ResourceFieldRef != nil:
		errs = append(errs, validateResourceFieldSelector(f.ResourceFieldRef, true, p().Child("resourceFieldRef"))...)
	default:
		errs = append(errs, field.Required(p(), "one of fieldRef and resourceFieldRef is required"))
	}
	if !fileModeOK(f.Mode) {
		errs = append(errs, fileMode(f.Mode, p().Child("mode"))...)
	}
	return errs
}

func validateProjected(pv *corev1.ProjectedVolumeSource, p pathFn) field.ErrorList {
	var errs field.ErrorList
	if !fileModeOK(pv.DefaultMode) {
		errs = append(errs, fileMode(pv.DefaultMode, p().Child("defaultMode"))...)
	}
	// Paths must not collide across sources; there are only a few.
	var paths []string
	claim := func(pth, bad string) {
		for _, seen := range paths {
			if seen == pth {
				errs = append(errs, field.Invalid(p(), bad, "conflicting duplicate paths"))
				break
			}
		}
		paths = append(paths, pth)
	}
	for i := range pv.Sources {
		src := &pv.Sources[i]
		sp := func() *field.Path { return p().Child("sources").Index(i) }
		n := 0
		if src.Secret != nil {
			n++
			if src.Secret.Name == "" {
				errs = append(errs, field.Required(sp().Child("secret", "name"), ""))
			}
			errs = append(errs, keyToPaths(src.Secret.Items, func() *field.Path { return sp().Child("secret", "items") })...)
			for _, kp := range src.Secret.Items {
				if kp.Path != "" {
					claim(kp.Path, src.Secret.Name)
				}
			}
		}
		if src.ConfigMap != nil {
			n++
			if src.ConfigMap.Name == "" {
				errs = append(errs, field.Required(sp().Child("configMap", "name"), ""))
			}
			errs = append(errs, keyToPaths(src.ConfigMap.Items, func() *field.Path { return sp().Child("configMap", "items") })...)
			for _, kp := range src.ConfigMap.Items {
				if kp.Path != "" {
					claim(kp.Path, src.ConfigMap.Name)
				}
			}
		}
		if src.DownwardAPI != nil {
			n++
			for j := range src.DownwardAPI.Items {
				f := &src.DownwardAPI.Items[j]
				errs = append(errs, downwardAPIFile(f, func() *field.Path { return sp().Child("downwardAPI") })...)
				if f.Path != "" {
					claim(f.Path, f.Path)
				}
			}
		}
		if t := src.ServiceAccountToken; t != nil {
			n++
			if e := t.ExpirationSeconds; e != nil {
				if *e < 10*60 {
					errs = append(errs, field.Invalid(sp().Child("serviceAccountToken", "expirationSeconds"), *e, "may not specify a duration less than 10 minutes"))
				}
				if *e > 1<<32 {
					errs = append(errs, field.Invalid(sp().Child("serviceAccountToken", "expirationSeconds"), *e, "may not specify a duration larger than 2^32 seconds"))
				}
			}
			// Upstream reports the token path against the volume.
			if t.Path == "" {
				errs = append(errs, field.Required(p().Child("path"), ""))
			} else if !localPathOK(t.Path) {
				errs = append(errs, localNonReservedPath(t.Path, p().Child("path"))...)
			}
		}
		if src.ClusterTrustBundle != nil {
			n++
		}
		if src.PodCertificate != nil {
			n++
		}
		if n > 1 {
			errs = append(errs, field.Forbidden(sp(), "may not specify more than 1 volume type per source"))
		}
	}
	return errs
}
