package podfiles

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
)

// splitSubscript splits "metadata.labels['k']" into its path and key.
func splitSubscript(fieldPath string) (path, key string, ok bool) {
	rest, found := strings.CutSuffix(fieldPath, "']")
	if !found {
		return "", "", false
	}
	path, key, found = strings.Cut(rest, "['")
	if !found || path == "" {
		return "", "", false
	}
	return path, key, true
}

// formatMap renders labels or annotations as the downward API does:
// sorted key="value" lines, the value Go-quoted so that newlines and
// quotes in it cannot forge other entries.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// metadataField resolves the metadata.* field paths, the only ones a
// downwardAPI volume may use.
func metadataField(pod *corev1.Pod, fieldPath string) (string, error) {
	if path, key, ok := splitSubscript(fieldPath); ok {
		switch path {
		case "metadata.annotations":
			if errs := validation.IsQualifiedName(strings.ToLower(key)); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Annotations[key], nil
		case "metadata.labels":
			if errs := validation.IsQualifiedName(key); len(errs) != 0 {
				return "", fmt.Errorf("invalid key subscript in %s: %s", fieldPath, strings.Join(errs, ";"))
			}
			return pod.Labels[key], nil
		}
		return "", fmt.Errorf("fieldPath %q does not support subscript", fieldPath)
	}
	switch fieldPath {
	case "metadata.annotations":
		return formatMap(pod.Annotations), nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	case "metadata.uid":
		return string(pod.UID), nil
	}
	return "", fmt.Errorf("unsupported fieldPath: %v", fieldPath)
}

// podField resolves an env var's fieldRef. Pod IPs come from the pod's
// status, so the caller passes a pod whose status carries the sandbox's
// addresses.
func podField(pod *corev1.Pod, fs *corev1.ObjectFieldSelector, node Node) (string, error) {
	if fs.APIVersion != "" && fs.APIVersion != "v1" {
		return "", fmt.Errorf("unsupported pod version: %s", fs.APIVersion)
	}
	path := fs.FieldPath
	if p, _, ok := splitSubscript(path); ok && p != "metadata.annotations" && p != "metadata.labels" {
		return "", fmt.Errorf("field label does not support subscript: %s", path)
	}
	podIPs := make([]string, 0, len(pod.Status.PodIPs))
	for _, ip := range pod.Status.PodIPs {
		podIPs = append(podIPs, ip.IP)
	}
	if len(podIPs) == 0 && pod.Status.PodIP != "" {
		podIPs = append(podIPs, pod.Status.PodIP)
	}
	switch path {
	case "spec.nodeName", "spec.host":
		return pod.Spec.NodeName, nil
	case "spec.serviceAccountName":
		return pod.Spec.ServiceAccountName, nil
	case "status.hostIP", "status.hostIPs":
		if node.IP == "" {
			return "", fmt.Errorf("the node's IP is unknown, cannot resolve %s", path)
		}
		return node.IP, nil
	case "status.podIP":
		if len(podIPs) == 0 {
			return "", nil
		}
		return podIPs[0], nil
	case "status.podIPs":
		return strings.Join(podIPs, ","), nil
	case "spec.restartPolicy", "spec.schedulerName", "status.phase":
		// Accepted by the API, yet the kubelet cannot resolve them either.
		return "", fmt.Errorf("unsupported fieldPath: %v", path)
	}
	if !strings.HasPrefix(path, "metadata.") {
		return "", fmt.Errorf("field label not supported: %s", path)
	}
	return metadataField(pod, path)
}

// findContainer looks a container up by name among the pod's regular
// and init containers, as resourceFieldRef.containerName may name either.
func findContainer(pod *corev1.Pod, name string) *corev1.Container {
	for _, list := range [][]corev1.Container{pod.Spec.Containers, pod.Spec.InitContainers} {
		for i := range list {
			if list[i].Name == name {
				return &list[i]
			}
		}
	}
	return nil
}

// defaultedLimits returns c's limits with cpu, memory and
// ephemeral-storage filled in where unset: from the pod-level limits if
// the pod has them, else from the node's allocatable, because an
// unlimited container can use up to that much.
func defaultedLimits(pod *corev1.Pod, c *corev1.Container, node Node) corev1.ResourceList {
	out := c.Resources.Limits.DeepCopy()
	if out == nil {
		out = corev1.ResourceList{}
	}
	for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory, corev1.ResourceEphemeralStorage} {
		if q, ok := out[name]; ok && !q.IsZero() {
			continue
		}
		if pod.Spec.Resources != nil {
			if q, ok := pod.Spec.Resources.Limits[name]; ok && !q.IsZero() {
				out[name] = q.DeepCopy()
				continue
			}
		}
		if q, ok := node.Allocatable[name]; ok {
			out[name] = q.DeepCopy()
		}
	}
	return out
}

// resourceValue resolves a resourceFieldRef for container c (already
// chosen by the caller). Values are rounded up, like the kubelet does, so
// that a fractional cpu never reads as 0 cores.
func resourceValue(pod *corev1.Pod, c *corev1.Container, fs *corev1.ResourceFieldSelector, node Node) (string, error) {
	divisor := fs.Divisor
	if divisor.IsZero() {
		divisor = resource.MustParse("1")
	}
	kind, name, ok := strings.Cut(fs.Resource, ".")
	var list corev1.ResourceList
	switch {
	case ok && kind == "limits":
		list = defaultedLimits(pod, c, node)
	case ok && kind == "requests":
		list = c.Resources.Requests
	default:
		return "", fmt.Errorf("unsupported container resource : %v", fs.Resource)
	}
	rn := corev1.ResourceName(name)
	q := list[rn]
	switch {
	case rn == corev1.ResourceCPU:
		return strconv.FormatInt(int64(math.Ceil(float64(q.MilliValue())/float64(divisor.MilliValue()))), 10), nil
	case rn == corev1.ResourceMemory, rn == corev1.ResourceEphemeralStorage,
		strings.HasPrefix(name, corev1.ResourceHugePagesPrefix):
		return strconv.FormatInt(int64(math.Ceil(float64(q.Value())/float64(divisor.Value()))), 10), nil
	}
	return "", fmt.Errorf("unsupported container resource : %v", fs.Resource)
}
