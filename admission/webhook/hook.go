package webhook

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	admcel "github.com/pgkube/pgkube/admission/cel"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// hook is one webhook of a configuration, compiled for admission: its
// selectors parsed, its match conditions compiled, its client built.
type hook struct {
	// uid tells webhooks apart within a snapshot (names may repeat across
	// configurations), for reinvocation.
	uid           string
	configuration string
	name          string

	rules          []admissionregistrationv1.RuleWithOperations
	namespaceSel   labels.Selector
	objectSel      labels.Selector
	selectorErr    error
	conditions     []condition
	failurePolicy  admissionregistrationv1.FailurePolicyType
	sideEffects    *admissionregistrationv1.SideEffectClass
	timeout        time.Duration
	acceptsV1      bool
	reinvokeIfNeed bool

	// url is where reviews are posted, without the timeout parameter.
	url       string
	client    *http.Client
	clientErr error
}

type condition struct {
	name string
	prg  *admcel.Program
	err  error
}

// spec is what mutating and validating webhooks have in common.
type spec struct {
	name              string
	clientConfig      admissionregistrationv1.WebhookClientConfig
	rules             []admissionregistrationv1.RuleWithOperations
	failurePolicy     *admissionregistrationv1.FailurePolicyType
	namespaceSelector *metav1.LabelSelector
	objectSelector    *metav1.LabelSelector
	sideEffects       *admissionregistrationv1.SideEffectClass
	timeoutSeconds    *int32
	reviewVersions    []string
	matchConditions   []admissionregistrationv1.MatchCondition
	reinvocation      *admissionregistrationv1.ReinvocationPolicyType
}

func (w *Webhooks) compileMutating(cluster string, c *admissionregistrationv1.MutatingWebhookConfiguration) []*hook {
	out := make([]*hook, len(c.Webhooks))
	for i, h := range c.Webhooks {
		out[i] = w.compile(cluster, c.Name, i, spec{
			name: h.Name, clientConfig: h.ClientConfig, rules: h.Rules, failurePolicy: h.FailurePolicy,
			namespaceSelector: h.NamespaceSelector, objectSelector: h.ObjectSelector, sideEffects: h.SideEffects,
			timeoutSeconds: h.TimeoutSeconds, reviewVersions: h.AdmissionReviewVersions,
			matchConditions: h.MatchConditions, reinvocation: h.ReinvocationPolicy,
		})
	}
	return out
}

func (w *Webhooks) compileValidating(cluster string, c *admissionregistrationv1.ValidatingWebhookConfiguration) []*hook {
	out := make([]*hook, len(c.Webhooks))
	for i, h := range c.Webhooks {
		out[i] = w.compile(cluster, c.Name, i, spec{
			name: h.Name, clientConfig: h.ClientConfig, rules: h.Rules, failurePolicy: h.FailurePolicy,
			namespaceSelector: h.NamespaceSelector, objectSelector: h.ObjectSelector, sideEffects: h.SideEffects,
			timeoutSeconds: h.TimeoutSeconds, reviewVersions: h.AdmissionReviewVersions,
			matchConditions: h.MatchConditions,
		})
	}
	return out
}

// compile applies the defaults kube-apiserver's API would have stored
// (pgkube stores configurations as given) and prepares the webhook.
func (w *Webhooks) compile(cluster, configuration string, index int, s spec) *hook {
	h := &hook{
		uid:           configuration + "/" + s.name + "/" + strconv.Itoa(index),
		configuration: configuration,
		name:          s.name,
		rules:         s.rules,
		failurePolicy: admissionregistrationv1.Fail,
		sideEffects:   s.sideEffects,
		timeout:       defaultTimeout,
	}
	if s.failurePolicy != nil {
		h.failurePolicy = *s.failurePolicy
	}
	if s.timeoutSeconds != nil {
		h.timeout = min(max(time.Duration(*s.timeoutSeconds)*time.Second, time.Second), maxTimeout)
	}
	h.reinvokeIfNeed = s.reinvocation != nil && *s.reinvocation == admissionregistrationv1.IfNeededReinvocationPolicy
	for _, v := range s.reviewVersions {
		h.acceptsV1 = h.acceptsV1 || v == "v1"
	}
	if len(s.reviewVersions) == 0 {
		// Unset means v1 where the API defaults it (v1beta1 configurations).
		h.acceptsV1 = true
	}
	var err error
	if h.namespaceSel, err = admcel.Selector(s.namespaceSelector); err != nil {
		h.selectorErr = err
	}
	if h.objectSel, err = admcel.Selector(s.objectSelector); err != nil {
		h.selectorErr = err
	}
	for _, mc := range s.matchConditions {
		prg, err := w.env.Compile(mc.Expression, admcel.BoolResult)
		if err != nil {
			err = fmt.Errorf("compilation error: %w", err)
		}
		h.conditions = append(h.conditions, condition{name: mc.Name, prg: prg, err: err})
	}
	h.url, h.client, h.clientErr = w.newClient(cluster, s.clientConfig)
	return h
}

// newClient builds the HTTP client of one webhook. Each webhook gets its
// own so that its CA bundle is the only one trusted for it; its
// connections are reused for as long as the configuration is unchanged.
func (w *Webhooks) newClient(cluster string, cc admissionregistrationv1.WebhookClientConfig) (string, *http.Client, error) {
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	if w.opts.TLSConfig != nil {
		tlsConfig = w.opts.TLSConfig.Clone()
	}
	// The bundle adds to the base roots, as kube-apiserver appends it to
	// its configured CA data; with neither, the system roots are trusted.
	if len(cc.CABundle) > 0 {
		pool := x509.NewCertPool()
		if tlsConfig.RootCAs != nil {
			pool = tlsConfig.RootCAs.Clone()
		}
		if !pool.AppendCertsFromPEM(cc.CABundle) {
			return "", nil, fmt.Errorf("unable to load root certificates: unable to parse bytes as PEM block")
		}
		tlsConfig.RootCAs = pool
	}

	var dialer net.Dialer
	dial := dialer.DialContext
	if w.opts.Dial != nil {
		dial = w.opts.Dial
	}

	var base string
	switch {
	case cc.Service != nil:
		svc := *cc.Service
		port := int32(443)
		if svc.Port != nil {
			port = *svc.Port
		}
		serverName := svc.Name + "." + svc.Namespace + ".svc"
		host := net.JoinHostPort(serverName, strconv.Itoa(int(port)))
		path := ""
		if svc.Path != nil {
			path = *svc.Path
		}
		base = "https://" + host + pathOf(path)
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = serverName
		}
		// pgkube runs no cluster network: the service's name is resolved
		// to one of its ready endpoints, read from storage, at each dial.
		next := dial
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if addr == host {
				resolved, err := w.resolveService(ctx, cluster, svc.Namespace, svc.Name, port)
				if err != nil {
					return nil, err
				}
				addr = resolved
			}
			return next(ctx, network, addr)
		}
	case cc.URL != nil:
		u, err := url.Parse(*cc.URL)
		if err != nil {
			return "", nil, fmt.Errorf("Unparsable URL: %v", err)
		}
		base = u.Scheme + "://" + u.Host + pathOf(u.Path)
	default:
		return "", nil, errors.New("webhook configuration must have either service or URL")
	}

	transport := &http.Transport{
		DialContext:         dial,
		TLSClientConfig:     tlsConfig,
		TLSHandshakeTimeout: 10 * time.Second,
		MaxIdleConnsPerHost: 32,
		IdleConnTimeout:     90 * time.Second,
	}
	return base, &http.Client{Transport: transport}, nil
}

func pathOf(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

// clientError reports a webhook whose client could not be built, as a
// failure to call it.
func clientError(h *hook) error {
	return &callError{webhook: h.name, reason: fmt.Errorf("could not get REST client: %w", h.clientErr),
		status: apierrors.NewInternalError(h.clientErr)}
}
