package podfiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
)

// Per-plugin directories under <podDir>/volumes, named as the kubelet
// names them so that tooling that inspects a node finds familiar paths.
const (
	pluginEmptyDir    = "kubernetes.io~empty-dir"
	pluginConfigMap   = "kubernetes.io~configmap"
	pluginSecret      = "kubernetes.io~secret"
	pluginDownwardAPI = "kubernetes.io~downward-api"
	pluginProjected   = "kubernetes.io~projected"
)

const defaultFileMode os.FileMode = 0o644

// Prepare sets up every volume of pod and returns each one's host path
// by volume name. Volumes that live in the pod (emptyDir, configMap,
// secret, downwardAPI, projected) are made under podDir/volumes; hostPath
// and persistent volumes are the host paths they name.
//
// It runs on every pod sync: unchanged volumes cost a few reads, changed
// configMap, secret, downwardAPI and projected contents are swapped in
// atomically, and service account tokens are renewed once 80% of their
// lifetime has passed.
//
// A volume that cannot be set up does not stop the others: the returned
// map holds the volumes that are ready and the error joins one *Error
// (Reason FailedMount) per failed volume.
func Prepare(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, podDir string, node Node) (map[string]string, error) {
	return prepare(ctx, cs, pod, podDir, node, time.Now)
}

type preparer struct {
	cs     kubernetes.Interface
	pod    *corev1.Pod
	podDir string
	node   Node
	now    func() time.Time
	src    *sources
}

func prepare(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, podDir string, node Node, now func() time.Time) (map[string]string, error) {
	p := &preparer{cs: cs, pod: pod, podDir: podDir, node: node, now: now, src: newSources(cs, pod.Namespace)}
	paths := make(map[string]string, len(pod.Spec.Volumes))
	var errs []error
	for i := range pod.Spec.Volumes {
		v := &pod.Spec.Volumes[i]
		path, err := p.volume(ctx, v)
		if err != nil {
			errs = append(errs, mountError(v.Name, err))
			continue
		}
		paths[v.Name] = path
	}
	return paths, errors.Join(errs...)
}

func (p *preparer) dir(plugin, name string) string {
	return filepath.Join(p.podDir, "volumes", plugin, name)
}

func (p *preparer) volume(ctx context.Context, v *corev1.Volume) (string, error) {
	switch s := &v.VolumeSource; {
	case s.EmptyDir != nil:
		return p.emptyDir(v.Name, s.EmptyDir)
	case s.ConfigMap != nil:
		dir := p.dir(pluginConfigMap, v.Name)
		payload, err := p.configMapPayload(ctx, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, modeOf(s.ConfigMap.DefaultMode))
		if err != nil {
			return "", err
		}
		return dir, p.write(dir, false, payload)
	case s.Secret != nil:
		dir := p.dir(pluginSecret, v.Name)
		payload, err := p.secretPayload(ctx, s.Secret.SecretName, s.Secret.Items, s.Secret.Optional, modeOf(s.Secret.DefaultMode))
		if err != nil {
			return "", err
		}
		return dir, p.write(dir, true, payload)
	case s.DownwardAPI != nil:
		dir := p.dir(pluginDownwardAPI, v.Name)
		payload, err := p.downwardPayload(s.DownwardAPI.Items, modeOf(s.DownwardAPI.DefaultMode))
		if err != nil {
			return "", err
		}
		return dir, p.write(dir, true, payload)
	case s.Projected != nil:
		return p.projected(ctx, v.Name, s.Projected)
	case s.HostPath != nil:
		return s.HostPath.Path, checkHostPath(s.HostPath.Path, s.HostPath.Type)
	case s.PersistentVolumeClaim != nil:
		return p.claimPath(ctx, s.PersistentVolumeClaim.ClaimName, false)
	case s.Ephemeral != nil:
		return p.claimPath(ctx, p.pod.Name+"-"+v.Name, true)
	}
	return "", errors.New("volume source is not supported by this node agent " +
		"(supported: emptyDir, configMap, secret, downwardAPI, projected, hostPath, persistentVolumeClaim, ephemeral)")
}

func modeOf(m *int32) os.FileMode {
	if m == nil {
		return defaultFileMode
	}
	return os.FileMode(*m) & os.ModePerm
}

// write publishes payload in dir. Secret-bearing volumes go on tmpfs, as
// the kubelet puts them, so their contents never reach the node's disk.
func (p *preparer) write(dir string, memory bool, payload map[string]file) error {
	if memory && canMount() {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("creating volume directory: %w", err)
		}
		if err := mountTmpfs(dir, p.memoryLimit(), 0o755); err != nil {
			return err
		}
	}
	return writeAtomic(dir, payload, p.now())
}

func (p *preparer) emptyDir(name string, src *corev1.EmptyDirVolumeSource) (string, error) {
	dir := p.dir(pluginEmptyDir, name)
	_, statErr := os.Stat(dir)
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return "", fmt.Errorf("creating emptyDir: %w", err)
	}
	switch src.Medium {
	case corev1.StorageMediumDefault:
		if statErr != nil {
			// Any container user may write an emptyDir; the umask must
			// not take that away.
			if err := os.Chmod(dir, 0o777); err != nil {
				return "", fmt.Errorf("setting emptyDir mode: %w", err)
			}
		}
	case corev1.StorageMediumMemory:
		size := p.memoryLimit()
		if src.SizeLimit != nil && src.SizeLimit.Value() > 0 && (size == 0 || src.SizeLimit.Value() < size) {
			size = src.SizeLimit.Value()
		}
		if err := mountTmpfs(dir, size, 0o777); err != nil {
			return "", err
		}
	default:
		return "", fmt.Errorf("emptyDir medium %q is not supported by this node agent", src.Medium)
	}
	return dir, nil
}

// memoryLimit bounds a pod's tmpfs volumes: the pod can use no more
// memory than its containers' limits if all have one, and no more than
// the node's allocatable. 0 means unknown.
func (p *preparer) memoryLimit() int64 {
	var limit int64
	if q, ok := p.node.Allocatable[corev1.ResourceMemory]; ok {
		limit = q.Value()
	}
	var sum int64
	for _, c := range p.pod.Spec.Containers {
		q, ok := c.Resources.Limits[corev1.ResourceMemory]
		if !ok || q.IsZero() {
			return limit
		}
		sum += q.Value()
	}
	if sum > 0 && (limit == 0 || sum < limit) {
		limit = sum
	}
	return limit
}

func (p *preparer) configMapPayload(ctx context.Context, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]file, error) {
	cm, err := p.src.configMap(ctx, name)
	if err != nil {
		if !(apierrors.IsNotFound(err) && isTrue(optional)) {
			return nil, err
		}
		cm = &corev1.ConfigMap{}
	}
	payload := map[string]file{}
	if len(items) == 0 {
		for k, v := range cm.Data {
			payload[k] = file{data: []byte(v), mode: mode}
		}
		for k, v := range cm.BinaryData {
			payload[k] = file{data: v, mode: mode}
		}
		return payload, nil
	}
	for _, it := range items {
		var data []byte
		if s, ok := cm.Data[it.Key]; ok {
			data = []byte(s)
		} else if b, ok := cm.BinaryData[it.Key]; ok {
			data = b
		} else if isTrue(optional) {
			continue
		} else {
			return nil, fmt.Errorf("configmap references non-existent config key: %s", it.Key)
		}
		payload[it.Path] = file{data: data, mode: itemMode(it.Mode, mode)}
	}
	return payload, nil
}

func (p *preparer) secretPayload(ctx context.Context, name string, items []corev1.KeyToPath, optional *bool, mode os.FileMode) (map[string]file, error) {
	s, err := p.src.secret(ctx, name)
	if err != nil {
		if !(apierrors.IsNotFound(err) && isTrue(optional)) {
			return nil, err
		}
		s = &corev1.Secret{}
	}
	payload := map[string]file{}
	if len(items) == 0 {
		for k, v := range s.Data {
			payload[k] = file{data: v, mode: mode}
		}
		return payload, nil
	}
	for _, it := range items {
		data, ok := s.Data[it.Key]
		if !ok {
			if isTrue(optional) {
				continue
			}
			return nil, fmt.Errorf("references non-existent secret key: %s", it.Key)
		}
		payload[it.Path] = file{data: data, mode: itemMode(it.Mode, mode)}
	}
	return payload, nil
}

func itemMode(m *int32, def os.FileMode) os.FileMode {
	if m == nil {
		return def
	}
	return os.FileMode(*m) & os.ModePerm
}

func (p *preparer) downwardPayload(items []corev1.DownwardAPIVolumeFile, mode os.FileMode) (map[string]file, error) {
	payload := map[string]file{}
	var errs []error
	for _, it := range items {
		var val string
		var err error
		switch {
		case it.FieldRef != nil:
			val, err = metadataField(p.pod, it.FieldRef.FieldPath)
		case it.ResourceFieldRef != nil:
			c := findContainer(p.pod, it.ResourceFieldRef.ContainerName)
			if c == nil {
				err = fmt.Errorf("container %s not found", it.ResourceFieldRef.ContainerName)
			} else {
				val, err = resourceValue(p.pod, c, it.ResourceFieldRef, p.node)
			}
		}
		if err != nil {
			errs = append(errs, err)
			continue
		}
		payload[filepath.Clean(it.Path)] = file{data: []byte(val), mode: itemMode(it.Mode, mode)}
	}
	return payload, aggregate(errs)
}

func (p *preparer) projected(ctx context.Context, name string, src *corev1.ProjectedVolumeSource) (string, error) {
	dir := p.dir(pluginProjected, name)
	mode := modeOf(src.DefaultMode)
	tokens, err := p.loadTokens(name)
	if err != nil {
		return "", err
	}
	fresh := tokenStates{}
	payload := map[string]file{}
	merge := func(m map[string]file) {
		for k, v := range m {
			payload[k] = v
		}
	}
	var errs []error
	for _, s := range src.Sources {
		switch {
		case s.ConfigMap != nil:
			m, err := p.configMapPayload(ctx, s.ConfigMap.Name, s.ConfigMap.Items, s.ConfigMap.Optional, mode)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(m)
		case s.Secret != nil:
			m, err := p.secretPayload(ctx, s.Secret.Name, s.Secret.Items, s.Secret.Optional, mode)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(m)
		case s.DownwardAPI != nil:
			m, err := p.downwardPayload(s.DownwardAPI.Items, mode)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			merge(m)
		case s.ServiceAccountToken != nil:
			tok, st, err := p.token(ctx, dir, s.ServiceAccountToken, tokens)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			fresh[s.ServiceAccountToken.Path] = st
			payload[s.ServiceAccountToken.Path] = file{data: []byte(tok), mode: mode}
		case s.ClusterTrustBundle != nil:
			errs = append(errs, errors.New("clusterTrustBundle projections are not supported by this node agent"))
		case s.PodCertificate != nil:
			errs = append(errs, errors.New("podCertificate projections are not supported by this node agent"))
		}
	}
	if err := aggregate(errs); err != nil {
		return "", err
	}
	if err := p.write(dir, true, payload); err != nil {
		return "", err
	}
	// Recorded only once the tokens are in place: a state newer than the
	// volume would let an old token outlive its refresh time.
	if !tokens.equal(fresh) {
		if err := p.saveTokens(name, fresh); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// checkHostPath applies a hostPath volume's type: the *OrCreate types
// make what is missing (never the parent of a file), the others require
// the path to exist and be of that kind.
func checkHostPath(path string, typ *corev1.HostPathType) error {
	for _, part := range strings.Split(filepath.ToSlash(path), "/") {
		if part == ".." {
			return fmt.Errorf("invalid HostPath `%s`: must not contain '..'", path)
		}
	}
	t := corev1.HostPathUnset
	if typ != nil {
		t = *typ
	}
	var want, expected string
	switch t {
	case corev1.HostPathUnset:
		return nil
	case corev1.HostPathDirectoryOrCreate:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			if err := os.MkdirAll(path, 0o755); err != nil {
				return fmt.Errorf("creating hostPath %s: %w", path, err)
			}
		}
		want, expected = string(corev1.HostPathDirectory), "directory"
	case corev1.HostPathDirectory:
		want, expected = string(corev1.HostPathDirectory), "directory"
	case corev1.HostPathFileOrCreate:
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			f, err := os.OpenFile(path, os.O_CREATE, 0o644)
			if err != nil {
				return fmt.Errorf("creating hostPath %s: %w", path, err)
			}
			f.Close()
		}
		want, expected = string(corev1.HostPathFile), "file"
	case corev1.HostPathFile:
		want, expected = string(corev1.HostPathFile), "file"
	case corev1.HostPathSocket:
		want, expected = string(corev1.HostPathSocket), "socket file"
	case corev1.HostPathCharDev:
		want, expected = string(corev1.HostPathCharDev), "character device"
	case corev1.HostPathBlockDev:
		want, expected = string(corev1.HostPathBlockDev), "block device"
	default:
		return fmt.Errorf("%s is an invalid volume type", t)
	}
	got, err := fileType(path)
	if err != nil {
		return fmt.Errorf("hostPath type check failed, %s is not a %s, unable to determine its type: %w", path, expected, err)
	}
	if got != want {
		return fmt.Errorf("hostPath type check failed: %s is not a %s, it's a %s", path, expected, t)
	}
	return nil
}

// fileType names what is at path (following symlinks) with the
// HostPathType spelling.
func fileType(path string) (string, error) {
	info, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	m := info.Mode()
	switch {
	case m.IsDir():
		return string(corev1.HostPathDirectory), nil
	case m.IsRegular():
		return string(corev1.HostPathFile), nil
	case m&os.ModeSocket != 0:
		return string(corev1.HostPathSocket), nil
	case m&os.ModeDevice != 0 && m&os.ModeCharDevice != 0:
		return string(corev1.HostPathCharDev), nil
	case m&os.ModeDevice != 0:
		return string(corev1.HostPathBlockDev), nil
	}
	return "", errors.New("only recognise file, directory, socket, block device and character device")
}

// claimPath resolves a claim to the host directory of its volume. Only
// volumes that are already a path on this host (hostPath and local
// persistent volumes) can be used: the agent attaches nothing.
func (p *preparer) claimPath(ctx context.Context, claim string, ephemeral bool) (string, error) {
	ns := p.pod.Namespace
	pvc, err := p.cs.CoreV1().PersistentVolumeClaims(ns).Get(ctx, claim, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("persistentvolumeclaim %q not found", claim)
	}
	if err != nil {
		return "", fmt.Errorf("error processing PVC %s/%s: %w", ns, claim, err)
	}
	if ephemeral {
		if owner := metav1.GetControllerOf(pvc); owner == nil || owner.UID != p.pod.UID {
			return "", fmt.Errorf("PVC %s/%s was not created for pod %s/%s (pod is not owner)", ns, claim, ns, p.pod.Name)
		}
	}
	if pvc.DeletionTimestamp != nil {
		return "", fmt.Errorf("can't start pod because PVC %s/%s is being deleted", ns, claim)
	}
	if pvc.Status.Phase != corev1.ClaimBound || pvc.Spec.VolumeName == "" {
		return "", fmt.Errorf("error processing PVC %s/%s: PVC is not bound", ns, claim)
	}
	pv, err := p.cs.CoreV1().PersistentVolumes().Get(ctx, pvc.Spec.VolumeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("persistentvolume %q not found", pvc.Spec.VolumeName)
	}
	if err != nil {
		return "", fmt.Errorf("getting PV %s of PVC %s/%s: %w", pvc.Spec.VolumeName, ns, claim, err)
	}
	if pv.Spec.ClaimRef == nil || pv.Spec.ClaimRef.UID != pvc.UID {
		return "", fmt.Errorf("found PV object %q but it has invalid ClaimRef", pv.Name)
	}
	switch {
	case pv.Spec.HostPath != nil:
		return pv.Spec.HostPath.Path, checkHostPath(pv.Spec.HostPath.Path, pv.Spec.HostPath.Type)
	case pv.Spec.Local != nil:
		if _, err := os.Stat(pv.Spec.Local.Path); err != nil {
			return "", fmt.Errorf("local volume %s: %w", pv.Name, err)
		}
		return pv.Spec.Local.Path, nil
	}
	return "", fmt.Errorf("PersistentVolume %q is neither hostPath nor local, the only kinds this node agent can mount", pv.Name)
}

// readOnlyVolume reports whether a volume is read-only whatever its
// mounts say: the kubelet mounts API-projected contents read-only so a
// container cannot tamper with what the next sync compares against.
func readOnlyVolume(v *corev1.Volume) bool {
	s := &v.VolumeSource
	switch {
	case s.ConfigMap != nil, s.Secret != nil, s.DownwardAPI != nil, s.Projected != nil:
		return true
	case s.PersistentVolumeClaim != nil:
		return s.PersistentVolumeClaim.ReadOnly
	}
	return false
}

// Cleanup unmounts whatever the pod's volumes mounted under podDir and
// removes podDir. hostPath and persistent volumes live elsewhere and are
// left alone.
func Cleanup(podDir string) error {
	abs, err := filepath.Abs(podDir)
	if err != nil {
		return fmt.Errorf("cleaning up %s: %w", podDir, err)
	}
	if _, err := os.Lstat(abs); errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err := unmountUnder(abs); err != nil {
		return fmt.Errorf("cleaning up %s: %w", podDir, err)
	}
	if err := os.RemoveAll(abs); err != nil {
		return fmt.Errorf("cleaning up %s: %w", podDir, err)
	}
	return nil
}
