package server

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/pgkube/pgkube/authz"
	"github.com/pgkube/pgkube/clusters"
	"github.com/pgkube/pgkube/internal/nodeconn"
	"github.com/pgkube/pgkube/storage"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The subresources served by passing the request on to the node agent of
// the pod's node, as kube-apiserver passes them to the kubelet: logs,
// exec, attach and port forwarding of pods, and nodes/NAME/proxy/PATH.
// The agent is reached over TLS with Config.NodeTLS (the API server's
// client certificate); every forwarded request names the pod's logical
// cluster and UID in nodeconn's headers, since one agent serves the pods
// of every cluster.

// streamingSubresource: answered with whatever the agent sends (text,
// upgraded streams), so the Accept header is not negotiated.
func streamingSubresource(sub string) bool {
	switch sub {
	case "log", "exec", "attach", "portforward", "proxy":
		return true
	}
	return false
}

// queryBool reads a boolean query parameter as kube-apiserver converts
// them: absent, "false" and "0" are false, anything else true.
func queryBool(q url.Values, key string) bool {
	v := q[key]
	if len(v) == 0 {
		return false
	}
	return v[0] != "0" && !strings.EqualFold(v[0], "false")
}

func queryInt64(q url.Values, key string) (*int64, error) {
	v := q[key]
	if len(v) == 0 || v[0] == "" {
		return nil, nil
	}
	n, err := strconv.ParseInt(v[0], 10, 64)
	if err != nil {
		return nil, badRequest("%s", err.Error())
	}
	return &n, nil
}

// podLogOptions reads and validates corev1.PodLogOptions from the query,
// with upstream's checks and messages.
func podLogOptions(q url.Values, name string) (*corev1.PodLogOptions, error) {
	o := &corev1.PodLogOptions{Container: q.Get("container"), Follow: queryBool(q, "follow"), Previous: queryBool(q, "previous"),
		Timestamps: queryBool(q, "timestamps"), InsecureSkipTLSVerifyBackend: queryBool(q, "insecureSkipTLSVerifyBackend")}
	var err error
	if o.SinceSeconds, err = queryInt64(q, "sinceSeconds"); err != nil {
		return nil, err
	}
	if o.TailLines, err = queryInt64(q, "tailLines"); err != nil {
		return nil, err
	}
	if o.LimitBytes, err = queryInt64(q, "limitBytes"); err != nil {
		return nil, err
	}
	if v := q.Get("sinceTime"); v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return nil, badRequest("%s", err.Error())
		}
		o.SinceTime = &metav1.Time{Time: t}
	}
	stream := corev1.LogStreamAll
	if v := q.Get("stream"); v != "" {
		stream = v
	}
	o.Stream = &stream
	var errs field.ErrorList
	if o.TailLines != nil && *o.TailLines < 0 {
		errs = append(errs, field.Invalid(field.NewPath("tailLines"), *o.TailLines, "must be greater than or equal to 0"))
	}
	if o.LimitBytes != nil && *o.LimitBytes < 1 {
		errs = append(errs, field.Invalid(field.NewPath("limitBytes"), *o.LimitBytes, "must be greater than 0"))
	}
	switch {
	case o.SinceSeconds != nil && o.SinceTime != nil:
		errs = append(errs, field.Forbidden(field.NewPath(""), "at most one of `sinceTime` or `sinceSeconds` may be specified"))
	case o.SinceSeconds != nil && *o.SinceSeconds < 1:
		errs = append(errs, field.Invalid(field.NewPath("sinceSeconds"), *o.SinceSeconds, "must be greater than 0"))
	}
	switch stream {
	case corev1.LogStreamAll:
	case corev1.LogStreamStdout, corev1.LogStreamStderr:
		if o.TailLines != nil {
			errs = append(errs, field.Forbidden(field.NewPath(""), "`tailLines` and specific `stream` are mutually exclusive for now"))
		}
	default:
		errs = append(errs, field.NotSupported(field.NewPath("stream"), stream, []string{corev1.LogStreamAll, corev1.LogStreamStderr, corev1.LogStreamStdout}))
	}
	if len(errs) > 0 {
		return nil, apierrors.NewInvalid(schema.GroupKind{Kind: "PodLogOptions"}, name, errs)
	}
	return o, nil
}

// podContainer is upstream's choice of container: the one named, which
// must be the pod's, or the only one.
func podContainer(pod *corev1.Pod, name string) (string, error) {
	if name == "" {
		switch len(pod.Spec.Containers) {
		case 1:
			return pod.Spec.Containers[0].Name, nil
		case 0:
			return "", badRequest("a container name must be specified for pod %s", pod.Name)
		}
		var names []string
		for _, c := range pod.Spec.InitContainers {
			names = append(names, c.Name)
		}
		for _, c := range pod.Spec.Containers {
			names = append(names, c.Name)
		}
		for _, c := range pod.Spec.EphemeralContainers {
			names = append(names, c.Name)
		}
		return "", badRequest("a container name must be specified for pod %s, choose one of: %s", pod.Name, fmt.Sprint(names))
	}
	for _, c := range pod.Spec.InitContainers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.Containers {
		if c.Name == name {
			return name, nil
		}
	}
	for _, c := range pod.Spec.EphemeralContainers {
		if c.Name == name {
			return name, nil
		}
	}
	return "", badRequest("container %s is not valid for pod %s", name, pod.Name)
}

func (s *Server) loadPod(c *call) (*corev1.Pod, error) {
	obj, _, err := s.load(c, c.ri.Namespace, c.ri.Name)
	if err != nil {
		return nil, err
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return nil, apierrors.NewInternalError(fmt.Errorf("pod %s: stored object is a %T", c.ri.Name, obj))
	}
	return pod, nil
}

// nodeAddress is where the agent of a node listens: its InternalIP (else
// its Hostname) and status.daemonEndpoints.kubeletEndpoint.port. A pod of
// a tenant may run on a node of its own cluster or, as tenants share them,
// of the root cluster.
func (s *Server) nodeAddress(ctx context.Context, name string, inClusters ...string) (string, error) {
	var node *corev1.Node
	for _, cl := range inClusters {
		res, ok := s.cfg.Registry.For(cl).Lookup("", "v1", "nodes")
		if !ok {
			continue
		}
		stored, err := s.cfg.Store.Get(ctx, cl, storage.Key{Resource: res.StorageKey(), Name: name})
		if err != nil {
			if apierrors.IsNotFound(toStatus(err, schema.GroupResource{}, "")) {
				continue
			}
			return "", err
		}
		obj, err := s.fromStorage(res, stored.Data)
		if err != nil {
			return "", err
		}
		if n, ok := obj.(*corev1.Node); ok {
			node = n
			break
		}
	}
	if node == nil {
		return "", apierrors.NewNotFound(schemaGR("", "nodes"), name)
	}
	return agentAddress(node)
}

// agentAddress is where a node's agent listens.
func agentAddress(node *corev1.Node) (string, error) {
	name := node.Name
	host := ""
	for _, want := range []corev1.NodeAddressType{corev1.NodeInternalIP, corev1.NodeHostName} {
		for _, a := range node.Status.Addresses {
			if a.Type == want && a.Address != "" && host == "" {
				host = a.Address
			}
		}
	}
	if host == "" {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q has no InternalIP or Hostname address", name))
	}
	port := node.Status.DaemonEndpoints.KubeletEndpoint.Port
	if port <= 0 {
		return "", apierrors.NewServiceUnavailable(fmt.Sprintf("node %q serves no logs or streams: its agent reports no port (it runs without --cert-dir)", name))
	}
	return net.JoinHostPort(host, strconv.Itoa(int(port))), nil
}

func (s *Server) nodeTLS(insecure bool) (*tls.Config, error) {
	if s.cfg.NodeTLS == nil {
		return nil, apierrors.NewServiceUnavailable("the API server has no client credentials for node agents")
	}
	cfg := s.cfg.NodeTLS.Clone()
	if insecure {
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// podAgentURL locates a pod's agent; the pod must have a node.
func (s *Server) podAgentURL(c *call, pod *corev1.Pod, path string, q url.Values) (*url.URL, error) {
	if pod.Spec.NodeName == "" {
		return nil, badRequest("pod %s does not have a host assigned", pod.Name)
	}
	addr, err := s.nodeAddress(c.ctx, pod.Spec.NodeName, c.cluster, clusters.Root)
	if err != nil {
		return nil, err
	}
	return &url.URL{Scheme: "https", Host: addr, Path: path, RawQuery: q.Encode()}, nil
}

// agentHeader is what goes to an agent: the client's headers without its
// credentials, naming the cluster (and pod) the request is about.
func agentHeader(h http.Header, cluster string, pod *corev1.Pod) http.Header {
	out := h.Clone()
	nodeconn.StripCredentials(out)
	out.Set(nodeconn.ClusterHeader, cluster)
	if pod != nil {
		out.Set(nodeconn.PodUIDHeader, string(pod.UID))
	}
	return out
}

// podLog serves pods/NAME/log: the container's log from the agent,
// streamed as it arrives (follow) until the client goes away.
func (s *Server) podLog(c *call) error {
	opts, err := podLogOptions(c.r.URL.Query(), c.ri.Name)
	if err != nil {
		return err
	}
	pod, err := s.loadPod(c)
	if err != nil {
		return err
	}
	container, err := podContainer(pod, opts.Container)
	if err != nil {
		return err
	}
	if pod.Spec.NodeName == "" {
		// Nothing ran yet: upstream answers with an empty log.
		c.w.Header().Set("Content-Type", "text/plain")
		c.w.WriteHeader(http.StatusOK)
		return nil
	}
	q := url.Values{}
	set := func(k string, on bool) {
		if on {
			q.Set(k, "true")
		}
	}
	set("follow", opts.Follow)
	set("previous", opts.Previous)
	set("timestamps", opts.Timestamps)
	for k, v := range map[string]*int64{"sinceSeconds": opts.SinceSeconds, "tailLines": opts.TailLines, "limitBytes": opts.LimitBytes} {
		if v != nil {
			q.Set(k, strconv.FormatInt(*v, 10))
		}
	}
	if opts.SinceTime != nil {
		q.Set("sinceTime", opts.SinceTime.UTC().Format(time.RFC3339))
	}
	if *opts.Stream != corev1.LogStreamAll {
		q.Set("stream", *opts.Stream)
	}
	u, err := s.podAgentURL(c, pod, "/containerLogs/"+url.PathEscape(pod.Namespace)+"/"+url.PathEscape(pod.Name)+"/"+url.PathEscape(container), q)
	if err != nil {
		return err
	}
	tlsConfig, err := s.nodeTLS(opts.InsecureSkipTLSVerifyBackend)
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true, TLSHandshakeTimeout: 10 * time.Second,
		ResponseHeaderTimeout: time.Minute}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(c.ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header = agentHeader(http.Header{}, c.cluster, pod)
	resp, err := (&http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse // as upstream: an agent does not send the server elsewhere
	}}).Do(req)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 206 {
		return agentFailure(resp, schemaGR("", "pods/log"), pod.Name)
	}
	c.w.Header().Set("Content-Type", "text/plain")
	c.w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(c.w)
	buf := make([]byte, 32<<10)
	for {
		n, err := resp.Body.Read(buf)
		if n > 0 {
			if _, werr := c.w.Write(buf[:n]); werr != nil {
				return nil
			}
			if opts.Follow {
				rc.Flush() //nolint:errcheck // a gone client ends c.ctx
			}
		}
		if err != nil {
			return nil
		}
	}
}

// agentFailure turns an agent's refusal into a Status: one the agent sent
// as such is passed on; plain text (as a kubelet answers) becomes the
// message of a Status of the same code, as upstream's response checker.
func agentFailure(resp *http.Response, gr schema.GroupResource, name string) error {
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<10))
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	var st metav1.Status
	if json.Unmarshal(body, &st) == nil && st.Kind == "Status" && st.Code != 0 {
		return &apierrors.StatusError{ErrStatus: st}
	}
	msg := string(bytes.TrimSpace(body))
	switch resp.StatusCode {
	case http.StatusBadRequest:
		return apierrors.NewBadRequest(msg)
	case http.StatusInternalServerError:
		return apierrors.NewInternalError(fmt.Errorf("%s", msg))
	}
	return apierrors.NewGenericServerResponse(resp.StatusCode, "", gr, name, msg, 0, false)
}

// authorizeAlso checks one more verb on what the request addresses: the
// WebSocket forms of exec, attach and portforward are GETs, and newer
// kube-apiserver wants create on them as on the SPDY POSTs, so a user
// allowed only to read pods cannot run commands in them.
func (s *Server) authorizeAlso(c *call, verb string) error {
	sc := scopeFrom(c.ctx)
	if s.cfg.Authorizer == nil || sc == nil || sc.attrs.User == nil || sc.attrs.Verb == verb {
		return nil
	}
	a := sc.attrs
	a.Verb = verb
	decision, reason, err := s.cfg.Authorizer.Authorize(c.ctx, a)
	if decision != authz.Allow {
		if err != nil && reason == "" {
			reason = err.Error()
		}
		return forbidden(a, reason)
	}
	return nil
}

// podStream serves pods/NAME/exec, attach and portforward: the upgrade
// request goes on to the agent, and the connections are spliced.
func (s *Server) podStream(c *call) error {
	if err := s.authorizeAlso(c, "create"); err != nil {
		return err
	}
	in := c.r.URL.Query()
	q := url.Values{}
	// The client names the streams as PodExecOptions does; the agent,
	// as the kubelet, takes the remote-command parameter names.
	set := func(param, agentParam string) {
		if queryBool(in, param) {
			q.Set(agentParam, "1")
		}
	}
	var ports []string
	if c.ri.Subresource == "portforward" {
		for _, v := range in["ports"] {
			for _, p := range strings.Split(v, ",") {
				n, err := strconv.ParseInt(strings.TrimSpace(p), 10, 32)
				if err != nil {
					return badRequest("%s", err.Error())
				}
				ports = append(ports, strconv.FormatInt(n, 10))
			}
		}
		if len(ports) > 0 {
			q.Set(corev1.PortHeader, strings.Join(ports, ","))
		}
	} else {
		set("stdin", corev1.ExecStdinParam)
		set("stdout", corev1.ExecStdoutParam)
		set("stderr", corev1.ExecStderrParam)
		set("tty", corev1.ExecTTYParam)
		if c.ri.Subresource == "exec" {
			q[corev1.ExecCommandParam] = in[corev1.ExecCommandParam]
		}
	}
	pod, err := s.loadPod(c)
	if err != nil {
		return err
	}
	path := "/portForward/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name)
	if c.ri.Subresource != "portforward" {
		container, err := podContainer(pod, in.Get("container"))
		if err != nil {
			return err
		}
		path = "/" + c.ri.Subresource + "/" + url.PathEscape(pod.Namespace) + "/" + url.PathEscape(pod.Name) + "/" + url.PathEscape(container)
	}
	u, err := s.podAgentURL(c, pod, path, q)
	if err != nil {
		return err
	}
	return s.proxyUpgrade(c, u, pod)
}

func (s *Server) proxyUpgrade(c *call, u *url.URL, pod *corev1.Pod) error {
	if !nodeconn.IsUpgrade(c.r) {
		return badRequest("Upgrade request required")
	}
	tlsConfig, err := s.nodeTLS(false)
	if err != nil {
		return err
	}
	r := c.r.Clone(c.ctx)
	r.Header = agentHeader(c.r.Header, c.cluster, pod)
	if err := nodeconn.ProxyUpgrade(c.w, r, u, tlsConfig); err != nil {
		return apierrors.NewInternalError(err)
	}
	return nil
}

// nodeProxy serves nodes/NAME/proxy/PATH: any request to the node's agent
// (upgrades included), for those RBAC lets use nodes/proxy. The agent
// learns the caller's cluster, and serves pods of that cluster only.
func (s *Server) nodeProxy(c *call) error {
	addr, err := s.nodeAddress(c.ctx, c.ri.Name, c.cluster)
	if err != nil {
		return err
	}
	u := &url.URL{Scheme: "https", Host: addr, Path: "/" + c.ri.Path, RawQuery: c.r.URL.RawQuery}
	if nodeconn.IsUpgrade(c.r) {
		return s.proxyUpgrade(c, u, nil)
	}
	tlsConfig, err := s.nodeTLS(false)
	if err != nil {
		return err
	}
	tr := &http.Transport{TLSClientConfig: tlsConfig, DisableKeepAlives: true, TLSHandshakeTimeout: 10 * time.Second}
	defer tr.CloseIdleConnections()
	var failed error
	rp := &httputil.ReverseProxy{
		Transport:     tr,
		FlushInterval: -1, // streams (followed logs) pass through as they come
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL = u
			pr.Out.Host = u.Host
			pr.Out.Header = agentHeader(pr.In.Header, c.cluster, nil)
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			failed = err
		},
	}
	rp.ServeHTTP(c.w, c.r.WithContext(c.ctx))
	if failed != nil && c.ctx.Err() == nil {
		return apierrors.NewInternalError(fmt.Errorf("error trying to reach service: %w", failed))
	}
	return nil
}
