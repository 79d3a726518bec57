package podfiles

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"
)

// EnvVar is one variable of a container's environment.
type EnvVar struct{ Name, Value string }

// Env computes container c's environment as the kubelet does: envFrom
// sources first, then env (which overrides them, values expanded against
// the variables defined so far and the service variables), then the
// service variables not otherwise set. The result is sorted by name.
//
// status.podIP(s) are read from pod.Status: the caller passes the pod
// with its sandbox's addresses filled in. Every error is an *Error with
// Reason CreateContainerConfigError.
func Env(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, c *corev1.Container, node Node) ([]EnvVar, error) {
	env, err := containerEnv(ctx, cs, pod, c, node)
	if err != nil {
		return nil, configError(err)
	}
	return env, nil
}

func containerEnv(ctx context.Context, cs kubernetes.Interface, pod *corev1.Pod, c *corev1.Container, node Node) ([]EnvVar, error) {
	links := pod.Spec.EnableServiceLinks == nil || *pod.Spec.EnableServiceLinks
	serviceEnv, err := serviceEnvVars(ctx, cs, pod.Namespace, links)
	if err != nil {
		return nil, err
	}
	src := newSources(cs, pod.Namespace)
	vars := map[string]string{}

	for _, from := range c.EnvFrom {
		var data map[string]string
		switch {
		case from.ConfigMapRef != nil:
			cm, err := src.configMap(ctx, from.ConfigMapRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, err
			}
			data = cm.Data
		case from.SecretRef != nil:
			s, err := src.secret(ctx, from.SecretRef.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(from.SecretRef.Optional) {
					continue
				}
				return nil, err
			}
			data = make(map[string]string, len(s.Data))
			for k, v := range s.Data {
				data[k] = string(v)
			}
		}
		for k, v := range data {
			name := from.Prefix + k
			// Kubelets since relaxed env var validation accept any name a
			// process environment can carry; only those that cannot be
			// represented are dropped.
			if len(validation.IsRelaxedEnvVarName(name)) != 0 {
				continue
			}
			vars[name] = v
		}
	}

	lookup := func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		v, ok := serviceEnv[name]
		return v, ok
	}
	for _, e := range c.Env {
		val := e.Value
		switch {
		case val != "":
			val = expand(val, lookup)
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			if val, err = podField(pod, e.ValueFrom.FieldRef, node); err != nil {
				return nil, err
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			target := c
			if n := e.ValueFrom.ResourceFieldRef.ContainerName; n != "" {
				if target = findContainer(pod, n); target == nil {
					return nil, fmt.Errorf("container %s not found", n)
				}
			}
			if val, err = resourceValue(pod, target, e.ValueFrom.ResourceFieldRef, node); err != nil {
				return nil, err
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			cm, err := src.configMap(ctx, ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(ref.Optional) {
					continue
				}
				return nil, err
			}
			v, ok := cm.Data[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in ConfigMap %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = v
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			s, err := src.secret(ctx, ref.Name)
			if err != nil {
				if apierrors.IsNotFound(err) && isTrue(ref.Optional) {
					continue
				}
				return nil, err
			}
			v, ok := s.Data[ref.Key]
			if !ok {
				if isTrue(ref.Optional) {
					continue
				}
				return nil, fmt.Errorf("couldn't find key %v in Secret %v/%v", ref.Key, pod.Namespace, ref.Name)
			}
			val = string(v)
		case e.ValueFrom.FileKeyRef != nil:
			return nil, fmt.Errorf("env var %q: fileKeyRef is not supported", e.Name)
		}
		vars[e.Name] = val
	}

	out := make([]EnvVar, 0, len(vars)+len(serviceEnv))
	for k, v := range vars {
		out = append(out, EnvVar{Name: k, Value: v})
	}
	for k, v := range serviceEnv {
		if _, set := vars[k]; !set {
			out = append(out, EnvVar{Name: k, Value: v})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func isTrue(b *bool) bool { return b != nil && *b }

// sources fetches the configMaps and secrets one computation needs, each
// once, so that every variable sees the same version of an object.
type sources struct {
	cs         kubernetes.Interface
	ns         string
	configMaps map[string]*corev1.ConfigMap
	secrets    map[string]*corev1.Secret
}

func newSources(cs kubernetes.Interface, ns string) *sources {
	return &sources{cs: cs, ns: ns, configMaps: map[string]*corev1.ConfigMap{}, secrets: map[string]*corev1.Secret{}}
}

// configMap returns the named configMap; a missing one is a NotFound
// error worded as the kubelet's configMap manager words it.
func (s *sources) configMap(ctx context.Context, name string) (*corev1.ConfigMap, error) {
	if cm, ok := s.configMaps[name]; ok {
		return cm, nil
	}
	cm, err := s.cs.CoreV1().ConfigMaps(s.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(corev1.Resource("configmap"), name)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't get configMap %s/%s: %w", s.ns, name, err)
	}
	s.configMaps[name] = cm
	return cm, nil
}

func (s *sources) secret(ctx context.Context, name string) (*corev1.Secret, error) {
	if sec, ok := s.secrets[name]; ok {
		return sec, nil
	}
	sec, err := s.cs.CoreV1().Secrets(s.ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil, apierrors.NewNotFound(corev1.Resource("secret"), name)
	}
	if err != nil {
		return nil, fmt.Errorf("couldn't get secret %s/%s: %w", s.ns, name, err)
	}
	s.secrets[name] = sec
	return sec, nil
}

// expand replaces $(NAME) references in s with their values; $$ is a
// literal $, and references to unknown names are left as written, so
// that a typo shows up in the container rather than vanishing.
func expand(s string, lookup func(string) (string, bool)) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; next {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				// An unterminated reference is kept literally.
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i++
		}
	}
	return b.String()
}

// serviceEnvVars returns the docker-link style variables of the
// services a pod in namespace ns sees: the API server's "kubernetes"
// service of the default namespace always, and every service of ns when
// links are enabled (a same-named service of ns wins over the default one).
func serviceEnvVars(ctx context.Context, cs kubernetes.Interface, ns string, links bool) (map[string]string, error) {
	byName := map[string]*corev1.Service{}
	if ns != metav1.NamespaceDefault || !links {
		svc, err := cs.CoreV1().Services(metav1.NamespaceDefault).Get(ctx, "kubernetes", metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return nil, fmt.Errorf("failed to get service default/kubernetes when setting up env vars: %w", err)
		default:
			if hasClusterIP(svc) {
				byName[svc.Name] = svc
			}
		}
	}
	if links {
		list, err := cs.CoreV1().Services(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, fmt.Errorf("failed to list services when setting up env vars: %w", err)
		}
		for i := range list.Items {
			if svc := &list.Items[i]; hasClusterIP(svc) {
				byName[svc.Name] = svc
			}
		}
	}
	env := map[string]string{}
	for _, svc := range byName {
		addServiceVars(env, svc)
	}
	return env, nil
}

func hasClusterIP(svc *corev1.Service) bool {
	return svc.Spec.ClusterIP != "" && svc.Spec.ClusterIP != corev1.ClusterIPNone
}

func addServiceVars(env map[string]string, svc *corev1.Service) {
	prefix := strings.ToUpper(strings.ReplaceAll(svc.Name, "-", "_"))
	ip := svc.Spec.ClusterIP
	env[prefix+"_SERVICE_HOST"] = ip
	for i, p := range svc.Spec.Ports {
		port := strconv.Itoa(int(p.Port))
		if i == 0 {
			env[prefix+"_SERVICE_PORT"] = port
		}
		if p.Name != "" {
			env[prefix+"_SERVICE_PORT_"+strings.ToUpper(strings.ReplaceAll(p.Name, "-", "_"))] = port
		}
		proto := strings.ToLower(string(corev1.ProtocolTCP))
		if p.Protocol != "" {
			proto = strings.ToLower(string(p.Protocol))
		}
		url := proto + "://" + net.JoinHostPort(ip, port)
		if i == 0 {
			env[prefix+"_PORT"] = url
		}
		pp := prefix + "_PORT_" + port + "_" + strings.ToUpper(proto)
		env[pp] = url
		env[pp+"_PROTO"] = proto
		env[pp+"_PORT"] = port
		env[pp+"_ADDR"] = ip
	}
}
