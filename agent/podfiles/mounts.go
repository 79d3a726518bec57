package podfiles

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Mount is one bind mount of a container.
type Mount struct {
	HostPath, ContainerPath string
	ReadOnly                bool
	// Propagation is the volumeMount's mountPropagation (nil: none).
	Propagation *corev1.MountPropagationMode
}

// Mounts resolves container c's volumeMounts against the host paths
// Prepare returned. A subPath (or a subPathExpr, expanded with env) is
// created as a directory if missing and resolved, symlinks included, to
// a path that must stay inside its volume: the result is what the
// runtime should bind. Every error is an *Error with Reason
// CreateContainerConfigError.
func Mounts(pod *corev1.Pod, c *corev1.Container, volumes map[string]string, env []EnvVar) ([]Mount, error) {
	specs := make(map[string]*corev1.Volume, len(pod.Spec.Volumes))
	for i := range pod.Spec.Volumes {
		specs[pod.Spec.Volumes[i].Name] = &pod.Spec.Volumes[i]
	}
	envMap := make(map[string]string, len(env))
	for _, e := range env {
		envMap[e.Name] = e.Value
	}
	out := make([]Mount, 0, len(c.VolumeMounts))
	for _, m := range c.VolumeMounts {
		host, ok := volumes[m.Name]
		spec := specs[m.Name]
		if !ok || spec == nil {
			return nil, configError(fmt.Errorf("cannot find volume %q to mount into container %q", m.Name, c.Name))
		}
		sub := m.SubPath
		if m.SubPathExpr != "" {
			var err error
			if sub, err = expandSubPath(m.SubPathExpr, envMap); err != nil {
				return nil, configError(err)
			}
		}
		if sub != "" {
			resolved, err := resolveSubPath(host, sub, m.Name, c.Name)
			if err != nil {
				return nil, configError(err)
			}
			host = resolved
		}
		out = append(out, Mount{
			HostPath:      host,
			ContainerPath: m.MountPath,
			ReadOnly:      m.ReadOnly || readOnlyVolume(spec),
			Propagation:   m.MountPropagation,
		})
	}
	return out, nil
}

// expandSubPath expands a subPathExpr from the container's environment;
// unlike env values, a reference to an unset or empty variable is an
// error, since it would silently share the volume's root.
func expandSubPath(expr string, env map[string]string) (string, error) {
	missing := map[string]bool{}
	out := expand(expr, func(name string) (string, bool) {
		v, ok := env[name]
		if !ok || v == "" {
			missing[name] = true
		}
		return v, true
	})
	if len(missing) > 0 {
		names := make([]string, 0, len(missing))
		for n := range missing {
			names = append(names, n)
		}
		sort.Strings(names)
		return "", fmt.Errorf("missing value for %s", strings.Join(names, ", "))
	}
	return out, nil
}

// resolveSubPath returns the real path of sub inside volume, making the
// missing directories along it. Each existing component is resolved
// before going further, so a symlink planted in the volume by a
// container cannot make the agent create or bind anything outside it.
func resolveSubPath(volume, sub, mount, container string) (string, error) {
	if filepath.IsAbs(sub) {
		return "", fmt.Errorf("error SubPath `%s` must not be an absolute path", sub)
	}
	for _, part := range strings.Split(filepath.ToSlash(sub), "/") {
		if part == ".." {
			return "", fmt.Errorf("unable to provision SubPath `%s`: must not contain '..'", sub)
		}
	}
	root, err := filepath.EvalSymlinks(volume)
	if err != nil {
		return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", mount, container, err)
	}
	info, err := os.Stat(root)
	if err != nil {
		return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", mount, container, err)
	}
	perm := info.Mode().Perm()
	escape := fmt.Errorf("subPath %q of volumeMount %q of container %q resolves outside of its volume", sub, mount, container)

	cur := root
	for _, part := range strings.Split(filepath.Clean(sub), string(filepath.Separator)) {
		if part == "" || part == "." {
			continue
		}
		next := filepath.Join(cur, part)
		if _, err := os.Lstat(next); errors.Is(err, os.ErrNotExist) {
			if err := os.Mkdir(next, perm); err != nil && !errors.Is(err, os.ErrExist) {
				return "", fmt.Errorf("failed to create subPath directory for volumeMount %q of container %q", mount, container)
			}
			// Mkdir honours the umask; the subpath gets the volume's mode
			// so every container user that could write the volume can
			// write it.
			if err := os.Chmod(next, perm); err != nil {
				return "", fmt.Errorf("failed to create subPath directory for volumeMount %q of container %q", mount, container)
			}
		} else if err != nil {
			return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", mount, container, err)
		}
		real, err := filepath.EvalSymlinks(next)
		if err != nil {
			return "", fmt.Errorf("failed to prepare subPath for volumeMount %q of container %q: %w", mount, container, err)
		}
		if !within(root, real) {
			return "", escape
		}
		cur = real
	}
	return cur, nil
}

func within(root, p string) bool {
	return p == root || strings.HasPrefix(p, root+string(filepath.Separator))
}
